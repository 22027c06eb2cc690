package dev.lora4j.model;

import dev.lora4j.io.JsonLimits;
import dev.lora4j.io.PythonJson;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.StringJoiner;
import java.util.TreeMap;

/**
 * A decoder's configuration as described by a Hugging Face {@code config.json}: the Llama family
 * (model types {@code llama} — which includes TinyLlama and SmolLM —, {@code mistral} and
 * {@code qwen2}) read here, and {@code phi}, {@code falcon}, {@code phi3}, {@code gemma2},
 * {@code gemma3_text} and {@code qwen3} read by {@link FamilyConfigs} into the same normalized
 * fields plus the {@link Architecture} of their block (for those, {@code rmsNormEps} is the
 * LayerNorm epsilon where the family uses LayerNorm, and {@link #toJson()} writes back the
 * config.json that was read). Immutable; all accessors return effective values (defaults applied):
 * {@code num_key_value_heads} defaults to {@code num_attention_heads}, {@code head_dim} to
 * {@code hidden_size / num_attention_heads}, {@code rope_theta} to 10000 and
 * {@code tie_word_embeddings} to false, as in {@code transformers}.
 *
 * <p>Biases follow the architectures rather than a single flag: llama's {@code attention_bias}
 * adds a bias to q, k, v and o projections and {@code mlp_bias} to the MLP; mistral has none;
 * qwen2 always has q/k/v biases and no o bias (see {@link #qkvBias()}, {@link #outputProjBias()}).
 * For qwen2, {@link #slidingWindow()} is null unless {@code use_sliding_window} is true.
 *
 * <p>Validation errors are {@link IllegalArgumentException}s naming the source, the key, the
 * value and the rule, e.g. {@code config.json: num_attention_heads (32) must be divisible by
 * num_key_value_heads (5)}.
 */
public final class LlamaConfig {

    /** The Llama family, whose block is {@link Architecture#llamaFamily}. */
    static final List<String> LLAMA_FAMILY = List.of("llama", "mistral", "qwen2");

    public static final List<String> SUPPORTED_MODEL_TYPES = List.of("llama", "mistral", "qwen2", "phi", "falcon", "phi3",
            "gemma2", "gemma3_text", "qwen3");

    private static final ObjectMapper JSON = JsonLimits.mapper();

    /*
     * Sane upper bounds, checked before anything is sized from a config: each is far above every
     * published model (largest today: vocab 262,144, hidden 16,384 and 126 layers for Llama 3.1
     * 405B, intermediate 53,248, head_dim 256), and low enough that a hostile config cannot make
     * inspect or a model constructor allocate per-layer objects or tables by the billion.
     */
    /** Upper bound of {@code vocab_size}. */
    public static final int MAX_VOCAB_SIZE = 1 << 24;
    /** Upper bound of {@code hidden_size}. */
    public static final int MAX_HIDDEN_SIZE = 1 << 16;
    /** Upper bound of {@code intermediate_size}. */
    public static final int MAX_INTERMEDIATE_SIZE = 1 << 20;
    /** Upper bound of {@code num_hidden_layers}. */
    public static final int MAX_LAYERS = 1024;
    /** Upper bound of {@code num_attention_heads}, {@code num_key_value_heads} and {@code head_dim}. */
    public static final int MAX_HEADS = 1024;
    /** Largest config.json read. */
    public static final long MAX_FILE_BYTES = 64L << 20;

