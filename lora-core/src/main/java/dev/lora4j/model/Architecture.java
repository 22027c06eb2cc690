package dev.lora4j.model;

import dev.lora4j.backend.Gelu;
import java.util.ArrayList;
import java.util.List;

/**
 * The parts one decoder block is assembled from, as a model family's config.json chooses them.
 * {@link LlamaModel} builds every family from this description alone, so a family is a set of
 * values here, not a branch in the forward pass. The per-family readers in
 * {@link FamilyConfigs} fill it in; the Llama family (llama, mistral, qwen2) uses
 * {@link #llamaFamily}.
 *
 * <p>A block computes, with norm chosen by {@link #norm()}:
 * <pre>
 *   h = norm_in(x)
 *   a = o_proj(attention(q, k, v of h))            (post_attention norm on a when sandwich)
 *   parallel:   x = x + a + mlp(h)
 *   sequential: x = x + a;  x = x + mlp(norm_mlp(x))  (post_feedforward norm on mlp when sandwich)
 * </pre>
 *
 * @param embedName the embedding module ("model.embed_tokens", Falcon "transformer.word_embeddings")
 * @param layerPrefix the prefix of layer i's modules, before i ("model.layers.", Falcon "transformer.h.")
 * @param attentionName the attention submodule ("self_attn", Falcon "self_attention")
 * @param finalNormName the norm before lm_head ("model.norm", phi "model.final_layernorm", Falcon "transformer.ln_f")
 * @param norm which normalization every norm of the block uses
 * @param parallel attention and MLP read the same normed input and are added together (phi, Falcon)
 * @param sandwich Gemma's four norms: input, post_attention (on the attention output),
 *     pre_feedforward and post_feedforward (on the MLP output)
 * @param qkv separate q/k/v projections or one fused module
 * @param outputName the attention output projection ("o_proj", phi and Falcon "dense")
 * @param mlp the MLP's modules and gating
 * @param activation the MLP's activation
 * @param qkNorm a norm over head_dim on each query and key head before RoPE (Qwen3, Gemma 3)
 * @param partialRotaryFactor the fraction of each head that RoPE rotates (phi-1.5: 0.5)
 * @param scaleEmbeddings embeddings multiplied by sqrt(hidden_size) (Gemma)
 * @param attnSoftCap attention logit soft-cap, 0 for none (Gemma 2)
 * @param finalSoftCap final logit soft-cap, 0 for none (Gemma 2, Gemma 3 when configured)
 * @param queryPreAttnScalar attention scores scaled by this^-½ instead of head_dim^-½, 0 for head_dim (Gemma)
 * @param slidingLayers per layer, whether it uses the sliding window (empty: none does)
 * @param localRopeTheta RoPE base of the sliding layers, 0 when they share rope_theta (Gemma 3)
 * @param qkvBias q, k and v (or the fused qkv) have biases
 * @param outputBias the attention output projection has a bias
 * @param mlpBias the MLP's projections have biases
 * @param lmHeadBias lm_head has a bias (phi)
 */
