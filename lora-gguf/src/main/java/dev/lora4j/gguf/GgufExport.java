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
     * Writes {@code model} as a GGUF model file: hyper-parameters, the tokenizer of
     * {@code tokenizerFolder} (tokenizer.json, tokenizer_config.json with its chat template; null
     * required: llama.cpp loads no model without a vocabulary), and every tensor under llama.cpp's name.
     * Matrices are stored as {@code type} (F32, F16, BF16 or Q8_0), vectors (norms, biases) as F32;
     * a matrix whose rows are not a multiple of 32 falls back from Q8_0 to F16, as llama.cpp's
     * converter does. One tensor is widened at a time.
     */
    public static void model(LlamaModel model, Path tokenizerFolder, GgmlType type, Path out) {
        LlamaConfig config = model.config();
        GgufArchitecture arch = GgufArchitecture.of(config);
        GgufWriter w = new GgufWriter();
        putHyperParameters(w, arch, config, type);
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
        List<String> fallbacks = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String hf = e.getKey();
            Tensor t = e.getValue();
            String gguf = arch.ggufName(hf).orElseThrow(() -> new IllegalArgumentException("tensor " + hf
                    + " has no llama.cpp name for architecture " + arch.name() + "; it cannot be exported"));
            int[] shape = t.shape();
            GgmlType tensorType = shape.length == 1 ? GgmlType.F32 : type;
            if (tensorType.blockSize() > 1 && shape[shape.length - 1] % tensorType.blockSize() != 0) {
                fallbacks.add(gguf);
                tensorType = GgmlType.F16;
            }
            int heads = arch.permutationHeads(hf, config);
            GgmlType finalType = tensorType;
            w.add(gguf, shape, finalType, () -> {
                float[] values = t.toFloatArray();
                if (heads > 0) {
                    int cols = shape.length == 2 ? shape[1] : 1;
                    values = GgufArchitecture.permuteRows(values, shape[0], cols, heads, false);
                }
                return GgmlQuants.encode(finalType, values);
            });
        }
        if (!fallbacks.isEmpty()) {
            LOG.info("{} tensor(s) have rows that are not a multiple of {}'s block size {} and are stored as F16: {}",
                    fallbacks.size(), type, type.blockSize(), fallbacks);
        }
        write(w, out);
        LOG.info("wrote {} model ({} tensors, {}) as GGUF to {}", config.modelType(), tensors.size(), type, out);
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
        w.putF32(a + ".attention.layer_norm_rms_epsilon", c.rmsNormEps());
        w.putF32(a + ".rope.freq_base", c.ropeTheta());
        w.putU32(a + ".rope.dimension_count", c.headDim());
        w.putU32(a + ".attention.key_length", c.headDim());
        w.putU32(a + ".attention.value_length", c.headDim());
        w.putU32(a + ".vocab_size", c.vocabSize());
        LlamaConfig.RopeScaling s = c.ropeScaling();
        if (s != null) {
            if (!s.type().equals("linear")) {
                throw new IllegalArgumentException("rope_scaling type '" + s.type() + "' is not exported to GGUF by "
                        + "lora4j yet (llama.cpp needs a rope_freqs tensor for it); linear scaling is supported");
            }
            w.putString(a + ".rope.scaling.type", "linear");
            w.putF32(a + ".rope.scaling.factor", s.factor());
        }
    }

    private static void write(GgufWriter w, Path out) {
        try {
            w.write(out);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + out + ": " + e.getMessage(), e);
        }
    }
}
