package dev.lora4j.gguf;

import dev.lora4j.tokenizer.ChatTemplate;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A GGUF model file loaded as a frozen lora4j base: the {@link LlamaModel} (Hugging Face names
 * and layout), its tokenizer and its chat template. Matrices stay in the file's format and are
 * memory-mapped: F32, F16 and BF16 as {@link dev.lora4j.tensor.BufferStorage}, Q8_0, Q4_0, Q4_K,
 * Q5_K and Q6_K as {@link BlockQuantStorage}, decoded panel by panel inside the matrix products,
 * so a quantized base costs about its file size. The q/k rows that llama.cpp's {@code llama}
 * architecture permutes are put back into Hugging Face order by moving whole rows of blocks (a
 * copy of those two matrices in their quantized form); norms and biases are widened to F32. A
 * split model ({@link GgufSplit}) loads from any of its shards; RoPE scaling is read as
 * {@link GgufRope} describes.
 *
 * <pre>{@code
 * GgufModel gguf = GgufModel.load(Path.of("tinyllama-1.1b-chat.Q4_K_M.gguf"));
 * LoraModel lora = LoraModel.wrap(gguf.model(), LoraConfig.rank(8).alpha(16).targets(Target.ALL));
 * }</pre>
 *
 * @param model the model (frozen weights over the file's bytes)
 * @param tokenizer the tokenizer rebuilt from {@code tokenizer.ggml.*}
 * @param chatTemplate {@code tokenizer.chat_template}, or null
 * @param path the file
 */
public record GgufModel(LlamaModel model, HfTokenizer tokenizer, String chatTemplate, Path path) {
    private static final Logger LOG = LoggerFactory.getLogger(GgufModel.class);

    /** Whether {@code path} names a GGUF file (by its first four bytes, else by its extension). */
    public static boolean isGguf(Path path) {
        if (!java.nio.file.Files.isRegularFile(path)) {
            return path.getFileName() != null && path.getFileName().toString().toLowerCase().endsWith(".gguf");
        }
        try (var in = java.nio.file.Files.newInputStream(path)) {
            byte[] magic = in.readNBytes(4);
            return magic.length == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F';
        } catch (IOException e) {
            return false;
        }
    }

    /** Loads the model, tokenizer and chat template of a GGUF model file. */
    public static GgufModel load(Path path) {
        try (GgufFile file = GgufSplit.open(path)) {
            String type = file.string("general.type", "model");
            if (type.equals("adapter")) {
                throw new IllegalArgumentException(path + " is a LoRA adapter GGUF (general.type \"adapter\"), not a model; "
                        + "give the base model's GGUF");
            }
            if (!file.has("general.architecture")) {
                throw new IllegalArgumentException(path + ": general.architecture is missing; not a GGUF model file");
            }
            GgufArchitecture arch = GgufArchitecture.named(file.string("general.architecture"));
            HfTokenizer tokenizer = GgufTokenizer.load(file);
            LlamaConfig config = config(file, arch);
            Set<String> unused = new LinkedHashSet<>(file.tensorNames());
            LlamaModel model = LlamaModel.assemble(config, (hfName, shape) -> {
                String name = arch.ggufName(hfName).orElseThrow(() -> new IllegalArgumentException(
                        "no GGUF name for " + hfName + " in architecture " + arch.name()));
                if (!file.contains(name)) {
                    throw new IllegalArgumentException(path + ": tensor " + name + " is missing (" + arch.name() + "."
                            + "block_count says " + config.numHiddenLayers() + " layers)");
                }
                GgufTensorInfo info = file.info(name);
                if (!Arrays.equals(info.shape(), shape)) {
                    throw new IllegalArgumentException(path + ": tensor " + name + " has shape " + Arrays.toString(info.shape())
                            + " (ne " + Arrays.toString(info.ne()) + ") but the metadata implies " + Arrays.toString(shape));
                }
                unused.remove(name);
                Tensor t;
                if (shape.length == 1) {
                    float[] v = file.floats(name);
                    if (arch.shiftsNorm(hfName)) {
                        for (int k = 0; k < v.length; k++) {
                            v[k] -= 1f;
                        }
                    }
                    t = Tensor.of(v, shape);
                } else {
                    int heads = arch.permutationHeads(hfName, config);
                    ByteBuffer bytes = file.bytes(name);
                    if (heads > 0) {
                        bytes = unpermuteRows(bytes, shape[0], heads, info.type().byteSize(shape[1]));
                    }
                    Storage storage = GgufFile.storage(path + ": tensor " + name, info.type(), bytes);
                    t = new Tensor(storage, shape);
                }
                return t.name(hfName);
            });
            unused.remove("output.weight"); // a tied model may still store it
            unused.remove(GgufRope.ROPE_FREQS); // read by config(), which refuses it outside the llama architecture
            if (!unused.isEmpty()) {
                LOG.warn("{}: {} tensor(s) not used by {}: {}", path, unused.size(), arch.name(), unused);
            }
            String template = file.string("tokenizer.chat_template", null);
            LOG.info("loaded GGUF {} ({} layers, hidden {}, {} parameters, {} MB of weights{}) from {}", arch.name(),
                    config.numHiddenLayers(), config.hiddenSize(), model.baseParameterCount(),
                    model.baseByteSize() / (1 << 20), fileTypes(file), file.files().size() == 1 ? path : file.files());
            return new GgufModel(model, tokenizer, template, path);
        } catch (IOException e) {
            throw new UncheckedIOException("reading GGUF file " + path + ": " + e.getMessage(), e);
        }
    }

    private static String fileTypes(GgufFile file) {
        Set<GgmlType> types = new java.util.TreeSet<>();
        file.tensors().values().forEach(t -> types.add(t.type()));
        return ", " + types;
    }

    /** Rows of {@code rowBytes} bytes from GGUF's permuted q/k order back into Hugging Face order (a heap copy). */
    static ByteBuffer unpermuteRows(ByteBuffer src, int rows, int heads, long rowBytes) {
        int[] order = GgufArchitecture.rowOrder(rows, heads, true);
        int rb = Math.toIntExact(rowBytes);
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact((long) rows * rb)).order(ByteOrder.LITTLE_ENDIAN);
        byte[] row = new byte[rb];
        for (int r = 0; r < rows; r++) {
            src.get(order[r] * rb, row, 0, rb);
            out.put(r * rb, row, 0, rb);
        }
        return out;
    }

    /** The Hugging Face configuration that a GGUF file's {@code <arch>.*} metadata describes. */
    static LlamaConfig config(GgufFile f, GgufArchitecture arch) {
        String a = arch.name() + ".";
        if (!f.contains("token_embd.weight")) {
            throw new IllegalArgumentException(f.path() + ": tensor token_embd.weight is missing; not a model file");
        }
        int[] embd = f.info("token_embd.weight").shape();
        int heads = (int) f.integer(a + "attention.head_count");
        int hidden = (int) f.integer(a + "embedding_length");
        if (!arch.name().equals("llama") && !arch.name().equals("qwen2")) {
            return familyConfig(f, arch, embd[0], hidden, heads);
        }
        LlamaConfig.Builder b = LlamaConfig.builder()
                .source(f.path().getFileName().toString())
                .modelType(arch.modelType())
                .vocabSize(embd[0])
                .hiddenSize(hidden)
                .intermediateSize((int) f.integer(a + "feed_forward_length"))
                .numHiddenLayers((int) f.integer(a + "block_count"))
                .numAttentionHeads(heads)
                .numKeyValueHeads((int) f.integer(a + "attention.head_count_kv", heads))
                .maxPositionEmbeddings((int) f.integer(a + "context_length", 2048))
                .rmsNormEps(f.number(a + "attention.layer_norm_rms_epsilon"))
                .ropeTheta(f.number(a + "rope.freq_base", 10000))
                .tieWordEmbeddings(!f.contains("output.weight"))
                .attentionBias(arch.name().equals("llama") && f.contains("blk.0.attn_q.bias"));
        if (f.has(a + "attention.key_length")) {
            b.headDim((int) f.integer(a + "attention.key_length"));
        }
        b.ropeScaling(GgufRope.read(f, arch, (int) f.integer(a + "rope.dimension_count",
                f.integer(a + "attention.key_length", hidden / heads))));
        int vocab = embd[0];
        long bos = f.integer("tokenizer.ggml.bos_token_id", -1);
        long eos = f.integer("tokenizer.ggml.eos_token_id", -1);
        long pad = f.integer("tokenizer.ggml.padding_token_id", -1);
        if (bos >= 0 && bos < vocab) {
            b.bosTokenId((int) bos);
        }
        if (eos >= 0 && eos < vocab) {
            b.eosTokenIds(List.of((int) eos));
        }
        if (pad >= 0 && pad < vocab) {
            b.padTokenId((int) pad);
        }
        return b.build();
    }

    /**
     * The families beyond llama and qwen2: the config.json that the file's metadata describes, read by
     * lora-core's own config reader so the family's block is assembled exactly as from a Hugging
     * Face folder. Gemma's query_pre_attn_scalar is the denominator llama.cpp uses (the exporter
     * folds any other value into the queries), and the sliding layers follow llama.cpp's
     * sliding_window_pattern.
     */
    private static LlamaConfig familyConfig(GgufFile f, GgufArchitecture arch, int vocab, int hidden, int heads) {
        String a = arch.name() + ".";
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var c = json.createObjectNode();
        int layers = (int) f.integer(a + "block_count");
        int headDim = (int) f.integer(a + "attention.key_length", hidden / heads);
        c.put("model_type", arch.modelType()).put("vocab_size", vocab).put("hidden_size", hidden)
                .put("intermediate_size", f.integer(a + "feed_forward_length")).put("num_hidden_layers", layers)
                .put("num_attention_heads", heads).put("num_key_value_heads", f.integer(a + "attention.head_count_kv", heads))
                .put("head_dim", headDim).put("max_position_embeddings", f.integer(a + "context_length", 2048))
                .put("rms_norm_eps", f.number(a + "attention.layer_norm_rms_epsilon", 1e-6))
                .put("tie_word_embeddings", !f.contains("output.weight"));
        LlamaConfig.RopeScaling scaling = GgufRope.read(f, arch, 0); // linear or none (rope_freqs: llama only)
        if (scaling != null) {
            c.putObject("rope_scaling").put("rope_type", "linear").put("factor", scaling.factor());
        }
        long bos = f.integer("tokenizer.ggml.bos_token_id", -1);
        long eos = f.integer("tokenizer.ggml.eos_token_id", -1);
        long pad = f.integer("tokenizer.ggml.padding_token_id", -1);
        if (bos >= 0 && bos < vocab) {
            c.put("bos_token_id", bos);
        }
        if (eos >= 0 && eos < vocab) {
            c.put("eos_token_id", eos);
        }
        if (pad >= 0 && pad < vocab) {
            c.put("pad_token_id", pad);
        }
        if (arch.name().equals("phi2") || arch.name().equals("falcon")) {
            c.put("layer_norm_eps", f.number(a + "attention.layer_norm_epsilon"));
            c.put("layer_norm_epsilon", f.number(a + "attention.layer_norm_epsilon"));
            c.put("rope_theta", f.number(a + "rope.freq_base", 10000));
            c.remove("rms_norm_eps");
            if (arch.name().equals("phi2")) {
                c.put("hidden_act", "gelu_new");
                c.put("partial_rotary_factor", f.integer(a + "rope.dimension_count", headDim) / (double) headDim);
            } else {
                c.remove("head_dim");
                c.remove("num_key_value_heads");
                c.remove("intermediate_size");
                c.put("ffn_hidden_size", f.integer(a + "feed_forward_length"));
                c.put("multi_query", true).put("parallel_attn", true).put("bias", false).put("alibi", false)
                        .put("new_decoder_architecture", false);
            }
        } else if (arch.name().equals("phi3")) {
            c.put("rope_theta", f.number(a + "rope.freq_base", 10000));
            c.put("partial_rotary_factor", f.integer(a + "rope.dimension_count", headDim) / (double) headDim);
            c.remove("head_dim");
        } else if (arch.name().equals("qwen3")) {
            c.put("rope_theta", f.number(a + "rope.freq_base", 1_000_000));
            c.put("attention_bias", f.contains("blk.0.attn_q.bias"));
        } else {
            boolean gemma3 = arch.name().equals("gemma3");
            c.put("rope_theta", f.number(a + "rope.freq_base", gemma3 ? 1_000_000 : 10000));
            c.put("hidden_activation", "gelu_pytorch_tanh");
            c.put("query_pre_attn_scalar", GgufExport.llamaCppScoreDenominator(gemma3 ? "gemma3_text" : "gemma2", layers,
                    hidden, heads, headDim));
            c.put("attention_bias", f.contains("blk.0.attn_q.bias"));
            // llama.cpp: gemma2 always soft-caps (defaults 50 and 30); gemma3 never caps attention, caps logits when given
            if (gemma3) {
                c.putNull("attn_logit_softcapping");
            } else {
                c.put("attn_logit_softcapping", f.number(a + "attn_logit_softcapping", 50.0));
            }
            if (f.has(a + "final_logit_softcapping")) {
                c.put("final_logit_softcapping", f.number(a + "final_logit_softcapping"));
            } else if (gemma3) {
                c.putNull("final_logit_softcapping");
            } else {
                c.put("final_logit_softcapping", 30.0);
            }
            // llama.cpp: gemma2 slides by default (window 4096, period 2); gemma3 only with a sliding_window key
            boolean slides = !gemma3 || f.integer(a + "attention.sliding_window", 0) > 0;
            long window = f.integer(a + "attention.sliding_window", 4096);
            long period = f.integer(a + "attention.sliding_window_pattern", gemma3 ? 6 : 2);
            var types = c.putArray("layer_types");
            for (int i = 0; i < layers; i++) {
                types.add(slides && (period == 0 || i % period < period - 1) ? "sliding_attention" : "full_attention");
            }
            c.put("sliding_window", window);
            if (gemma3) {
                c.put("rope_local_base_freq", f.number(a + "rope.freq_base_swa", 10000));
            }
        }
        return LlamaConfig.parse(c.toString(), f.path().getFileName().toString());
    }

    /** The Hugging Face configuration of a GGUF model file, from its metadata alone (no weights read). */
    public static LlamaConfig readConfig(Path path) {
        try (GgufFile file = GgufSplit.open(path)) {
            return config(file, GgufArchitecture.named(file.string("general.architecture")));
        } catch (IOException e) {
            throw new UncheckedIOException("reading GGUF file " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * The chat template as lora4j's {@link ChatTemplate} (its family recognised from the Jinja text).
     *
     * @throws IllegalArgumentException when the file has no {@code tokenizer.chat_template} or one of no supported family
     */
    public ChatTemplate chat() {
        if (chatTemplate == null) {
            throw new IllegalArgumentException(path + " has no tokenizer.chat_template; choose one by name, one of "
                    + ChatTemplate.NAMES);
        }
        String bos = tokenizer.bosId().isPresent() ? tokenizer.token(tokenizer.bosId().getAsInt()) : null;
        String eos = tokenizer.eosId().isPresent() ? tokenizer.token(tokenizer.eosId().getAsInt()) : null;
        return ChatTemplate.fromTemplateText(chatTemplate, bos, eos, path + " (tokenizer.chat_template)");
    }
}
