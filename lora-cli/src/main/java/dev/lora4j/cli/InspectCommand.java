package dev.lora4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.lora4j.lora.AdapterConfigJson;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MemoryPlan;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.quant.QuantConfig;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j inspect}: the architecture of a model and the parameter counts of a LoRA setting
 * on it (trainable / total), computed from the config alone, so a 70B model is inspected in
 * milliseconds without its weights.
 */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Print a model's architecture and the trainable / total parameters of a LoRA setting.",
            "MODEL is a Hugging Face model folder, a config.json, or a model preset (listed under MODEL below).",
            "LoRA targets: the presets all-linear (the default; PEFT's all-linear) and all (plus lm_head), see --targets."},
        footer = {"", "Example: lora4j inspect llama2-7b --rank 8 --targets all"})
public final class InspectCommand implements Callable<Integer> {

    /** Published configs of well-known models, by the name inspect accepts. */
    static final Map<String, Supplier<LlamaConfig>> PRESETS = presets();

    @Spec
    private CommandSpec spec;

    @Parameters(index = "0", paramLabel = "MODEL", completionCandidates = PresetNames.class,
            description = "Model folder, config.json, or model preset: ${COMPLETION-CANDIDATES}.")
    String model;

    @Mixin
    LoraOptions loraOptions;

    @Option(names = "--adapter", paramLabel = "DIR",
            description = "Count the LoRA setting of this PEFT adapter folder's adapter_config.json instead of the "
                    + "--rank/--alpha/--targets options.")
    Path adapter;

    @Option(names = "--json", description = "Print one JSON object instead of text.")
    boolean json;

    @Option(names = "--micro-batch-size", defaultValue = "1", paramLabel = "N",
            description = "Micro-batch of the memory plan (default: ${DEFAULT-VALUE}).")
    int microBatchSize;

    @Option(names = "--seq-length", defaultValue = "" + DEFAULT_PLAN_LENGTH, paramLabel = "N",
            description = "Tokens per sequence of the memory plan (default: ${DEFAULT-VALUE}, or the context if shorter).")
    int seqLength;

    @Option(names = "--activation-checkpointing", description = "Plan with activation checkpointing.")
    boolean activationCheckpointing;

    @Option(names = "--quantize", paramLabel = "TYPE", converter = ModelOptions.QuantConverter.class,
            description = "Plan a QLoRA run: the projections in 4 bits (nf4, nf4-dq, fp4, fp4-dq[@BLOCKSIZE]).")
    QuantConfig quantize;

    /** Sequence length of inspect's memory plan unless --seq-length says otherwise. */
    static final int DEFAULT_PLAN_LENGTH = 512;

