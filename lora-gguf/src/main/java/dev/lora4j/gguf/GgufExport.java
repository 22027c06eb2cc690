package dev.lora4j.gguf;

import dev.lora4j.lora.LoraAdapter;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Exports to GGUF files that llama.cpp, Ollama and LM Studio load: a LoRA adapter on its own
 * ({@link #adapter}) or a whole model, possibly with adapters merged in ({@link #model},
 * {@link #merged}). Names, the q/k row permutation and metadata follow llama.cpp's converters
 * ({@code convert_hf_to_gguf.py}, {@code convert_lora_to_gguf.py}) for the architectures of
 * {@link GgufArchitecture}.
 *
 * <pre>{@code
 * GgufExport.adapter(lora, Path.of("adapter.gguf"));                 // llama-cli -m base.gguf --lora adapter.gguf
 * GgufExport.merged(lora, modelDir, GgmlType.Q8_0, Path.of("m.gguf")); // base + adapter in one file, with the tokenizer
 * }</pre>
 */
public final class GgufExport {
    private static final Logger LOG = LoggerFactory.getLogger(GgufExport.class);

    /** llama.cpp's {@code llama_ftype} of a file whose matrices are mostly {@code type}. */
    static int fileType(GgmlType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case Q4_K -> 15; // MOSTLY_Q4_K_M, the mix GgufFileType.Q4_K_M writes
            case BF16 -> 32;
            default -> throw new IllegalArgumentException("lora4j writes F32, F16, BF16 or Q8_0 models, not " + type);
        };
    }

    private GgufExport() {
    }

    // ---------------------------------------------------------------- adapter

    /** Exports the first active adapter (or "default"); see {@link #adapter(LoraModel, String, Path)}. */
    public static void adapter(LoraModel lora, Path out) {
        List<String> active = lora.active();
        adapter(lora, active.isEmpty() ? LoraModel.DEFAULT_ADAPTER : active.get(0), out);
    }

    /**
     * Writes the named adapter as a llama.cpp LoRA GGUF: {@code general.type} "adapter",
     * {@code adapter.type} "lora", {@code adapter.lora.alpha}, and per adapted module
     * {@code <base tensor>.lora_a} = A [r, in] and {@code .lora_b} = B [out, r] in F32, with the
     * q/k row permutation of the architecture applied to B.
     *
     * <p>llama.cpp scales every module by {@code alpha / r} with r read from the tensor. When
     * every module's scaling·r is the same (plain LoRA and rsLoRA alike: rsLoRA's alpha/√r gives
     * alpha·√r) that value is written as alpha; otherwise (rank or alpha patterns that differ per
     * module) each B is multiplied by its scaling and alpha is written as 0, which llama.cpp reads
     * as "no alpha/r factor". Either way llama.cpp computes what lora4j computes at scale 1.
     *
     * @throws IllegalArgumentException for what GGUF cannot represent: a LoRA on an output layer
     *     tied to the embedding (the base GGUF has no output.weight), or a module llama.cpp does not name
     */
    public static void adapter(LoraModel lora, String name, Path out) {
        LlamaModel model = lora.model();
        LlamaConfig config = model.config();
        GgufArchitecture arch = GgufArchitecture.of(config);
        lora.config(name);
        List<String> modules = new ArrayList<>();
        List<LoraAdapter> adapters = new ArrayList<>();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll && ll.adapters().containsKey(name)) {
                if (ll.merged().contains(name)) {
                    throw new IllegalStateException("adapter '" + name + "' is merged into " + ll.name()
                            + "; unmerge it before exporting it as a separate adapter");
                }
                if (ll.name().equals("lm_head") && config.tieWordEmbeddings()) {
                    throw new IllegalArgumentException("adapter '" + name + "' has a LoRA on lm_head, which is tied to the "
                            + "embedding: a GGUF base of a tied model has no output.weight, so llama.cpp cannot load it. "
                            + "Export the merged model instead (export-gguf --merge), or train without lm_head");
                }
                modules.add(ll.name());
                adapters.add(ll.adapter(name));
            }
        }
        if (modules.isEmpty()) {
            throw new IllegalArgumentException("adapter '" + name + "' has no modules to export");
        }
        double alpha = adapters.get(0).scaling() * adapters.get(0).rank();
        boolean uniform = true;
        for (LoraAdapter ad : adapters) {
            double a = ad.scaling() * ad.rank();
            uniform &= Math.abs(a - alpha) <= 1e-6 * Math.abs(alpha);
        }
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", arch.name());
        w.putString("general.type", "adapter");
        w.putString("adapter.type", "lora");
        w.putF32("adapter.lora.alpha", uniform ? alpha : 0.0);
        if (!uniform) {
            LOG.info("adapter '{}': modules differ in scaling·rank, so each lora_b carries its scaling and "
                    + "adapter.lora.alpha is 0", name);
        }
        for (int i = 0; i < modules.size(); i++) {
            String module = modules.get(i);
            LoraAdapter ad = adapters.get(i);
            String weight = module + ".weight";
            String base = arch.ggufName(weight).orElseThrow(() -> new IllegalArgumentException("module " + module
                    + " has no llama.cpp tensor name for architecture " + arch.name() + "; it cannot be exported"));
            int r = ad.rank();
            int in = ad.a().dim(1);
            int outF = ad.b().dim(0);
            float[] a = ad.a().toFloatArray();
            float[] b = ad.b().toFloatArray();
            if (!uniform) {
                float s = (float) ad.scaling();
                for (int k = 0; k < b.length; k++) {
                    b[k] *= s;
                }
            }
            int heads = arch.permutationHeads(weight, config);
            if (heads > 0) {
                b = GgufArchitecture.permuteRows(b, outF, r, heads, false);
            }
            float qs = queryScale(config, weight);
            if (qs != 1f) {
                for (int k = 0; k < b.length; k++) {
                    b[k] *= qs;
                }
            }
            w.addF32(base + ".lora_a", new int[] {r, in}, a);
            w.addF32(base + ".lora_b", new int[] {outF, r}, b);
        }
        write(w, out);
        LOG.info("wrote LoRA adapter '{}' ({} modules, alpha {}) as GGUF to {}", name, modules.size(),
                uniform ? alpha : 0.0, out);
    }

    // ---------------------------------------------------------------- model

    /**
     * Merges the active adapters into the base (as {@link LoraModel#mergeAndUnload()}, which
     * consumes {@code lora}) and writes the model; see {@link #model}.
     */
    public static void merged(LoraModel lora, Path tokenizerFolder, GgmlType type, Path out) {
        model(lora.mergeAndUnload(), tokenizerFolder, type, out);
    }

    /**
     * {@link #merged(LoraModel, Path, GgmlType, Path)} split into shards of at most
     * {@code splitMaxBytes} bytes of tensor data, as {@link #model(LlamaModel, Path, GgmlType, Path, long)}.
     */
    public static List<Path> merged(LoraModel lora, Path tokenizerFolder, GgmlType type, Path out, long splitMaxBytes) {
        return model(lora.mergeAndUnload(), tokenizerFolder, type, out, splitMaxBytes);
    }

    /**
     * Writes {@code model} as a GGUF model file: hyper-parameters, the tokenizer of
     * {@code tokenizerFolder} (tokenizer.json, tokenizer_config.json with its chat template; null
     * required: llama.cpp loads no model without a vocabulary), and every tensor under llama.cpp's name.
     * Matrices are stored as {@code type} (F32, F16, BF16 or Q8_0), vectors (norms, biases) as F32;
     * a matrix whose rows are not a multiple of 32 falls back from Q8_0 to F16, as llama.cpp's
     * converter does. One tensor is widened at a time. For llama.cpp's Q4_K_M mix see
     * {@link #model(LlamaModel, Path, GgufFileType, Path)}.
     */
    public static void model(LlamaModel model, Path tokenizerFolder, GgmlType type, Path out) {
        model(model, tokenizerFolder, GgufFileType.of(type), out, 0);
    }

    /**
     * {@link #model(LlamaModel, Path, GgmlType, Path)}, split as llama.cpp's {@code gguf-split
     * --split-max-size} does when {@code splitMaxBytes} &gt; 0: shards
     * {@code PREFIX-00001-of-0000N.gguf} ({@code out} without ".gguf" as PREFIX) of at most that
     * many bytes of tensor data each (one larger tensor alone excepted), the first with all the
     * metadata; llama.cpp and {@link GgufModel#load} load them from the first file. When the model
     * fits in one shard (or {@code splitMaxBytes} is 0), the plain file {@code out} is written.
     *
     * @return the files written, first file first
     */
    public static List<Path> model(LlamaModel model, Path tokenizerFolder, GgmlType type, Path out, long splitMaxBytes) {
        return model(model, tokenizerFolder, GgufFileType.of(type), out, splitMaxBytes);
    }

    /** {@link #merged(LoraModel, Path, GgmlType, Path)} with a {@link GgufFileType} such as {@link GgufFileType#Q4_K_M}. */
    public static void merged(LoraModel lora, Path tokenizerFolder, GgufFileType fileType, Path out) {
        model(lora.mergeAndUnload(), tokenizerFolder, fileType, out, 0);
    }

    /** {@link #merged(LoraModel, Path, GgufFileType, Path)} split as {@link #model(LlamaModel, Path, GgmlType, Path, long)}. */
    public static List<Path> merged(LoraModel lora, Path tokenizerFolder, GgufFileType fileType, Path out, long splitMaxBytes) {
        return model(lora.mergeAndUnload(), tokenizerFolder, fileType, out, splitMaxBytes);
    }

    /**
     * {@link #model(LlamaModel, Path, GgmlType, Path)} with the tensor types of {@code fileType}:
     * for {@link GgufFileType#Q4_K_M} llama.cpp's mix and reference quantizers, so that the file
     * equals llama.cpp's {@code llama-quantize} of the F32 export, tensor for tensor.
     */
    public static void model(LlamaModel model, Path tokenizerFolder, GgufFileType fileType, Path out) {
        model(model, tokenizerFolder, fileType, out, 0);
    }

    /** {@link #model(LlamaModel, Path, GgufFileType, Path)} split as {@link #model(LlamaModel, Path, GgmlType, Path, long)}. */
    public static List<Path> model(LlamaModel model, Path tokenizerFolder, GgufFileType fileType, Path out, long splitMaxBytes) {
        if (splitMaxBytes < 0) {
            throw new IllegalArgumentException("split size must be > 0 bytes (or 0: no split), was " + splitMaxBytes);
        }
        GgmlType type = fileType.baseType();
        LlamaConfig config = model.config();
        GgufArchitecture arch = GgufArchitecture.of(config);
        GgufWriter w = new GgufWriter();
        putHyperParameters(w, arch, config, type);
        w.putU32("general.file_type", fileType.llamaFtype());
        if (tokenizerFolder == null) {
            throw new IllegalArgumentException("a GGUF model needs its tokenizer: give the folder with tokenizer.json "
                    + "(the Hugging Face model folder it came from)");
        }
        try {
            GgufTokenizer.write(w, tokenizerFolder, config.vocabSize());
        } catch (IOException e) {
            throw new UncheckedIOException("reading the tokenizer in " + tokenizerFolder + ": " + e.getMessage(), e);
        }
        Map<String, Tensor> tensors = new LinkedHashMap<>(model.allTensors());
        Map<String, int[]> shapes = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String hf = e.getKey();
            shapes.put(arch.ggufName(hf).orElseThrow(() -> new IllegalArgumentException("tensor " + hf
                    + " has no llama.cpp name for architecture " + arch.name() + "; it cannot be exported")),
                    e.getValue().shape());
        }
        Map<String, GgmlType> types = fileType.tensorTypes(arch.name(), config, shapes);
        List<String> fallbacks = new ArrayList<>();
        Map<GgmlType, Integer> counts = new java.util.TreeMap<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String hf = e.getKey();
            Tensor t = e.getValue();
            String gguf = arch.ggufName(hf).orElseThrow();
            int[] shape = t.shape();
            GgmlType tensorType = types.get(gguf);
            counts.merge(tensorType, 1, Integer::sum);
            if (fileType != GgufFileType.Q4_K_M && shape.length > 1 && tensorType != type) {
                fallbacks.add(gguf);
            }
            int heads = arch.permutationHeads(hf, config);
            boolean shift = arch.shiftsNorm(hf);
            float qs = queryScale(config, hf);
            GgmlType finalType = tensorType;
            w.add(gguf, shape, finalType, () -> {
                float[] values = t.toFloatArray();
                if (heads > 0) {
                    int cols = shape.length == 2 ? shape[1] : 1;
                    values = GgufArchitecture.permuteRows(values, shape[0], cols, heads, false);
                }
                for (int k = 0; k < values.length && (shift || qs != 1f); k++) {
                    values[k] = ((shift ? values[k] + 1f : values[k])) * qs;
                }
                return GgmlQuants.encode(finalType, values);
            });
        }
        if (!fallbacks.isEmpty()) {
            LOG.info("{} tensor(s) have rows that are not a multiple of {}'s block size {} and are stored as F16: {}",
                    fallbacks.size(), type, type.blockSize(), fallbacks);
        }
        List<Path> files = splitMaxBytes > 0 ? writeSplit(w, out, splitMaxBytes) : write(w, out);
        LOG.info("wrote {} model ({} tensors, {}: {}) as GGUF to {}", config.modelType(), tensors.size(), fileType, counts,
                files.size() == 1 ? out : files);
        return files;
    }

    /**
     * The attention-score scale llama.cpp's Gemma graphs use is 1/√head_dim (1/√(hidden/heads) for
     * the 27B sizes, recognised by their layer count); Gemma's is 1/√query_pre_attn_scalar. Where
     * they differ the factor √(llama.cpp's denominator / query_pre_attn_scalar) is folded into the
     * queries: into q_proj (weight, bias and a LoRA's lora_b) for Gemma 2, into the q norm weight
     * for Gemma 3 (whose q norm would undo a scaled q_proj). Returns that factor for tensor
     * {@code hfName} (a weight, bias or module weight name), 1 for every other tensor.
     */
    static float queryScale(LlamaConfig c, String hfName) {
        if (!c.modelType().equals("gemma2") && !c.modelType().equals("gemma3_text")) {
            return 1f;
        }
        boolean gemma3 = c.modelType().equals("gemma3_text");
        boolean target = gemma3 ? hfName.endsWith("self_attn.q_norm.weight")
                : hfName.endsWith("self_attn.q_proj.weight") || hfName.endsWith("self_attn.q_proj.bias");
        if (!target) {
            return 1f;
        }
        double scalar = c.architecture().queryPreAttnScalar();
        double llama = llamaCppScoreDenominator(c.modelType(), c.numHiddenLayers(), c.hiddenSize(),
                c.numAttentionHeads(), c.headDim());
        return scalar == 0 || scalar == llama ? 1f : (float) Math.sqrt(llama / scalar);
    }

    /** The d of llama.cpp's 1/√d attention-score scale for gemma2/gemma3 (llama-model's f_attention_scale). */
    static double llamaCppScoreDenominator(String modelType, int layers, int hidden, int heads, int headDim) {
        boolean is27b = modelType.equals("gemma2") ? layers == 46 : layers == 62;
        return is27b ? (double) (hidden / heads) : headDim;
    }

    /**
     * llama.cpp's sliding_window_pattern p (layer i slides iff i mod p &lt; p − 1; p = 1: none)
     * that gives these layers, or a refusal naming the layer types when no period does.
     */
    static int swaPattern(LlamaConfig c) {
        List<Boolean> sliding = c.architecture().slidingLayers();
        int n = c.numHiddenLayers();
        for (int p = 1; p <= n + 1; p++) {
            boolean ok = true;
            for (int i = 0; i < n && ok; i++) {
                ok = c.architecture().sliding(i) == (i % p < p - 1);
            }
            if (ok) {
                return p;
            }
        }
        throw new IllegalArgumentException(c.modelType() + ": the sliding layers " + sliding + " follow no period that "
                + "llama.cpp's sliding_window_pattern can express (layer i slides iff i mod p < p - 1); it cannot be exported");
    }

    static void putHyperParameters(GgufWriter w, GgufArchitecture arch, LlamaConfig c, GgmlType type) {
        String a = arch.name();
        w.putString("general.architecture", a);
        w.putU32("general.file_type", fileType(type));
        if (type.isQuantized()) {
            w.putU32("general.quantization_version", 2);
        }
        w.putU32(a + ".context_length", c.maxPositionEmbeddings());
        w.putU32(a + ".embedding_length", c.hiddenSize());
        w.putU32(a + ".block_count", c.numHiddenLayers());
        w.putU32(a + ".feed_forward_length", c.intermediateSize());
        w.putU32(a + ".attention.head_count", c.numAttentionHeads());
        w.putU32(a + ".attention.head_count_kv", c.numKeyValueHeads());
        dev.lora4j.model.Architecture at = c.architecture();
        if (at.norm() == dev.lora4j.model.Architecture.Norm.LAYER_NORM) {
            w.putF32(a + ".attention.layer_norm_epsilon", c.rmsNormEps());
        } else {
            w.putF32(a + ".attention.layer_norm_rms_epsilon", c.rmsNormEps());
        }
        w.putF32(a + ".rope.freq_base", c.ropeTheta());
        w.putU32(a + ".rope.dimension_count", (int) Math.round(c.headDim() * at.partialRotaryFactor()));
        w.putU32(a + ".attention.key_length", c.headDim());
        w.putU32(a + ".attention.value_length", c.headDim());
        w.putU32(a + ".vocab_size", c.vocabSize());
        GgufRope.write(w, arch, c);
        if (a.equals("falcon") && (at.qkvBias() || at.outputBias() || at.mlpBias())) {
            throw new IllegalArgumentException("falcon: this checkpoint has \"bias\": true, but llama.cpp's falcon "
                    + "architecture has no biases on query_key_value, dense or the MLP; it cannot be exported");
        }
        if (a.equals("falcon") && c.numKeyValueHeads() != 1) {
            throw new IllegalArgumentException("falcon: lora4j exports the falcon-7b layout (one key/value head), this "
                    + "config has " + c.numKeyValueHeads());
        }
        boolean anySliding = c.slidingWindow() != null && at.slidingLayers().contains(true);
        switch (a) {
            case "gemma2", "gemma3" -> {
                if (a.equals("gemma2") && (at.attnSoftCap() == 0 || at.finalSoftCap() == 0)) {
                    throw new IllegalArgumentException("gemma2: attn_logit_softcapping is " + at.attnSoftCap()
                            + " and final_logit_softcapping " + at.finalSoftCap() + " (0 = none), but llama.cpp's gemma2 "
                            + "always applies both soft-caps; a Gemma 2 model without them cannot be exported");
                }
                if (at.attnSoftCap() > 0) {
                    w.putF32(a + ".attn_logit_softcapping", at.attnSoftCap());
                }
                if (at.finalSoftCap() > 0) {
                    w.putF32(a + ".final_logit_softcapping", at.finalSoftCap());
                }
                if (anySliding) {
                    w.putU32(a + ".attention.sliding_window", c.slidingWindow());
                    w.putU32(a + ".attention.sliding_window_pattern", swaPattern(c));
                    if (at.localRopeTheta() > 0) {
                        w.putF32(a + ".rope.freq_base_swa", at.localRopeTheta());
                    }
                } else if (a.equals("gemma2")) {
                    w.putU32(a + ".attention.sliding_window_pattern", 1); // llama.cpp's gemma2 slides by default
                }
            }
            default -> {
                if (anySliding && c.slidingWindow() < c.maxPositionEmbeddings()) {
                    // llama.cpp's llama, qwen2, qwen3 and phi3 graphs attend to the whole context (its converter
                    // writes the window nowhere; phi3 reads one but disables it), which equals the sliding window
                    // only up to the window's length: that is the context the file can claim
                    w.putU32(a + ".context_length", c.slidingWindow());
                    LOG.warn("{}: llama.cpp's {} architecture has no sliding window and attends to the whole context, "
                            + "which equals lora4j's sliding window of {} positions only for sequences up to that length; "
                            + "{}.context_length is written as {} instead of max_position_embeddings {} (llama.cpp warns "
                            + "when run with a longer context)", c.modelType(), a, c.slidingWindow(), a,
                            c.slidingWindow(), c.maxPositionEmbeddings());
                }
            }
        }
    }

    private static List<Path> write(GgufWriter w, Path out) {
        try {
            w.write(out);
            return List.of(out);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + out + ": " + e.getMessage(), e);
        }
    }

    private static List<Path> writeSplit(GgufWriter w, Path out, long splitMaxBytes) {
        try {
            return w.writeSplit(out, splitMaxBytes);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + out + " split into shards of " + splitMaxBytes + " bytes: "
                    + e.getMessage(), e);
        }
    }
}