public record Architecture(String embedName, String layerPrefix, String attentionName, String finalNormName,
                           Norm norm, boolean parallel, boolean sandwich, Qkv qkv, String outputName, Mlp mlp,
                           Activation activation, boolean qkNorm, double partialRotaryFactor, boolean scaleEmbeddings,
                           double attnSoftCap, double finalSoftCap, double queryPreAttnScalar,
                           List<Boolean> slidingLayers, double localRopeTheta, boolean qkvBias, boolean outputBias,
                           boolean mlpBias, boolean lmHeadBias) {

    /** The normalization of every norm in the block. */
    public enum Norm {
        /** y = x/rms(x)·w (Llama). */
        RMS,
        /** y = x/rms(x)·(1 + w), w stored zero-centred (Gemma). */
        RMS_ONE_PLUS,
        /** y = (x − mean)/std·w + b (phi, Falcon). */
        LAYER_NORM
    }

    /** How queries, keys and values are projected: module names and whether they are fused. */
    public enum Qkv {
        SEPARATE("q_proj", "k_proj", "v_proj"),
        /** Phi-3: one module whose output is [queries | keys | values]. */
        FUSED("qkv_proj"),
        /** Falcon (multi-query, old decoder): [H query heads | 1 key head | 1 value head]. */
        FALCON("query_key_value");

        private final List<String> names;

        Qkv(String... names) {
            this.names = List.of(names);
        }

        /** Module names within the attention submodule. */
        public List<String> names() {
            return names;
        }

        public boolean fused() {
            return names.size() == 1;
        }
    }

    /** The MLP's module names and whether it is gated. */
    public enum Mlp {
        /** down(act(gate(x)) ⊙ up(x)). */
        GATED("gate_proj", "up_proj", "down_proj"),
        /** Phi-3: gate_up is [gate | up]; down(act(gate) ⊙ up). */
        GATED_FUSED("gate_up_proj", "down_proj"),
        /** phi: fc2(act(fc1(x))). */
        FC("fc1", "fc2"),
        /** Falcon: dense_4h_to_h(act(dense_h_to_4h(x))). */
        FALCON("dense_h_to_4h", "dense_4h_to_h");

        private final List<String> names;

        Mlp(String... names) {
            this.names = List.of(names);
        }

        /** Module names within the mlp submodule. */
        public List<String> names() {
            return names;
        }

        public boolean gated() {
            return this == GATED || this == GATED_FUSED;
        }
    }

    /** The MLP activation, with the hidden_act names transformers gives it. */
    public enum Activation {
        SILU(null, "silu"),
        GELU_TANH(Gelu.TANH, "gelu_new", "gelu_pytorch_tanh", "gelu_fast"),
        GELU_ERF(Gelu.ERF, "gelu");

        private final Gelu gelu;
        private final List<String> hfNames;

        Activation(Gelu gelu, String... hfNames) {
            this.gelu = gelu;
            this.hfNames = List.of(hfNames);
        }

        /** The GELU form, null for SiLU. */
        public Gelu gelu() {
            return gelu;
        }

        /** The activation named {@code hidden_act} in config.json; errors name the source and the key. */
        static Activation fromHf(String source, String key, String name) {
            List<String> known = new ArrayList<>();
            for (Activation a : values()) {
                if (a.hfNames.contains(name)) {
                    return a;
                }
                known.addAll(a.hfNames);
            }
            throw new IllegalArgumentException(source + ": " + key + " '" + name + "' is not supported; supported: "
                    + String.join(", ", known));
        }
    }

    public Architecture {
        slidingLayers = List.copyOf(slidingLayers);
        if (!(partialRotaryFactor > 0 && partialRotaryFactor <= 1)) {
            throw new IllegalArgumentException("partial_rotary_factor must be in (0, 1], was " + partialRotaryFactor);
        }
    }

    /**
     * Llama, Mistral, Qwen2: RMSNorm, separate q/k/v/o, SwiGLU, sequential residuals.
     *
     * @param slidingLayers the layers that use the sliding window (empty for none)
     */
    static Architecture llamaFamily(boolean qkvBias, boolean outputBias, boolean mlpBias, List<Boolean> slidingLayers) {
        return new Architecture("model.embed_tokens", "model.layers.", "self_attn", "model.norm", Norm.RMS, false, false,
                Qkv.SEPARATE, "o_proj", Mlp.GATED, Activation.SILU, false, 1.0, false, 0, 0, 0, slidingLayers, 0,
                qkvBias, outputBias, mlpBias, false);
    }

    /**
     * This family's module for a Llama module name, for LoRA targets written with Llama names
     * (as {@link dev.lora4j.lora.Target} groups are): q_proj, k_proj and v_proj become the fused
     * qkv module (qkv_proj, query_key_value) where there is one, o_proj the attention output
     * (dense in phi and Falcon), gate_proj and up_proj the MLP's input module (gate_up_proj, fc1,
     * dense_h_to_4h) and down_proj its output (fc2, dense_4h_to_h). Other names map to themselves.
     */
    public String moduleNameFor(String llamaName) {
        return switch (llamaName) {
            case "q_proj", "k_proj", "v_proj" -> qkv.fused() ? qkv.names().get(0) : llamaName;
            case "o_proj" -> outputName;
            case "gate_proj", "up_proj" -> mlp.gated() && mlp != Mlp.GATED_FUSED ? llamaName : mlp.names().get(0);
            case "down_proj" -> mlp.names().get(mlp.names().size() - 1);
            default -> llamaName;
        };
    }

    /** Whether layer {@code i} uses the sliding window. */
    public boolean sliding(int layer) {
        return !slidingLayers.isEmpty() && slidingLayers.get(layer);
    }

    /** The Hugging Face path of a submodule of layer i, e.g. "model.layers.3.self_attn.q_proj". */
    String attentionModule(int layer, String name) {
        return layerPrefix + layer + "." + attentionName + "." + name;
    }

    String mlpModule(int layer, String name) {
        return layerPrefix + layer + ".mlp." + name;
    }

    /** Names of the norms of a layer, in checkpoint order (each may have a .bias with LayerNorm). */
    List<String> layerNormNames() {
        if (sandwich) {
            return List.of("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                    "post_feedforward_layernorm");
        }
        return parallel ? List.of("input_layernorm") : List.of("input_layernorm", "post_attention_layernorm");
    }
}