    @Override
    public Integer call() throws IOException {
        LlamaConfig config = resolveConfig();
        LlamaModel meta = LlamaModel.meta(config);
        // Llama names (--targets groups) become the family's module names, e.g. qkv_proj for phi3
        LoraConfig lora = Target.forModel(adapter != null ? adapterConfig() : loraOptions.toLoraConfig(),
                config.architecture(), meta.linears().keySet());
        List<String> adapted;
        try {
            adapted = lora.validateAgainst(meta.linears().keySet());
        } catch (IllegalArgumentException e) {
            throw OptionErrors.usage(spec, "the LoRA targets do not fit " + model + ": " + e.getMessage());
        }
        LoraModel.ParameterCount count = LoraModel.count(config, lora);
        Map<String, Object> report = report(config, lora, adapted.size(), count, meta);
        MemoryPlan plan = memoryPlan(config, lora);
        report.put("memory_plan", planReport(plan));
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(report));
        } else {
            printText(out, config, lora, adapted.size(), count, report);
            out.println(plan.format());
        }
        out.flush();
        return 0;
    }

    /**
     * The memory plan of training this LoRA setting at --micro-batch-size x --seq-length (default
     * 1 x 512) with AdamW, the base memory-mapped as its torch_dtype says (4-bit projections with
     * --quantize).
     */
    private MemoryPlan memoryPlan(LlamaConfig c, LoraConfig lora) {
        if (microBatchSize < 1) {
            throw OptionErrors.invalid(spec, "--micro-batch-size", microBatchSize, "must be at least 1");
        }
        if (seqLength < 1) {
            throw OptionErrors.invalid(spec, "--seq-length", seqLength, "must be at least 1");
        }
        int length = Math.min(seqLength, c.maxPositionEmbeddings());
        String dtype = c.torchDtype();
        MemoryPlan.Weights weights = MemoryPlan.Weights.stored("bfloat16".equals(dtype) || "float16".equals(dtype) ? 2 : 4,
                true);
        if (quantize != null) {
            weights = weights.quantized(quantize.blocksize(), quantize.doubleQuant());
        }
        return MemoryPlan.of(c, lora, weights, new MemoryPlan.Shape(microBatchSize, length, MemoryPlan.Optimizer.ADAMW,
                activationCheckpointing, dev.lora4j.backend.Parallel.parallelism()));
    }

    private static Map<String, Object> planReport(MemoryPlan plan) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("micro_batch_size", plan.shape().microBatchSize());
        m.put("sequence_length", plan.shape().sequenceLength());
        m.put("optimizer", plan.shape().optimizer().name().toLowerCase(Locale.ROOT));
        m.put("activation_checkpointing", plan.shape().activationCheckpointing());
        m.put("threads", plan.shape().threads());
        Map<String, Object> rows = new LinkedHashMap<>();
        for (MemoryPlan.Row r : plan.rows()) {
            rows.put(r.name(), r.bytes());
        }
        m.put("rows_bytes", rows);
        m.put("predicted_peak_heap_bytes", plan.predictedPeakHeap());
        m.put("predicted_rss_bytes", plan.predictedRss());
        return m;
    }

    private LlamaConfig resolveConfig() {
        Supplier<LlamaConfig> preset = PRESETS.get(model.toLowerCase(Locale.ROOT));
        if (preset != null) {
            return preset.get();
        }
        Path path = Path.of(model);
        Path configJson = Files.isDirectory(path) ? path.resolve("config.json") : path;
        if (!Files.isRegularFile(configJson)) {
            throw OptionErrors.invalid(spec, "MODEL", model, Files.isDirectory(path)
                    ? "the folder has no config.json; give a Hugging Face model folder"
                    : "no such file or folder, and not a preset (presets: " + String.join(", ", PRESETS.keySet()) + ")");
        }
        try {
            return LlamaConfig.read(configJson);
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + configJson + ": " + e.getMessage(), e);
        }
    }

    private LoraConfig adapterConfig() {
        if (!Files.isRegularFile(adapter.resolve(AdapterConfigJson.FILE_NAME)) && !Files.isRegularFile(adapter)) {
            throw OptionErrors.invalid(spec, "--adapter", adapter, "no adapter_config.json there; give a PEFT adapter folder");
        }
        try {
            return AdapterConfigJson.read(adapter).lora();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + adapter + ": " + e.getMessage(), e);
        }
    }

    private Map<String, Object> report(LlamaConfig c, LoraConfig lora, int adaptedModules, LoraModel.ParameterCount count,
                                       LlamaModel meta) {
        Map<String, Object> modelInfo = new LinkedHashMap<>();
        modelInfo.put("source", model);
        modelInfo.put("model_type", c.modelType());
        modelInfo.put("layers", c.numHiddenLayers());
        modelInfo.put("hidden_size", c.hiddenSize());
        modelInfo.put("intermediate_size", c.intermediateSize());
        modelInfo.put("attention_heads", c.numAttentionHeads());
        modelInfo.put("key_value_heads", c.numKeyValueHeads());
        modelInfo.put("head_dim", c.headDim());
        modelInfo.put("vocab_size", c.vocabSize());
        modelInfo.put("max_position_embeddings", c.maxPositionEmbeddings());
        modelInfo.put("tie_word_embeddings", c.tieWordEmbeddings());
        modelInfo.put("torch_dtype", c.torchDtype());

        Map<String, Object> loraInfo = new LinkedHashMap<>();
        loraInfo.put("rank", lora.rank());
        loraInfo.put("alpha", lora.alpha());
        loraInfo.put("scaling", lora.scaling(lora.rank(), lora.alpha()));
        loraInfo.put("dropout", lora.dropout());
        loraInfo.put("target_modules", lora.targetModules());
        loraInfo.put("use_rslora", lora.useRslora());
        loraInfo.put("adapted_modules", adaptedModules);

        Map<String, Object> params = new LinkedHashMap<>();
        params.put("base", count.base());
        params.put("trainable", count.trainable());
        params.put("total", count.total());
        params.put("trainable_percent", count.trainablePercent());

        // what the frozen base occupies: 16-bit, and 4-bit NF4 with double quantization (QLoRA's
        // setting: the decoder projections quantized, embedding, norms and lm_head kept 16-bit)
        long projections = 0;
        long nf4Bytes = 0;
        for (Linear lin : meta.linears().values()) {
            if (!lin.name().equals("lm_head")) {
                projections += lin.weight().numel();
                nf4Bytes += QuantConfig.NF4_DQ.bytesFor(lin.weight().numel());
            }
        }
        Map<String, Object> memory = new LinkedHashMap<>();
        memory.put("base_bytes_16bit", 2 * count.base());
        memory.put("base_bytes_nf4_dq", nf4Bytes + 2 * (count.base() - projections));
        memory.put("lora_bytes_f32", 4 * count.trainable());

        Map<String, Object> report = new LinkedHashMap<>();
        report.put("model", modelInfo);
        report.put("lora", loraInfo);
        report.put("parameters", params);
        report.put("memory", memory);
        return report;
    }

    @SuppressWarnings("unchecked")
    private static void printText(PrintWriter out, LlamaConfig c, LoraConfig lora, int adaptedModules,
                                  LoraModel.ParameterCount count, Map<String, Object> report) {
        Map<String, Object> memory = (Map<String, Object>) report.get("memory");
        out.printf(Locale.ROOT, "model:    %s (%s), %d layers, hidden %d, intermediate %d, %d heads (%d key/value, head dim %d),%n",
                ((Map<String, Object>) report.get("model")).get("source"), c.modelType(), c.numHiddenLayers(), c.hiddenSize(),
                c.intermediateSize(), c.numAttentionHeads(), c.numKeyValueHeads(), c.headDim());
        out.printf(Locale.ROOT, "          vocabulary %,d, context %,d, tied embeddings %s%n", c.vocabSize(),
                c.maxPositionEmbeddings(), c.tieWordEmbeddings() ? "yes" : "no");
        out.printf(Locale.ROOT, "lora:     rank %d, alpha %s (scaling %s), dropout %s, %s on %d modules %s%n", lora.rank(),
                trim(lora.alpha()), trim(lora.scaling(lora.rank(), lora.alpha())), trim(lora.dropout()),
                lora.useRslora() ? "rsLoRA" : "LoRA", adaptedModules, lora.targetModules());
        out.printf(Locale.ROOT, "base params:      %,17d%n", count.base());
        out.printf(Locale.ROOT, "trainable params: %,17d  (%.4f%% of %,d total)%n", count.trainable(), count.trainablePercent(),
                count.total());
        out.printf(Locale.ROOT, "frozen base:      %s at 16 bits, %s as nf4-dq; LoRA weights %s (f32)%n",
                bytes((Long) memory.get("base_bytes_16bit")), bytes((Long) memory.get("base_bytes_nf4_dq")),
                bytes((Long) memory.get("lora_bytes_f32")));
    }

    private static String trim(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }

    static String bytes(long n) {
        if (n >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GiB", n / (double) (1L << 30));
        }
        if (n >= 1L << 20) {
            return String.format(Locale.ROOT, "%.2f MiB", n / (double) (1L << 20));
        }
        return String.format(Locale.ROOT, "%.1f KiB", n / 1024.0);
    }

    private static Map<String, Supplier<LlamaConfig>> presets() {
        Map<String, Supplier<LlamaConfig>> m = new LinkedHashMap<>();
        m.put("llama2-7b", LlamaConfig::llama2_7b);
        // meta-llama/Llama-2-13b-hf
        m.put("llama2-13b", () -> LlamaConfig.llama2_7b().toBuilder().source("llama2_13b").hiddenSize(5120)
                .intermediateSize(13824).numHiddenLayers(40).numAttentionHeads(40).numKeyValueHeads(40).build());
        // meta-llama/Meta-Llama-3-8B
        m.put("llama3-8b", () -> LlamaConfig.llama2_7b().toBuilder().source("llama3_8b").vocabSize(128256)
                .intermediateSize(14336).numKeyValueHeads(8).maxPositionEmbeddings(8192).ropeTheta(500000)
                .torchDtype("bfloat16").bosTokenId(128000).eosTokenIds(List.of(128001)).build());
        // mistralai/Mistral-7B-v0.1
        m.put("mistral-7b", () -> LlamaConfig.llama2_7b().toBuilder().source("mistral_7b").modelType("mistral")
                .architectures(List.of("MistralForCausalLM")).intermediateSize(14336).numKeyValueHeads(8)
                .maxPositionEmbeddings(32768).slidingWindow(4096).torchDtype("bfloat16").build());
        // the other families, from their published config.json (the keys lora4j reads)
        m.put("phi-1_5", () -> preset("microsoft/phi-1_5", "phi", "\"vocab_size\": 51200, \"hidden_size\": 2048,"
                + " \"intermediate_size\": 8192, \"num_hidden_layers\": 24, \"num_attention_heads\": 32,"
                + " \"num_key_value_heads\": 32, \"hidden_act\": \"gelu_new\", \"layer_norm_eps\": 1e-05,"
                + " \"partial_rotary_factor\": 0.5, \"rope_theta\": 10000.0, \"max_position_embeddings\": 2048,"
                + " \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\""));
        m.put("falcon-7b", () -> preset("tiiuae/falcon-7b", "falcon", "\"vocab_size\": 65024, \"hidden_size\": 4544,"
                + " \"num_hidden_layers\": 32, \"num_attention_heads\": 71, \"multi_query\": true, \"parallel_attn\": true,"
                + " \"new_decoder_architecture\": false, \"alibi\": false, \"bias\": false, \"layer_norm_epsilon\": 1e-05,"
                + " \"bos_token_id\": 11, \"eos_token_id\": 11, \"torch_dtype\": \"bfloat16\""));
        m.put("phi-3-mini-4k", () -> preset("microsoft/Phi-3-mini-4k-instruct", "phi3", "\"vocab_size\": 32064,"
                + " \"hidden_size\": 3072, \"intermediate_size\": 8192, \"num_hidden_layers\": 32,"
                + " \"num_attention_heads\": 32, \"num_key_value_heads\": 32, \"hidden_act\": \"silu\","
                + " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,"
                + " \"rope_scaling\": null, \"sliding_window\": 2047, \"tie_word_embeddings\": false, \"bos_token_id\": 1,"
                + " \"eos_token_id\": 32000, \"pad_token_id\": 32000, \"torch_dtype\": \"bfloat16\""));
        m.put("gemma-2-2b", () -> preset("google/gemma-2-2b", "gemma2", "\"vocab_size\": 256000, \"hidden_size\": 2304,"
                + " \"intermediate_size\": 9216, \"num_hidden_layers\": 26, \"num_attention_heads\": 8,"
                + " \"num_key_value_heads\": 4, \"head_dim\": 256, \"hidden_activation\": \"gelu_pytorch_tanh\","
                + " \"query_pre_attn_scalar\": 256, \"sliding_window\": 4096, \"max_position_embeddings\": 8192,"
                + " \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, \"attn_logit_softcapping\": 50.0,"
                + " \"final_logit_softcapping\": 30.0, \"bos_token_id\": 2, \"eos_token_id\": 1, \"pad_token_id\": 0,"
                + " \"torch_dtype\": \"float32\""));
        m.put("gemma-3-1b", () -> preset("google/gemma-3-1b-pt", "gemma3_text", "\"vocab_size\": 262144,"
                + " \"hidden_size\": 1152, \"intermediate_size\": 6912, \"num_hidden_layers\": 26,"
                + " \"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 256,"
                + " \"hidden_activation\": \"gelu_pytorch_tanh\", \"query_pre_attn_scalar\": 256, \"sliding_window\": 512,"
                + " \"sliding_window_pattern\": 6, \"max_position_embeddings\": 32768, \"rms_norm_eps\": 1e-06,"
                + " \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0, \"rope_scaling\": null,"
                + " \"final_logit_softcapping\": null, \"attn_logit_softcapping\": null, \"bos_token_id\": 2,"
                + " \"eos_token_id\": 1, \"pad_token_id\": 0, \"torch_dtype\": \"bfloat16\""));
        m.put("qwen3-0.6b", () -> preset("Qwen/Qwen3-0.6B", "qwen3", "\"vocab_size\": 151936, \"hidden_size\": 1024,"
                + " \"intermediate_size\": 3072, \"num_hidden_layers\": 28, \"num_attention_heads\": 16,"
                + " \"num_key_value_heads\": 8, \"head_dim\": 128, \"hidden_act\": \"silu\","
                + " \"max_position_embeddings\": 40960, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
                + " \"tie_word_embeddings\": true, \"use_sliding_window\": false, \"max_window_layers\": 28,"
                + " \"bos_token_id\": 151643, \"eos_token_id\": 151645, \"torch_dtype\": \"bfloat16\""));
        return m;
    }

    /** A config from the published config.json of {@code checkpoint} (its keys that lora4j reads). */
    private static LlamaConfig preset(String checkpoint, String modelType, String keys) {
        return LlamaConfig.parse("{\"model_type\": \"" + modelType + "\", " + keys + "}", checkpoint + " (preset)");
    }

    /** The preset names, for the help text. */
    static final class PresetNames implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return PRESETS.keySet().iterator();
        }
    }
}
