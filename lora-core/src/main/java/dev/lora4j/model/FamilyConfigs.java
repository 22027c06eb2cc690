package dev.lora4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.model.Architecture.Activation;
import dev.lora4j.model.Architecture.Mlp;
import dev.lora4j.model.Architecture.Norm;
import dev.lora4j.model.Architecture.Qkv;
import java.util.ArrayList;
import java.util.List;

/**
 * Readers of the config.json of the families beyond Llama: each maps its family's keys and
 * defaults (those of transformers' configuration classes) onto the normalized
 * {@link LlamaConfig} and the {@link Architecture} of its block, and refuses, naming the key,
 * the options lora4j does not implement.
 */
final class FamilyConfigs {
    /** Model types read here, with the checkpoints they were written for. */
    static final List<String> MODEL_TYPES = List.of("phi", "falcon", "phi3", "gemma2", "gemma3_text", "qwen3");

    private FamilyConfigs() {
    }

    static LlamaConfig.Builder read(String modelType, JsonNode root, LlamaConfig.Reader r, String src) {
        LlamaConfig.Builder b = LlamaConfig.builder().source(src).modelType(modelType).raw(root)
                .architectures(r.stringList("architectures"))
                .torchDtype(r.string("torch_dtype", r.string("dtype", null)))
                .bosTokenId(r.optionalInt("bos_token_id"))
                .eosTokenIds(r.intOrIntList("eos_token_id"))
                .padTokenId(r.optionalInt("pad_token_id"));
        return switch (modelType) {
            case "phi" -> phi(b, root, r, src);
            case "falcon" -> falcon(b, root, r, src);
            case "phi3" -> phi3(b, root, r, src);
            case "gemma2" -> gemma(b, root, r, src, false);
            case "gemma3_text" -> gemma(b, root, r, src, true);
            case "qwen3" -> qwen3(b, root, r, src);
            default -> throw new IllegalArgumentException(src + ": model_type '" + modelType + "' has no reader");
        };
    }

    /** microsoft/phi-1_5 and phi-2 (transformers' PhiConfig). */
    private static LlamaConfig.Builder phi(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src) {
        refuseTrue(r, src, "qk_layernorm", "phi's q/k LayerNorm is not implemented");
        sizes(b, r, "intermediate_size", 2048);
        b.rmsNormEps(r.number("layer_norm_eps", 1e-5)).tieWordEmbeddings(r.bool("tie_word_embeddings", false));
        rope(b, root, r, src, 10000);
        Activation act = Activation.fromHf(src, "hidden_act", r.string("hidden_act", "gelu_new"));
        b.hiddenAct(r.string("hidden_act", "gelu_new"));
        return b.architecture(new Architecture("model.embed_tokens", "model.layers.", "self_attn", "model.final_layernorm",
                Norm.LAYER_NORM, true, false, Qkv.SEPARATE, "dense", Mlp.FC, act, false,
                r.number("partial_rotary_factor", 0.5), false, 0, 0, 0, List.of(), 0, true, true, true, true));
    }

    /** tiiuae/falcon-7b layout: multi-query, parallel attention, old decoder architecture. */
    private static LlamaConfig.Builder falcon(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src) {
        refuseTrue(r, src, "new_decoder_architecture", "the falcon-40b/180b layout (grouped fused qkv, two input"
                + " norms) is not implemented; the falcon-7b layout is");
        refuseTrue(r, src, "alibi", "ALiBi position biases are not implemented; lora4j supports rotary Falcon models");
        refuseTrue(r, src, "apply_residual_connection_post_layernorm", "residuals from the normed input are not implemented");
        if (!r.bool("parallel_attn", true)) {
            throw new IllegalArgumentException(src + ": parallel_attn is false; only Falcon's parallel attention + MLP block"
                    + " (falcon-7b) is implemented");
        }
        if (!r.bool("multi_query", true)) {
            throw new IllegalArgumentException(src + ": multi_query is false; that Falcon layout interleaves q, k and v per"
                    + " head in query_key_value and is not implemented (falcon-7b has multi_query true)");
        }
        String activation = r.string("activation", "gelu");
        if (!activation.equals("gelu")) {
            throw new IllegalArgumentException(src + ": activation '" + activation + "' is not supported; Falcon's MLP uses"
                    + " 'gelu' (exact erf GELU)");
        }
        int hidden = r.requiredInt("hidden_size");
        int heads = r.requiredInt("num_attention_heads");
        b.vocabSize(r.requiredInt("vocab_size")).hiddenSize(hidden).numHiddenLayers(r.requiredInt("num_hidden_layers"))
                .numAttentionHeads(heads).numKeyValueHeads(1)
                .intermediateSize(r.present("ffn_hidden_size") ? r.requiredInt("ffn_hidden_size") : 4 * hidden)
                .maxPositionEmbeddings(r.present("max_position_embeddings") ? r.requiredInt("max_position_embeddings") : 2048)
                .rmsNormEps(r.number("layer_norm_epsilon", 1e-5)).tieWordEmbeddings(r.bool("tie_word_embeddings", true))
                .hiddenAct(activation);
        rope(b, root, r, src, 10000);
        boolean bias = r.bool("bias", false);
        return b.architecture(new Architecture("transformer.word_embeddings", "transformer.h.", "self_attention",
                "transformer.ln_f", Norm.LAYER_NORM, true, false, Qkv.FALCON, "dense", Mlp.FALCON, Activation.GELU_ERF,
                false, 1.0, false, 0, 0, 0, List.of(), 0, bias, bias, bias, false));
    }

