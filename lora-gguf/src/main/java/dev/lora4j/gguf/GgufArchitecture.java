package dev.lora4j.gguf;

import dev.lora4j.model.LlamaConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How one model family is written in GGUF, in one place per architecture (llama.cpp's
 * {@code convert_hf_to_gguf.py} conventions): the {@code general.architecture} name, the Hugging
 * Face model types it covers, the tensor names, and whether q/k rows are permuted.
 *
 * <p>Tensor names: a Hugging Face name is matched against {@link #tensorNames} in order; the first
 * pattern that matches gives the GGUF name, with {@code {N}} standing for the layer index. The same
 * table read backwards gives the Hugging Face name of a GGUF tensor.
 *
 * <p>q/k permutation ({@code permuteQk}): llama.cpp's {@code llama} architecture rotates adjacent
 * pairs in RoPE while Hugging Face rotates halves, so the converter permutes the rows of
 * {@code q_proj} (with {@code num_attention_heads}) and {@code k_proj} (with
 * {@code num_key_value_heads}), weights and biases alike: new row {@code h·hd + 2i + j} = old row
 * {@code h·hd + j·hd/2 + i} for head h, {@code i < hd/2}, {@code j ∈ {0, 1}}. The same applies to
 * a LoRA's {@code lora_b} (W' = PW = (PB)A). Architectures with NEOX-style RoPE (all the others) need none.
 *
 * <p>Further families are added as further constants of {@link #ALL}.
 */
public record GgufArchitecture(String name, List<String> modelTypes, boolean permuteQk, boolean normPlusOne,
                               Map<String, String> tensorNames) {

    /** Hugging Face → GGUF tensor names shared by the Llama-shaped decoders. */
    private static final Map<String, String> LLAMA_TENSORS = linked(
            "model.embed_tokens.weight", "token_embd.weight",
            "model.norm.weight", "output_norm.weight",
            "lm_head.weight", "output.weight",
            "model.layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight",
            "model.layers.{N}.self_attn.q_proj.weight", "blk.{N}.attn_q.weight",
            "model.layers.{N}.self_attn.q_proj.bias", "blk.{N}.attn_q.bias",
            "model.layers.{N}.self_attn.k_proj.weight", "blk.{N}.attn_k.weight",
            "model.layers.{N}.self_attn.k_proj.bias", "blk.{N}.attn_k.bias",
            "model.layers.{N}.self_attn.v_proj.weight", "blk.{N}.attn_v.weight",
            "model.layers.{N}.self_attn.v_proj.bias", "blk.{N}.attn_v.bias",
            "model.layers.{N}.self_attn.o_proj.weight", "blk.{N}.attn_output.weight",
            "model.layers.{N}.self_attn.o_proj.bias", "blk.{N}.attn_output.bias",
            "model.layers.{N}.post_attention_layernorm.weight", "blk.{N}.ffn_norm.weight",
            "model.layers.{N}.mlp.gate_proj.weight", "blk.{N}.ffn_gate.weight",
            "model.layers.{N}.mlp.gate_proj.bias", "blk.{N}.ffn_gate.bias",
            "model.layers.{N}.mlp.up_proj.weight", "blk.{N}.ffn_up.weight",
            "model.layers.{N}.mlp.up_proj.bias", "blk.{N}.ffn_up.bias",
            "model.layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight",
            "model.layers.{N}.mlp.down_proj.bias", "blk.{N}.ffn_down.bias");

    /** Qwen3: the Llama names plus the per-head q/k RMSNorms. */
    private static final Map<String, String> QWEN3_TENSORS = with(LLAMA_TENSORS,
            "model.layers.{N}.self_attn.q_norm.weight", "blk.{N}.attn_q_norm.weight",
            "model.layers.{N}.self_attn.k_norm.weight", "blk.{N}.attn_k_norm.weight");

    /**
     * Gemma 2 and 3: four norms per layer (llama.cpp's post_attention_norm is Gemma's norm on the
     * attention output; its ffn_norm is Gemma's pre_feedforward_layernorm), plus Gemma 3's q/k norms.
     */
    private static final Map<String, String> GEMMA_TENSORS = with(without(LLAMA_TENSORS,
                    "model.layers.{N}.post_attention_layernorm.weight"),
            "model.layers.{N}.post_attention_layernorm.weight", "blk.{N}.post_attention_norm.weight",
            "model.layers.{N}.pre_feedforward_layernorm.weight", "blk.{N}.ffn_norm.weight",
            "model.layers.{N}.post_feedforward_layernorm.weight", "blk.{N}.post_ffw_norm.weight",
            "model.layers.{N}.self_attn.q_norm.weight", "blk.{N}.attn_q_norm.weight",
            "model.layers.{N}.self_attn.k_norm.weight", "blk.{N}.attn_k_norm.weight");

    /** Phi-3: fused qkv_proj (attn_qkv) and gate_up_proj (ffn_up, [gate | up] as llama.cpp's SwiGLU splits it). */
    private static final Map<String, String> PHI3_TENSORS = linked(
            "model.embed_tokens.weight", "token_embd.weight",
            "model.norm.weight", "output_norm.weight",
            "lm_head.weight", "output.weight",
            "model.layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight",
            "model.layers.{N}.self_attn.qkv_proj.weight", "blk.{N}.attn_qkv.weight",
            "model.layers.{N}.self_attn.o_proj.weight", "blk.{N}.attn_output.weight",
            "model.layers.{N}.post_attention_layernorm.weight", "blk.{N}.ffn_norm.weight",
            "model.layers.{N}.mlp.gate_up_proj.weight", "blk.{N}.ffn_up.weight",
            "model.layers.{N}.mlp.down_proj.weight", "blk.{N}.ffn_down.weight");

    /** phi-1.5 / phi-2 (llama.cpp's phi2): LayerNorms with biases, separate biased q/k/v, dense, fc1, fc2. */
    private static final Map<String, String> PHI2_TENSORS = linked(
            "model.embed_tokens.weight", "token_embd.weight",
            "model.final_layernorm.weight", "output_norm.weight",
            "model.final_layernorm.bias", "output_norm.bias",
            "lm_head.weight", "output.weight",
            "lm_head.bias", "output.bias",
            "model.layers.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight",
            "model.layers.{N}.input_layernorm.bias", "blk.{N}.attn_norm.bias",
            "model.layers.{N}.self_attn.q_proj.weight", "blk.{N}.attn_q.weight",
            "model.layers.{N}.self_attn.q_proj.bias", "blk.{N}.attn_q.bias",
            "model.layers.{N}.self_attn.k_proj.weight", "blk.{N}.attn_k.weight",
            "model.layers.{N}.self_attn.k_proj.bias", "blk.{N}.attn_k.bias",
            "model.layers.{N}.self_attn.v_proj.weight", "blk.{N}.attn_v.weight",
            "model.layers.{N}.self_attn.v_proj.bias", "blk.{N}.attn_v.bias",
            "model.layers.{N}.self_attn.dense.weight", "blk.{N}.attn_output.weight",
            "model.layers.{N}.self_attn.dense.bias", "blk.{N}.attn_output.bias",
            "model.layers.{N}.mlp.fc1.weight", "blk.{N}.ffn_up.weight",
            "model.layers.{N}.mlp.fc1.bias", "blk.{N}.ffn_up.bias",
            "model.layers.{N}.mlp.fc2.weight", "blk.{N}.ffn_down.weight",
            "model.layers.{N}.mlp.fc2.bias", "blk.{N}.ffn_down.bias");

    /**
     * Falcon, falcon-7b layout: query_key_value is already [H query heads | 1 key | 1 value], the
     * order the converter's qkv rearrangement produces for one kv head, so it is written as is.
     */
    private static final Map<String, String> FALCON_TENSORS = linked(
            "transformer.word_embeddings.weight", "token_embd.weight",
            "transformer.ln_f.weight", "output_norm.weight",
            "transformer.ln_f.bias", "output_norm.bias",
            "lm_head.weight", "output.weight",
            "transformer.h.{N}.input_layernorm.weight", "blk.{N}.attn_norm.weight",
            "transformer.h.{N}.input_layernorm.bias", "blk.{N}.attn_norm.bias",
            "transformer.h.{N}.self_attention.query_key_value.weight", "blk.{N}.attn_qkv.weight",
            "transformer.h.{N}.self_attention.dense.weight", "blk.{N}.attn_output.weight",
            "transformer.h.{N}.mlp.dense_h_to_4h.weight", "blk.{N}.ffn_up.weight",
            "transformer.h.{N}.mlp.dense_4h_to_h.weight", "blk.{N}.ffn_down.weight");

    /**
     * llama (also Mistral, TinyLlama, SmolLM: convert_hf_to_gguf.py writes them as llama), qwen2,
     * qwen3, gemma2 and gemma3 (Gemma 3 text models; their norms are stored as 1 + w, as the
     * converter does, because llama.cpp's Gemma graphs multiply by the stored weight), phi3, phi2
     * (phi-1.5 and phi-2) and falcon (the falcon-7b layout).
     */
    public static final List<GgufArchitecture> ALL = List.of(
            new GgufArchitecture("llama", List.of("llama", "mistral"), true, false, LLAMA_TENSORS),
            new GgufArchitecture("qwen2", List.of("qwen2"), false, false, LLAMA_TENSORS),
            new GgufArchitecture("qwen3", List.of("qwen3"), false, false, QWEN3_TENSORS),
            new GgufArchitecture("gemma2", List.of("gemma2"), false, true, GEMMA_TENSORS),
            new GgufArchitecture("gemma3", List.of("gemma3_text"), false, true, GEMMA_TENSORS),
            new GgufArchitecture("phi3", List.of("phi3"), false, false, PHI3_TENSORS),
            new GgufArchitecture("phi2", List.of("phi"), false, false, PHI2_TENSORS),
            new GgufArchitecture("falcon", List.of("falcon"), false, false, FALCON_TENSORS));


    /** The architecture a Hugging Face config is written as; refuses model types with none. */
    public static GgufArchitecture of(LlamaConfig config) {
        for (GgufArchitecture a : ALL) {
            if (a.modelTypes.contains(config.modelType())) {
                return a;
            }
        }
        throw new IllegalArgumentException("model_type '" + config.modelType() + "' has no GGUF mapping in lora4j; "
                + "supported: " + supportedModelTypes());
    }

    /** The architecture of a GGUF file's {@code general.architecture}. */
    public static GgufArchitecture named(String architecture) {
        for (GgufArchitecture a : ALL) {
            if (a.name.equals(architecture)) {
                return a;
            }
        }
        throw new IllegalArgumentException("GGUF architecture '" + architecture + "' is not supported by lora4j; "
                + "supported: " + ALL.stream().map(GgufArchitecture::name).toList());
    }

    private static List<String> supportedModelTypes() {
        List<String> out = new ArrayList<>();
        ALL.forEach(a -> out.addAll(a.modelTypes));
        return out;
    }

    /** The Hugging Face model type a GGUF file of this architecture loads as. */
    public String modelType() {
        return modelTypes.get(0);
    }

    /** Whether the stored value of this Hugging Face tensor is 1 + w in GGUF (Gemma's zero-centred norm weights). */
    public boolean shiftsNorm(String hfName) {
        return normPlusOne && hfName.endsWith("norm.weight");
    }

    /** The GGUF name of a Hugging Face tensor name, if the table has one. */
    public Optional<String> ggufName(String hfName) {
        return translate(hfName, true);
    }

    /** The Hugging Face name of a GGUF tensor name, if the table has one. */
    public Optional<String> hfName(String ggufName) {
        return translate(ggufName, false);
    }

    private Optional<String> translate(String name, boolean toGguf) {
        for (Map.Entry<String, String> e : tensorNames.entrySet()) {
            String from = toGguf ? e.getKey() : e.getValue();
            String to = toGguf ? e.getValue() : e.getKey();
            Matcher m = Pattern.compile(Pattern.quote(from).replace("{N}", "\\E(\\d+)\\Q")).matcher(name);
            if (m.matches()) {
                return Optional.of(from.contains("{N}") ? to.replace("{N}", m.group(1)) : to);
            }
        }
        return Optional.empty();
    }

    /** Whether the Hugging Face tensor {@code hfName} is a q or k projection (weight or bias) and so permuted. */
    public int permutationHeads(String hfName, LlamaConfig config) {
        if (!permuteQk) {
            return 0;
        }
        if (hfName.endsWith("self_attn.q_proj.weight") || hfName.endsWith("self_attn.q_proj.bias")) {
            return config.numAttentionHeads();
        }
        if (hfName.endsWith("self_attn.k_proj.weight") || hfName.endsWith("self_attn.k_proj.bias")) {
            return config.numKeyValueHeads();
        }
        return 0;
    }

    /**
     * Row permutation to GGUF (or back, {@code inverse}) of a [rows, cols] matrix in row-major
     * order whose rows form {@code heads} heads; see the class comment.
     */
    public static float[] permuteRows(float[] values, int rows, int cols, int heads, boolean inverse) {
        int[] order = rowOrder(rows, heads, inverse);
        float[] out = new float[values.length];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(values, order[r] * cols, out, r * cols, cols);
        }
        return out;
    }

    /** Source row of each destination row for {@link #permuteRows} (to GGUF, or back with {@code inverse}). */
    public static int[] rowOrder(int rows, int heads, boolean inverse) {
        if (rows % heads != 0 || (rows / heads) % 2 != 0) {
            throw new IllegalArgumentException("cannot permute " + rows + " rows into " + heads
                    + " heads of an even head_dim");
        }
        int hd = rows / heads;
        int[] order = new int[rows];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < hd / 2; i++) {
                for (int j = 0; j < 2; j++) {
                    int gguf = h * hd + 2 * i + j;
                    int hf = h * hd + j * hd / 2 + i;
                    if (inverse) {
                        order[hf] = gguf;
                    } else {
                        order[gguf] = hf;
                    }
                }
            }
        }
        return order;
    }

    private static Map<String, String> with(Map<String, String> base, String... pairs) {
        Map<String, String> m = new java.util.LinkedHashMap<>(base);
        m.putAll(linked(pairs));
        return java.util.Collections.unmodifiableMap(m);
    }

    private static Map<String, String> without(Map<String, String> base, String key) {
        Map<String, String> m = new java.util.LinkedHashMap<>(base);
        m.remove(key);
        return m;
    }

    private static Map<String, String> linked(String... pairs) {
        Map<String, String> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            m.put(pairs[i], pairs[i + 1]);
        }
        return java.util.Collections.unmodifiableMap(m);
    }
}