    /**
     * RoPE frequency scaling. {@code linear} divides positions by {@code factor}; {@code llama3}
     * (Llama 3.1+) rescales low frequencies by {@code factor}, keeps high frequencies, and
     * interpolates between wavelengths {@code original_max_position_embeddings / low_freq_factor}
     * and {@code original_max_position_embeddings / high_freq_factor}; {@link #FREQUENCY_FACTORS}
     * divides each frequency by its own factor (from a GGUF file). Unused fields are 0 (empty).
     */
    public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
            int originalMaxPositionEmbeddings, List<Double> frequencyFactors) {

        public static final List<String> SUPPORTED_TYPES = List.of("llama3", "linear");

        /** The type of {@link #frequencyFactors(double[])}, which no config.json names. */
        public static final String FREQUENCY_FACTORS = "frequency_factors";

        public RopeScaling {
            frequencyFactors = List.copyOf(frequencyFactors);
        }

        /** A scaling without frequency factors (linear, llama3). */
        public RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
                int originalMaxPositionEmbeddings) {
            this(type, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings, List.of());
        }

        public static RopeScaling linear(double factor) {
            return new RopeScaling("linear", factor, 0, 0, 0);
        }

        public static RopeScaling llama3(double factor, double lowFreqFactor, double highFreqFactor,
                int originalMaxPositionEmbeddings) {
            return new RopeScaling("llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings);
        }

        /**
         * One divisor per rotated frequency (rotary_dim / 2 of them): frequency i is
         * 1/θ^(2i/D) / factors[i]. This is how llama.cpp stores Llama-3.1-style scaling (the
         * {@code rope_freqs.weight} tensor of a GGUF file), which keeps the factors but not the
         * llama3 parameters they were computed from; Hugging Face's config.json has no equivalent.
         */
        public static RopeScaling frequencyFactors(double[] factors) {
            List<Double> list = new ArrayList<>();
            for (double f : factors) {
                list.add(f);
            }
            return new RopeScaling(FREQUENCY_FACTORS, 1, 0, 0, 0, list);
        }

        Map<String, Object> toJsonMap() {
            if (type.equals(FREQUENCY_FACTORS)) {
                throw new IllegalStateException("rope_scaling: this model's RoPE frequency factors come from a GGUF "
                        + "rope_freqs tensor, which Hugging Face's config.json cannot express (GGUF does not keep the "
                        + "llama3 parameters they were computed from); save the adapter, or export the model as GGUF");
            }
            Map<String, Object> map = new TreeMap<>();
            map.put("rope_type", type);
            map.put("factor", factor);
            if (type.equals("llama3")) {
                map.put("low_freq_factor", lowFreqFactor);
                map.put("high_freq_factor", highFreqFactor);
                map.put("original_max_position_embeddings", originalMaxPositionEmbeddings);
            }
            return map;
        }
    }

    private final String modelType;
    private final List<String> architectures;
    private final int vocabSize;
    private final int hiddenSize;
    private final int intermediateSize;
    private final int numHiddenLayers;
    private final int numAttentionHeads;
    private final int numKeyValueHeads;
    private final int headDim;
    private final int maxPositionEmbeddings;
    private final double rmsNormEps;
    private final double ropeTheta;
    private final RopeScaling ropeScaling;
    private final boolean tieWordEmbeddings;
    private final boolean attentionBias;
    private final boolean mlpBias;
    private final String hiddenAct;
    private final String torchDtype;
    private final Integer bosTokenId;
    private final List<Integer> eosTokenIds;
    private final Integer padTokenId;
    private final Integer slidingWindow;
    private final Architecture architecture;
    /** config.json as read, for the families whose toJson() writes it back (null for the Llama family). */
    private final JsonNode raw;
    // what was given explicitly, so that toBuilder() recomputes defaults after a change
    private final Integer givenKeyValueHeads;
    private final Integer givenHeadDim;

    private LlamaConfig(Builder b) {
        String src = b.source;
        checkModelType(src, b.modelType);
        positive(src, "vocab_size", b.vocabSize);
        positive(src, "hidden_size", b.hiddenSize);
        positive(src, "intermediate_size", b.intermediateSize);
        positive(src, "num_hidden_layers", b.numHiddenLayers);
        positive(src, "num_attention_heads", b.numAttentionHeads);
        positive(src, "max_position_embeddings", b.maxPositionEmbeddings);
        atMost(src, "vocab_size", b.vocabSize, MAX_VOCAB_SIZE);
        atMost(src, "hidden_size", b.hiddenSize, MAX_HIDDEN_SIZE);
        atMost(src, "intermediate_size", b.intermediateSize, MAX_INTERMEDIATE_SIZE);
        atMost(src, "num_hidden_layers", b.numHiddenLayers, MAX_LAYERS);
        atMost(src, "num_attention_heads", b.numAttentionHeads, MAX_HEADS);
        if (b.numKeyValueHeads != null) {
            positive(src, "num_key_value_heads", b.numKeyValueHeads);
            atMost(src, "num_key_value_heads", b.numKeyValueHeads, MAX_HEADS);
        }
        if (b.headDim != null) {
            positive(src, "head_dim", b.headDim);
            atMost(src, "head_dim", b.headDim, MAX_HEADS);
        } else if (b.hiddenSize % b.numAttentionHeads != 0) {
            throw new IllegalArgumentException(src + ": hidden_size (" + b.hiddenSize
                    + ") must be divisible by num_attention_heads (" + b.numAttentionHeads + ") when head_dim is absent");
        }
        int kvHeads = b.numKeyValueHeads != null ? b.numKeyValueHeads : b.numAttentionHeads;
        int dim = b.headDim != null ? b.headDim : b.hiddenSize / b.numAttentionHeads;
        if (b.numAttentionHeads % kvHeads != 0) {
            throw new IllegalArgumentException(src + ": num_attention_heads (" + b.numAttentionHeads
                    + ") must be divisible by num_key_value_heads (" + kvHeads + ")");
        }
        if (dim % 2 != 0) {
            throw new IllegalArgumentException(src + ": head_dim (" + dim
                    + ") must be even: rotary embeddings rotate pairs of dimensions");
        }
        if (!(b.rmsNormEps > 0) || Double.isInfinite(b.rmsNormEps)) {
            throw new IllegalArgumentException(src + ": rms_norm_eps must be a finite number > 0, found " + b.rmsNormEps);
        }
        if (!(b.ropeTheta > 0) || Double.isInfinite(b.ropeTheta)) {
            throw new IllegalArgumentException(src + ": rope_theta must be a finite number > 0, found " + b.ropeTheta);
        }
        boolean llamaFamily = LLAMA_FAMILY.contains(b.modelType);
        if (!llamaFamily && b.architecture == null) {
            throw new IllegalArgumentException(src + ": model_type " + b.modelType + " is built by reading its config.json"
                    + " (LlamaConfig.parse or read); the builder alone makes Llama-family configs");
        }
        if (llamaFamily && !"silu".equals(b.hiddenAct)) {
            throw new IllegalArgumentException(src + ": hidden_act '" + b.hiddenAct
                    + "' is not supported; Llama-family MLPs use 'silu' (SwiGLU), the only activation lora4j implements");
        }
        if (b.ropeScaling != null) {
            validateRopeScaling(src, b.ropeScaling);
        }
        if (!b.modelType.equals("llama") && (b.attentionBias || b.mlpBias)) {
            throw new IllegalArgumentException(src + ": " + (b.attentionBias ? "attention_bias" : "mlp_bias")
                    + " is true but only model_type llama has that option (mistral has no biases; qwen2 always has"
                    + " q/k/v biases and no others)");
        }
        if (b.slidingWindow != null) {
            if (b.modelType.equals("llama")) {
                throw new IllegalArgumentException(src + ": sliding_window (" + b.slidingWindow
                        + ") is set but llama attends to the full context; it applies to mistral and qwen2 only");
            }
            positive(src, "sliding_window", b.slidingWindow);
        }
        for (Integer id : b.eosTokenIds) {
            if (id == null) {
                throw new IllegalArgumentException(src + ": eos_token_id list contains null");
            }
        }
        this.modelType = b.modelType;
        this.architectures = List.copyOf(b.architectures != null ? b.architectures : List.of(defaultArchitecture(b.modelType)));
        this.vocabSize = b.vocabSize;
        this.hiddenSize = b.hiddenSize;
        this.intermediateSize = b.intermediateSize;
        this.numHiddenLayers = b.numHiddenLayers;
        this.numAttentionHeads = b.numAttentionHeads;
        this.numKeyValueHeads = kvHeads;
        this.headDim = dim;
        this.maxPositionEmbeddings = b.maxPositionEmbeddings;
        this.rmsNormEps = b.rmsNormEps;
        this.ropeTheta = b.ropeTheta;
        this.ropeScaling = b.ropeScaling;
        this.tieWordEmbeddings = b.tieWordEmbeddings;
        this.attentionBias = b.attentionBias;
        this.mlpBias = b.mlpBias;
        this.hiddenAct = b.hiddenAct;
        this.torchDtype = b.torchDtype;
        this.bosTokenId = b.bosTokenId;
        this.eosTokenIds = List.copyOf(b.eosTokenIds);
        this.padTokenId = b.padTokenId;
        this.slidingWindow = b.slidingWindow;
        if (llamaFamily) {
            List<Boolean> sliding = b.slidingLayers;
            if (sliding == null) {
                sliding = new ArrayList<>();
                for (int i = 0; i < b.numHiddenLayers && b.slidingWindow != null; i++) {
                    sliding.add(true);
                }
            } else if (!sliding.isEmpty() && sliding.size() != b.numHiddenLayers) {
                throw new IllegalArgumentException(src + ": layer_types lists " + sliding.size()
                        + " layers but num_hidden_layers is " + b.numHiddenLayers);
            }
            this.architecture = Architecture.llamaFamily(b.modelType.equals("qwen2") || b.attentionBias, b.attentionBias,
                    b.mlpBias, b.slidingWindow == null ? List.of() : sliding);
        } else {
            this.architecture = b.architecture;
            if (architecture.slidingLayers().contains(true) && b.slidingWindow == null) {
                throw new IllegalArgumentException(src + ": layer_types has sliding_attention layers but sliding_window is"
                        + " not set");
            }
            int rotary = (int) (dim * architecture.partialRotaryFactor());
            if (rotary % 2 != 0 || rotary == 0) {
                throw new IllegalArgumentException(src + ": partial_rotary_factor " + architecture.partialRotaryFactor()
                        + " of head_dim " + dim + " gives " + rotary + " rotary dimensions; it must be a positive even number");
            }
        }
        if (ropeScaling != null && ropeScaling.type().equals(RopeScaling.FREQUENCY_FACTORS)
                && ropeScaling.frequencyFactors().size() != rotaryDim() / 2) {
            throw new IllegalArgumentException(src + ": " + ropeScaling.frequencyFactors().size() + " RoPE frequency factors "
                    + "given, but rotary_dim " + rotaryDim() + " has " + rotaryDim() / 2 + " frequencies");
        }
        this.raw = b.raw;
        this.givenKeyValueHeads = b.numKeyValueHeads;
        this.givenHeadDim = b.headDim;
    }

    private static void checkModelType(String src, String modelType) {
        if (modelType == null || !SUPPORTED_MODEL_TYPES.contains(modelType)) {
            throw new IllegalArgumentException(src + ": model_type " + (modelType == null ? "is missing" : "'" + modelType
                    + "' is not supported") + "; supported: " + String.join(", ", SUPPORTED_MODEL_TYPES));
        }
    }

    private static void positive(String src, String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(src + ": " + key + " must be a positive integer, found " + value);
        }
    }

    private static void atMost(String src, String key, int value, int bound) {
        if (value > bound) {
            throw new IllegalArgumentException(src + ": " + key + " is " + value + ", above lora4j's bound of " + bound
                    + " (LlamaConfig.MAX_" + boundName(key) + ", far above any published model); the config is damaged");
        }
    }

    private static String boundName(String key) {
        return switch (key) {
            case "vocab_size" -> "VOCAB_SIZE";
            case "hidden_size" -> "HIDDEN_SIZE";
            case "intermediate_size" -> "INTERMEDIATE_SIZE";
            case "num_hidden_layers" -> "LAYERS";
            default -> "HEADS";
        };
    }

    private static void validateRopeScaling(String src, RopeScaling s) {
        if (RopeScaling.FREQUENCY_FACTORS.equals(s.type())) {
            if (s.frequencyFactors().isEmpty()) {
                throw new IllegalArgumentException(src + ": RoPE frequency factors must not be empty");
            }
            for (double f : s.frequencyFactors()) {
                if (!(f > 0) || Double.isInfinite(f)) {
                    throw new IllegalArgumentException(src + ": RoPE frequency factors must be finite numbers > 0, found "
                            + f + " in " + s.frequencyFactors());
                }
            }
            return;
        }
        if (s.type() == null || !RopeScaling.SUPPORTED_TYPES.contains(s.type())) {
            throw new IllegalArgumentException(src + ": rope_scaling type '" + s.type() + "' is not supported; supported: "
                    + String.join(", ", RopeScaling.SUPPORTED_TYPES) + " (or rope_scaling null)");
        }
        if (!(s.factor() >= 1) || Double.isInfinite(s.factor())) {
            throw new IllegalArgumentException(src + ": rope_scaling factor must be a finite number >= 1, found " + s.factor());
        }
        if (s.type().equals("llama3")) {
            if (!(s.lowFreqFactor() > 0) || !(s.highFreqFactor() > s.lowFreqFactor())) {
                throw new IllegalArgumentException(src + ": llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor,"
                        + " found low_freq_factor " + s.lowFreqFactor() + " and high_freq_factor " + s.highFreqFactor());
            }
            if (s.originalMaxPositionEmbeddings() <= 0) {
                throw new IllegalArgumentException(src + ": llama3 rope_scaling needs a positive"
                        + " original_max_position_embeddings, found " + s.originalMaxPositionEmbeddings());
            }
        }
    }

    private static String defaultArchitecture(String modelType) {
        return switch (modelType) {
            case "mistral" -> "MistralForCausalLM";
            case "qwen2" -> "Qwen2ForCausalLM";
            default -> "LlamaForCausalLM";
        };
    }

    // ---------------------------------------------------------------- presets

    /** meta-llama/Llama-2-7b-hf as published. */
    public static LlamaConfig llama2_7b() {
        return builder().source("llama2_7b").modelType("llama").vocabSize(32000).hiddenSize(4096)
                .intermediateSize(11008).numHiddenLayers(32).numAttentionHeads(32).numKeyValueHeads(32)
                .maxPositionEmbeddings(4096).rmsNormEps(1e-5).ropeTheta(10000).tieWordEmbeddings(false)
                .torchDtype("float16").bosTokenId(1).eosTokenIds(List.of(2)).build();
    }

    // ---------------------------------------------------------------- JSON

    /** Reads and validates a Hugging Face config.json; errors name the file. */
    public static LlamaConfig read(Path configJson) throws IOException {
        return parse(JsonLimits.readSmallFile(configJson, MAX_FILE_BYTES, "config.json"), configJson.toString());
    }

    /**
     * Parses config.json text; {@code sourceName} starts every error message. Unknown keys are
     * ignored; {@code rope_parameters} (transformers 5) is read like {@code rope_theta} plus
     * {@code rope_scaling}, and {@code dtype} like {@code torch_dtype}.
     */
    public static LlamaConfig parse(String json, String sourceName) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(sourceName + ": not valid JSON " + JsonLimits.describe(e), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(sourceName + ": expected a JSON object");
        }
        Reader r = new Reader(root, sourceName);
        String modelType = r.string("model_type", null);
        checkModelType(sourceName, modelType);
        if (FamilyConfigs.MODEL_TYPES.contains(modelType)) {
            return FamilyConfigs.read(modelType, root, r, sourceName).build();
        }
        Builder b = builder().source(sourceName).modelType(modelType)
                .architectures(r.stringList("architectures"))
                .vocabSize(r.requiredInt("vocab_size"))
                .hiddenSize(r.requiredInt("hidden_size"))
                .intermediateSize(r.requiredInt("intermediate_size"))
                .numHiddenLayers(r.requiredInt("num_hidden_layers"))
                .numAttentionHeads(r.requiredInt("num_attention_heads"))
                .numKeyValueHeads(r.optionalInt("num_key_value_heads"))
                .headDim(r.optionalInt("head_dim"))
                .maxPositionEmbeddings(r.requiredInt("max_position_embeddings"))
                .rmsNormEps(r.requiredNumber("rms_norm_eps"))
                .tieWordEmbeddings(r.bool("tie_word_embeddings", false))
                .hiddenAct(r.string("hidden_act", "silu"))
                .torchDtype(r.string("torch_dtype", r.string("dtype", null)))
                .bosTokenId(r.optionalInt("bos_token_id"))
                .eosTokenIds(r.intOrIntList("eos_token_id"))
                .padTokenId(r.optionalInt("pad_token_id"));
        readRope(b, root, r, sourceName, 10000);
        if (modelType.equals("llama")) {
            b.attentionBias(r.bool("attention_bias", false)).mlpBias(r.bool("mlp_bias", false));
        } else if (modelType.equals("mistral")) {
            b.slidingWindow(r.optionalInt("sliding_window"));
        } else if (modelType.equals("qwen2")) {
            Integer window = r.bool("use_sliding_window", false) ? r.optionalInt("sliding_window") : null;
            b.slidingWindow(window);
            if (window != null) {
                // transformers' Qwen2Config: layers from max_window_layers (default 28) on use the window
                int maxWindowLayers = r.present("max_window_layers") ? r.requiredInt("max_window_layers") : 28;
                b.slidingLayers(FamilyConfigs.layerTypes(r, sourceName, b.numHiddenLayers, i -> i >= maxWindowLayers));
            }
        }
        return b.build();
    }

    /**
     * rope_theta and rope_scaling, or transformers 5's rope_parameters holding both; the rope
     * scaling types lora4j does not implement are refused, naming the key.
     */
    static void readRope(Builder b, JsonNode root, Reader r, String sourceName, double thetaDefault) {
        JsonNode ropeParameters = r.present("rope_parameters") ? root.get("rope_parameters") : null;
        double ropeTheta = r.number("rope_theta", thetaDefault);
        JsonNode scaling = r.present("rope_scaling") ? root.get("rope_scaling") : null;
        if (ropeParameters != null) {
            Reader p = new Reader(ropeParameters, sourceName + ": rope_parameters");
            ropeTheta = p.number("rope_theta", ropeTheta);
            scaling = ropeParameters;
        }
        b.ropeTheta(ropeTheta).ropeScaling(scaling == null ? null : parseRopeScaling(scaling, sourceName));
    }

    private static RopeScaling parseRopeScaling(JsonNode node, String sourceName) {
        String where = sourceName + ": rope_scaling";
        if (!node.isObject()) {
            throw new IllegalArgumentException(where + " must be null or an object, found " + node);
        }
        Reader s = new Reader(node, where);
        String type = s.string("rope_type", s.string("type", null));
        if (type == null) {
            throw new IllegalArgumentException(where + " has no \"rope_type\" (or \"type\"); supported: "
                    + String.join(", ", RopeScaling.SUPPORTED_TYPES));
        }
        return switch (type) {
            case "default" -> null;
            case "linear" -> RopeScaling.linear(s.requiredNumber("factor"));
            case "llama3" -> RopeScaling.llama3(s.requiredNumber("factor"), s.requiredNumber("low_freq_factor"),
                    s.requiredNumber("high_freq_factor"), s.requiredInt("original_max_position_embeddings"));
            default -> throw new IllegalArgumentException(where + " type '" + type + "' is not supported; supported: "
                    + String.join(", ", RopeScaling.SUPPORTED_TYPES) + " (or rope_scaling null)");
        };
    }

    /** Typed access to a JSON object, where JSON null counts as absent. */
    record Reader(JsonNode node, String where) {

        boolean present(String key) {
            JsonNode v = node.get(key);
            return v != null && !v.isNull();
        }

        int requiredInt(String key) {
            if (!present(key)) {
                throw new IllegalArgumentException(where + ": " + key + " is missing");
            }
            return toInt(key, node.get(key));
        }

        Integer optionalInt(String key) {
            return present(key) ? toInt(key, node.get(key)) : null;
        }

        private int toInt(String key, JsonNode v) {
            if (!v.isIntegralNumber() || !v.canConvertToInt()) {
                throw new IllegalArgumentException(where + ": " + key + " must be an integer, found " + v);
            }
            return v.intValue();
        }

        double requiredNumber(String key) {
            if (!present(key)) {
                throw new IllegalArgumentException(where + ": " + key + " is missing");
            }
            return number(key, 0);
        }

        double number(String key, double absent) {
            if (!present(key)) {
                return absent;
            }
            JsonNode v = node.get(key);
            if (!v.isNumber()) {
                throw new IllegalArgumentException(where + ": " + key + " must be a number, found " + v);
            }
            return v.doubleValue();
        }

        boolean bool(String key, boolean absent) {
            if (!present(key)) {
                return absent;
            }
            JsonNode v = node.get(key);
            if (!v.isBoolean()) {
                throw new IllegalArgumentException(where + ": " + key + " must be true or false, found " + v);
            }
            return v.booleanValue();
        }

        String string(String key, String absent) {
            if (!present(key)) {
                return absent;
            }
            JsonNode v = node.get(key);
            if (!v.isTextual()) {
                throw new IllegalArgumentException(where + ": " + key + " must be a string, found " + v);
            }
            return v.textValue();
        }

        List<String> stringList(String key) {
            if (!present(key)) {
                return null;
            }
            JsonNode v = node.get(key);
            List<String> out = new ArrayList<>();
            for (JsonNode item : v) {
                out.add(item.textValue());
            }
            if (!v.isArray() || out.contains(null)) {
                throw new IllegalArgumentException(where + ": " + key + " must be a list of strings, found " + v);
            }
            return out;
        }

        List<Integer> intOrIntList(String key) {
            if (!present(key)) {
                return List.of();
            }
            JsonNode v = node.get(key);
            if (!v.isArray()) {
                return List.of(toInt(key, v));
            }
            List<Integer> out = new ArrayList<>();
            for (JsonNode item : v) {
                out.add(toInt(key, item));
            }
            return out;
        }
    }

    /**
     * This configuration as a Hugging Face config.json (keys sorted, two-space indent, as
     * {@code save_pretrained} writes it) that {@link #parse} reads back equal.
     */
    public String toJson() {
        if (raw != null) {
            return rawJson();
        }
        Map<String, Object> map = new TreeMap<>();
        map.put("architectures", architectures);
        map.put("model_type", modelType);
        map.put("vocab_size", vocabSize);
        map.put("hidden_size", hiddenSize);
        map.put("intermediate_size", intermediateSize);
        map.put("num_hidden_layers", numHiddenLayers);
        map.put("num_attention_heads", numAttentionHeads);
        map.put("num_key_value_heads", numKeyValueHeads);
        map.put("head_dim", headDim);
        map.put("max_position_embeddings", maxPositionEmbeddings);
        map.put("rms_norm_eps", rmsNormEps);
        map.put("rope_theta", ropeTheta);
        map.put("rope_scaling", ropeScaling == null ? null : ropeScaling.toJsonMap());
        map.put("tie_word_embeddings", tieWordEmbeddings);
        map.put("hidden_act", hiddenAct);
        switch (modelType) {
            case "llama" -> {
                map.put("attention_bias", attentionBias);
                map.put("mlp_bias", mlpBias);
            }
            case "mistral" -> map.put("sliding_window", slidingWindow);
            default -> {
                map.put("use_sliding_window", slidingWindow != null);
                map.put("sliding_window", slidingWindow);
                if (slidingWindow != null) {
                    int first = architecture.slidingLayers().indexOf(true);
                    map.put("max_window_layers", first < 0 ? numHiddenLayers : first);
                }
            }
        }
        if (torchDtype != null) {
            map.put("torch_dtype", torchDtype);
        }
        if (bosTokenId != null) {
            map.put("bos_token_id", bosTokenId);
        }
        if (!eosTokenIds.isEmpty()) {
            map.put("eos_token_id", eosTokenIds.size() == 1 ? eosTokenIds.get(0) : eosTokenIds);
        }
        if (padTokenId != null) {
            map.put("pad_token_id", padTokenId);
        }
        // transformers writes json.dumps(config, indent=2, sort_keys=True) + "\n"
        return PythonJson.dumps(map, 2, true) + "\n";
    }

    /**
     * The families read by {@link FamilyConfigs} write back the config.json they were read from
     * (every key transformers needs, including those lora4j only checks), with the values a
     * builder may have changed: tie_word_embeddings and torch_dtype.
     */
    private String rawJson() {
        try {
            com.fasterxml.jackson.databind.node.ObjectNode copy = raw.deepCopy();
            copy.put("tie_word_embeddings", tieWordEmbeddings);
            if (torchDtype != null) {
                copy.remove("dtype");
                copy.put("torch_dtype", torchDtype);
            }
            Map<String, Object> map = JSON.convertValue(copy, new com.fasterxml.jackson.core.type.TypeReference<TreeMap<String, Object>>() { });
            return PythonJson.dumps(map, 2, true) + "\n";
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(source() + ": cannot write config.json back: " + e.getMessage(), e);
        }
    }

    private String source() {
        return modelType + " config";
    }

    public void write(Path configJson) throws IOException {
        Files.writeString(configJson, toJson());
    }

    // ---------------------------------------------------------------- accessors

    public String modelType() {
        return modelType;
    }

    public List<String> architectures() {
        return architectures;
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int hiddenSize() {
        return hiddenSize;
    }

    public int intermediateSize() {
        return intermediateSize;
    }

    public int numHiddenLayers() {
        return numHiddenLayers;
    }

    public int numAttentionHeads() {
        return numAttentionHeads;
    }

    public int numKeyValueHeads() {
        return numKeyValueHeads;
    }

    public int headDim() {
        return headDim;
    }

    public int maxPositionEmbeddings() {
        return maxPositionEmbeddings;
    }

    public double rmsNormEps() {
        return rmsNormEps;
    }

    public double ropeTheta() {
        return ropeTheta;
    }

    /** Null when positions are not rescaled. */
    public RopeScaling ropeScaling() {
        return ropeScaling;
    }

    public boolean tieWordEmbeddings() {
        return tieWordEmbeddings;
    }

    /** llama's {@code attention_bias} flag as configured (false for other model types). */
    public boolean attentionBias() {
        return attentionBias;
    }

    /** Whether gate/up/down projections have biases (llama's {@code mlp_bias}). */
    public boolean mlpBias() {
        return architecture.mlpBias();
    }

    public String hiddenAct() {
        return hiddenAct;
    }

    /** The checkpoint's stored precision ("float32", "bfloat16", ...), or null if not stated. */
    public String torchDtype() {
        return torchDtype;
    }

    public Integer bosTokenId() {
        return bosTokenId;
    }

    /** End-of-sequence ids (several for chat models that stop on any of them); may be empty. */
    public List<Integer> eosTokenIds() {
        return eosTokenIds;
    }

    public Integer padTokenId() {
        return padTokenId;
    }

    /** Attention window in tokens (mistral, qwen2 with use_sliding_window), or null for full attention. */
    public Integer slidingWindow() {
        return slidingWindow;
    }

    /** Whether q, k and v projections have biases: llama's attention_bias, always for qwen2, per family otherwise. */
    public boolean qkvBias() {
        return architecture.qkvBias();
    }

    /** Whether the attention output projection has a bias: llama with attention_bias, phi, per family otherwise. */
    public boolean outputProjBias() {
        return architecture.outputBias();
    }

    /** The parts of this family's decoder block. */
    public Architecture architecture() {
        return architecture;
    }

    /** Whether the model family is Llama-shaped (llama, mistral, qwen2). */
    public boolean isLlamaFamily() {
        return LLAMA_FAMILY.contains(modelType);
    }

    /** The sliding window of layer {@code layer}, or 0 when it attends over the full causal context. */
    public int windowOf(int layer) {
        return slidingWindow != null && architecture.sliding(layer) ? slidingWindow : 0;
    }

    /** Head dimensions that RoPE rotates: head_dim times partial_rotary_factor. */
    public int rotaryDim() {
        return (int) (headDim * architecture.partialRotaryFactor());
    }

    /** Query heads per key/value head (1 for multi-head attention). */
    public int numKeyValueGroups() {
        return numAttentionHeads / numKeyValueHeads;
    }

    /** Output width of q_proj: {@code num_attention_heads * head_dim}. */
    public int queryDim() {
        return numAttentionHeads * headDim;
    }

    /** Output width of k_proj and v_proj: {@code num_key_value_heads * head_dim}. */
    public int keyValueDim() {
        return numKeyValueHeads * headDim;
    }

    // ---------------------------------------------------------------- builder, equality

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this configuration; defaults that were derived are derived again. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.modelType = modelType;
        b.architectures = architectures;
        b.vocabSize = vocabSize;
        b.hiddenSize = hiddenSize;
        b.intermediateSize = intermediateSize;
        b.numHiddenLayers = numHiddenLayers;
        b.numAttentionHeads = numAttentionHeads;
        b.numKeyValueHeads = givenKeyValueHeads;
        b.headDim = givenHeadDim;
        b.maxPositionEmbeddings = maxPositionEmbeddings;
        b.rmsNormEps = rmsNormEps;
        b.ropeTheta = ropeTheta;
        b.ropeScaling = ropeScaling;
        b.tieWordEmbeddings = tieWordEmbeddings;
        b.attentionBias = attentionBias;
        b.mlpBias = mlpBias;
        b.hiddenAct = hiddenAct;
        b.torchDtype = torchDtype;
        b.bosTokenId = bosTokenId;
        b.eosTokenIds = eosTokenIds;
        b.padTokenId = padTokenId;
        b.slidingWindow = slidingWindow;
        if (!isLlamaFamily()) {
            b.architecture = architecture;
            b.raw = raw;
        } else if (architecture.slidingLayers().contains(false)) {
            b.slidingLayers = architecture.slidingLayers();
        }
        return b;
    }

    /**
     * Mutable builder. Sizes and {@code rmsNormEps} have no defaults (build() rejects zeros);
     * {@code modelType} defaults to "llama", {@code hiddenAct} to "silu", {@code ropeTheta} to
     * 10000, {@code architectures} to the model type's CausalLM class.
     */
    public static final class Builder {
        private String source = "LlamaConfig";
        private String modelType = "llama";
        private List<String> architectures;
        private int vocabSize;
        private int hiddenSize;
        private int intermediateSize;
        private int numHiddenLayers;
        private int numAttentionHeads;
        private Integer numKeyValueHeads;
        private Integer headDim;
        private int maxPositionEmbeddings;
        private double rmsNormEps;
        private double ropeTheta = 10000;
        private RopeScaling ropeScaling;
        private boolean tieWordEmbeddings;
        private boolean attentionBias;
        private boolean mlpBias;
        private String hiddenAct = "silu";
        private String torchDtype;
        private Integer bosTokenId;
        private List<Integer> eosTokenIds = List.of();
        private Integer padTokenId;
        private Integer slidingWindow;
        private List<Boolean> slidingLayers;
        private Architecture architecture;
        private JsonNode raw;

        private Builder() {}

        /** The block of a non-Llama family, from its reader. */
        Builder architecture(Architecture value) {
            architecture = value;
            return this;
        }

        /** config.json as read, written back by toJson() for non-Llama families. */
        Builder raw(JsonNode value) {
            raw = value;
            return this;
        }

        /** Llama family: which layers use the sliding window (null: all when a window is set). */
        Builder slidingLayers(List<Boolean> value) {
            slidingLayers = value == null ? null : List.copyOf(value);
            return this;
        }

        int layers() {
            return numHiddenLayers;
        }

        /** Name that starts validation messages (a file name, or "LlamaConfig" by default). */
        public Builder source(String value) {
            source = Objects.requireNonNull(value);
            return this;
        }

        public Builder modelType(String value) {
            modelType = value;
            return this;
        }

        /** Null derives it from the model type. */
        public Builder architectures(List<String> value) {
            architectures = value == null ? null : List.copyOf(value);
            return this;
        }

        public Builder vocabSize(int value) {
            vocabSize = value;
            return this;
        }

        public Builder hiddenSize(int value) {
            hiddenSize = value;
            return this;
        }

        public Builder intermediateSize(int value) {
            intermediateSize = value;
            return this;
        }

        public Builder numHiddenLayers(int value) {
            numHiddenLayers = value;
            return this;
        }

        public Builder numAttentionHeads(int value) {
            numAttentionHeads = value;
            return this;
        }

        /** Null means one key/value head per query head. */
        public Builder numKeyValueHeads(Integer value) {
            numKeyValueHeads = value;
            return this;
        }

        /** Null means hidden_size / num_attention_heads. */
        public Builder headDim(Integer value) {
            headDim = value;
            return this;
        }

        public Builder maxPositionEmbeddings(int value) {
            maxPositionEmbeddings = value;
            return this;
        }

        public Builder rmsNormEps(double value) {
            rmsNormEps = value;
            return this;
        }

        public Builder ropeTheta(double value) {
            ropeTheta = value;
            return this;
        }

        public Builder ropeScaling(RopeScaling value) {
            ropeScaling = value;
            return this;
        }

        public Builder tieWordEmbeddings(boolean value) {
            tieWordEmbeddings = value;
            return this;
        }

        public Builder attentionBias(boolean value) {
            attentionBias = value;
            return this;
        }

        public Builder mlpBias(boolean value) {
            mlpBias = value;
            return this;
        }

        public Builder hiddenAct(String value) {
            hiddenAct = value;
            return this;
        }

        public Builder torchDtype(String value) {
            torchDtype = value;
            return this;
        }

        public Builder bosTokenId(Integer value) {
            bosTokenId = value;
            return this;
        }

        public Builder eosTokenIds(List<Integer> value) {
            eosTokenIds = value == null ? List.of() : new ArrayList<>(value);
            return this;
        }

        public Builder padTokenId(Integer value) {
            padTokenId = value;
            return this;
        }

        public Builder slidingWindow(Integer value) {
            slidingWindow = value;
            return this;
        }

        /** @throws IllegalArgumentException naming the source, key, value and rule on invalid settings */
        public LlamaConfig build() {
            return new LlamaConfig(this);
        }
    }

    /** Equality of effective values (so a config equals its own toJson() read back). */
    @Override
    public boolean equals(Object o) {
        return o instanceof LlamaConfig c && fields().equals(c.fields());
    }

    @Override
    public int hashCode() {
        return fields().hashCode();
    }

    @Override
    public String toString() {
        StringJoiner joiner = new StringJoiner(", ", "LlamaConfig{", "}");
        fields().forEach((k, v) -> joiner.add(k + "=" + v));
        return joiner.toString();
    }

    private Map<String, Object> fields() {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("model_type", modelType);
        f.put("architectures", architectures);
        f.put("vocab_size", vocabSize);
        f.put("hidden_size", hiddenSize);
        f.put("intermediate_size", intermediateSize);
        f.put("num_hidden_layers", numHiddenLayers);
        f.put("num_attention_heads", numAttentionHeads);
        f.put("num_key_value_heads", numKeyValueHeads);
        f.put("head_dim", headDim);
        f.put("max_position_embeddings", maxPositionEmbeddings);
        f.put("rms_norm_eps", rmsNormEps);
        f.put("rope_theta", ropeTheta);
        f.put("rope_scaling", ropeScaling);
        f.put("tie_word_embeddings", tieWordEmbeddings);
        f.put("attention_bias", attentionBias);
        f.put("mlp_bias", mlpBias);
        f.put("hidden_act", hiddenAct);
        f.put("torch_dtype", torchDtype);
        f.put("bos_token_id", bosTokenId);
        f.put("eos_token_id", eosTokenIds);
        f.put("pad_token_id", padTokenId);
        f.put("sliding_window", slidingWindow);
        f.put("architecture", architecture);
        return f;
    }
}