    /** microsoft/Phi-3-mini-4k-instruct (transformers' Phi3Config). */
    private static LlamaConfig.Builder phi3(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src) {
        refuseTrue(r, src, "attention_bias", "Phi-3's qkv_proj and o_proj have no bias in transformers");
        sizes(b, r, "intermediate_size", 8192);
        b.rmsNormEps(r.number("rms_norm_eps", 1e-5)).tieWordEmbeddings(r.bool("tie_word_embeddings", false));
        rope(b, root, r, src, 10000);
        Activation act = silu(r, src, "hidden_act");
        Integer window = r.optionalInt("sliding_window");
        b.slidingWindow(window);
        return b.architecture(new Architecture("model.embed_tokens", "model.layers.", "self_attn", "model.norm", Norm.RMS,
                false, false, Qkv.FUSED, "o_proj", Mlp.GATED_FUSED, act, false, r.number("partial_rotary_factor", 1.0),
                false, 0, 0, 0, layerTypes(r, src, b.layers(), i -> window != null), 0, false, false, false, false));
    }

    /** google/gemma-2-2b (gemma2) and google/gemma-3-1b-pt (gemma3_text). */
    private static LlamaConfig.Builder gemma(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src,
                                             boolean gemma3) {
        sizes(b, r, "intermediate_size", gemma3 ? 6912 : 9216);
        if (!r.present("head_dim")) {
            b.headDim(256);
        }
        b.rmsNormEps(r.number("rms_norm_eps", 1e-6)).tieWordEmbeddings(r.bool("tie_word_embeddings", true));
        rope(b, root, r, src, gemma3 ? 1_000_000 : 10000);
        String actKey = r.present("hidden_activation") ? "hidden_activation" : "hidden_act";
        String actName = r.string(actKey, "gelu_pytorch_tanh");
        Activation act = Activation.fromHf(src, actKey, actName);
        b.hiddenAct(actName);
        int window = r.present("sliding_window") ? r.requiredInt("sliding_window") : 4096;
        b.slidingWindow(window);
        int pattern = gemma3 ? (r.present("sliding_window_pattern") ? r.requiredInt("sliding_window_pattern") : 6) : 2;
        if (pattern <= 0) {
            throw new IllegalArgumentException(src + ": sliding_window_pattern must be a positive integer, found " + pattern);
        }
        List<Boolean> sliding = layerTypes(r, src, b.layers(), i -> (i + 1) % pattern != 0);
        boolean bias = r.bool("attention_bias", false);
        // Gemma 3's attention never applies attn_logit_softcapping in transformers, whatever the config says
        double attnCap = gemma3 ? 0 : optionalPositive(r, src, "attn_logit_softcapping", 50.0);
        double finalCap = optionalPositive(r, src, "final_logit_softcapping", gemma3 ? 0 : 30.0);
        double scalar = r.number("query_pre_attn_scalar", 256);
        double localTheta = gemma3 ? r.number("rope_local_base_freq", 10000) : 0;
        return b.architecture(new Architecture("model.embed_tokens", "model.layers.", "self_attn", "model.norm",
                Norm.RMS_ONE_PLUS, false, true, Qkv.SEPARATE, "o_proj", Mlp.GATED, act, gemma3, 1.0, true, attnCap,
                finalCap, scalar, sliding, localTheta, bias, bias, false, false));
    }

    /** Qwen/Qwen3-0.6B and larger dense Qwen3 models. */
    private static LlamaConfig.Builder qwen3(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src) {
        sizes(b, r, "intermediate_size", 22016);
        if (!r.present("head_dim")) {
            b.headDim(128);
        }
        b.rmsNormEps(r.number("rms_norm_eps", 1e-6)).tieWordEmbeddings(r.bool("tie_word_embeddings", false));
        rope(b, root, r, src, 10000);
        Activation act = silu(r, src, "hidden_act");
        boolean useWindow = r.bool("use_sliding_window", false);
        Integer window = useWindow ? r.optionalInt("sliding_window") : null;
        b.slidingWindow(window);
        int maxWindowLayers = r.present("max_window_layers") ? r.requiredInt("max_window_layers") : 28;
        List<Boolean> sliding = window == null ? List.of()
                : layerTypes(r, src, b.layers(), i -> i >= maxWindowLayers);
        boolean bias = r.bool("attention_bias", false);
        return b.architecture(new Architecture("model.embed_tokens", "model.layers.", "self_attn", "model.norm", Norm.RMS,
                false, false, Qkv.SEPARATE, "o_proj", Mlp.GATED, act, true, 1.0, false, 0, 0, 0, sliding, 0, bias, bias,
                false, false));
    }

    // ---------------------------------------------------------------- shared pieces

    private static void sizes(LlamaConfig.Builder b, LlamaConfig.Reader r, String intermediateKey, int intermediateDefault) {
        b.vocabSize(r.requiredInt("vocab_size")).hiddenSize(r.requiredInt("hidden_size"))
                .intermediateSize(r.present(intermediateKey) ? r.requiredInt(intermediateKey) : intermediateDefault)
                .numHiddenLayers(r.requiredInt("num_hidden_layers")).numAttentionHeads(r.requiredInt("num_attention_heads"))
                .numKeyValueHeads(r.optionalInt("num_key_value_heads")).headDim(r.optionalInt("head_dim"))
                .maxPositionEmbeddings(r.present("max_position_embeddings") ? r.requiredInt("max_position_embeddings") : 2048);
    }

    private static void rope(LlamaConfig.Builder b, JsonNode root, LlamaConfig.Reader r, String src, double thetaDefault) {
        LlamaConfig.readRope(b, root, r, src, thetaDefault);
    }

    private static Activation silu(LlamaConfig.Reader r, String src, String key) {
        String name = r.string(key, "silu");
        if (!name.equals("silu")) {
            throw new IllegalArgumentException(src + ": " + key + " '" + name + "' is not supported; this family's gated MLP"
                    + " uses 'silu'");
        }
        return Activation.SILU;
    }

    private static void refuseTrue(LlamaConfig.Reader r, String src, String key, String why) {
        if (r.bool(key, false)) {
            throw new IllegalArgumentException(src + ": " + key + " is true, which lora4j does not support: " + why);
        }
    }

    /** A number > 0, or 0 when the key is JSON null; absent keys take the family default. */
    private static double optionalPositive(LlamaConfig.Reader r, String src, String key, double absent) {
        if (!r.node().has(key)) {
            return absent;
        }
        if (!r.present(key)) {
            return 0;
        }
        double v = r.number(key, 0);
        if (!(v > 0) || Double.isInfinite(v)) {
            throw new IllegalArgumentException(src + ": " + key + " must be null or a finite number > 0, found " + v);
        }
        return v;
    }

    /**
     * The per-layer sliding flags: config.json's {@code layer_types} when present
     * ("sliding_attention" or "full_attention" per layer), else the family rule.
     */
    static List<Boolean> layerTypes(LlamaConfig.Reader r, String src, int layers, java.util.function.IntPredicate rule) {
        List<Boolean> out = new ArrayList<>();
        if (r.present("layer_types")) {
            List<String> types = r.stringList("layer_types");
            if (types.size() != layers) {
                throw new IllegalArgumentException(src + ": layer_types lists " + types.size() + " layers but num_hidden_layers"
                        + " is " + layers);
            }
            for (String t : types) {
                switch (t) {
                    case "sliding_attention" -> out.add(true);
                    case "full_attention" -> out.add(false);
                    default -> throw new IllegalArgumentException(src + ": layer_types entry '" + t + "' is not supported;"
                            + " supported: sliding_attention, full_attention");
                }
            }
            return out;
        }
        for (int i = 0; i < layers; i++) {
            out.add(rule.test(i));
        }
        return out;
    }
}
