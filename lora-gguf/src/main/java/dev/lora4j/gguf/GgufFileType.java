package dev.lora4j.gguf;

import dev.lora4j.model.LlamaConfig;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a merged-model GGUF export stores its tensors as: one ggml type for every matrix (F32, F16,
 * BF16, Q8_0), or llama.cpp's {@code Q4_K_M} mix ({@code llama_ftype} 15, "mostly Q4_K").
 *
 * <p>{@link #Q4_K_M} chooses each tensor's type as llama.cpp's {@code llama_model_quantize} does
 * ({@code llama_tensor_get_type} in {@code src/llama-quant.cpp}, no importance matrix, no
 * overrides), so that lora4j's Q4_K_M export equals {@code llama-quantize model-f32.gguf
 * Q4_K_M} of its own F32 export, tensor for tensor and byte for byte:
 * <ul>
 *   <li>vectors (norms, biases) are not quantized (F32);</li>
 *   <li>{@code output.weight}, and {@code token_embd.weight} when the output is tied to it (no
 *       {@code output.weight} in the file): Q6_K, or Q8_0 for {@code falcon} and for rows that are
 *       not a multiple of 256; an untied {@code token_embd} is Q4_K;</li>
 *   <li>{@code attn_v} and fused {@code attn_qkv}, the i-th of n in layer order: Q6_K where
 *       {@code use_more_bits(i, n)} (i &lt; n/8, i ≥ 7n/8, or (i − n/8) mod 3 = 2), else Q4_K
 *       (Q5_K for a 70B: {@code llama} with 80 layers and grouped-query attention, {@code qwen2}
 *       with 80 layers);</li>
 *   <li>{@code ffn_down} of layer i: Q6_K where {@code use_more_bits(i, n_layer)}, else Q4_K; for
 *       {@code falcon} Q6_K for i &lt; n/16, Q5_K where use_more_bits, else Q4_K;</li>
 *   <li>every other matrix ({@code attn_q}, {@code attn_k}, {@code attn_output}, {@code ffn_gate},
 *       {@code ffn_up}): Q4_K;</li>
 *   <li>then rows (ne[0]) that the chosen type's block does not divide fall back: Q4_K → Q5_0,
 *       Q5_K → Q5_1, Q6_K → Q8_0, and to F16 when 32 does not divide them either.</li>
 * </ul>
 * The mixture-of-experts cases of that function do not arise: lora4j's families have no experts.
 */
public enum GgufFileType {
    F32(GgmlType.F32, 0),
    F16(GgmlType.F16, 1),
    BF16(GgmlType.BF16, 32),
    Q8_0(GgmlType.Q8_0, 7),
    Q4_K_M(GgmlType.Q4_K, 15);

    private static final Pattern LAYER = Pattern.compile("^blk\\.(-?\\d+)\\.");

    private final GgmlType baseType;
    private final int llamaFtype;

    GgufFileType(GgmlType baseType, int llamaFtype) {
        this.baseType = baseType;
        this.llamaFtype = llamaFtype;
    }

    /** The type most matrices get. */
    public GgmlType baseType() {
        return baseType;
    }

    /** llama.cpp's {@code llama_ftype}, written as {@code general.file_type}. */
    public int llamaFtype() {
        return llamaFtype;
    }

    /** The file type whose matrices are all {@code type} (F32, F16, BF16 or Q8_0). */
    public static GgufFileType of(GgmlType type) {
        for (GgufFileType t : values()) {
            if (t != Q4_K_M && t.baseType == type) {
                return t;
            }
        }
        throw new IllegalArgumentException("lora4j writes F32, F16, BF16, Q8_0 or Q4_K_M models, not " + type);
    }

    /** Parses {@code f32}, {@code f16}, {@code bf16}, {@code q8_0} or {@code q4_k_m} (case-insensitive). */
    public static GgufFileType parse(String name) {
        String n = name.trim().toUpperCase(Locale.ROOT);
        for (GgufFileType t : values()) {
            if (t.name().equals(n)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown GGUF file type '" + name + "'; expected f32, f16, bf16, q8_0 or q4_k_m");
    }

    /**
     * The ggml type of every tensor of a model export, keyed by GGUF name: {@code shapes} holds each
     * tensor's row-major shape (the last dimension is ggml's ne[0], the row length), {@code arch} is
     * the GGUF architecture name.
     */
    public Map<String, GgmlType> tensorTypes(String arch, LlamaConfig config, Map<String, int[]> shapes) {
        Map<String, GgmlType> out = new LinkedHashMap<>();
        if (this != Q4_K_M) {
            for (Map.Entry<String, int[]> e : shapes.entrySet()) {
                int[] shape = e.getValue();
                GgmlType t = shape.length == 1 ? GgmlType.F32 : baseType;
                if (t.blockSize() > 1 && shape[shape.length - 1] % t.blockSize() != 0) {
                    t = GgmlType.F16; // as llama.cpp's converter does for Q8_0
                }
                out.put(e.getKey(), t);
            }
            return out;
        }
        // llama_model_quantize walks the tensors sorted by layer (-1 outside blk.N), then name.
        List<String> names = new ArrayList<>(shapes.keySet());
        names.sort(Comparator.comparingInt(GgufFileType::layer).thenComparing(Comparator.naturalOrder()));
        boolean tied = !shapes.containsKey("output.weight");
        int nLayer = config.numHiddenLayers();
        int nAttnV = 0;
        for (String name : names) {
            if (attnVLike(name)) {
                nAttnV++;
            }
        }
        boolean is70b = nLayer == 80 && (arch.equals("llama") && config.numAttentionHeads() != config.numKeyValueHeads()
                || arch.equals("qwen2"));
        boolean falcon = arch.equals("falcon");
        int iAttnV = 0;
        int iFfnDown = 0;
        Map<String, GgmlType> chosen = new LinkedHashMap<>();
        for (String name : names) {
            int[] shape = shapes.get(name);
            long ncols = shape[shape.length - 1];
            if (shape.length < 2 || !name.endsWith("weight") || name.contains("_norm.weight")) {
                chosen.put(name, GgmlType.F32); // not quantized: stays as in the F32 export
                continue;
            }
            GgmlType t = GgmlType.Q4_K;
            if (name.equals("output.weight") || (tied && name.equals("token_embd.weight"))) {
                t = falcon || ncols % GgmlType.Q4_K.blockSize() != 0 ? GgmlType.Q8_0 : GgmlType.Q6_K;
            } else if (name.equals("token_embd.weight")) {
                t = GgmlType.Q4_K;
            } else if (attnVLike(name)) {
                if (useMoreBits(iAttnV, nAttnV)) {
                    t = GgmlType.Q6_K;
                }
                if (is70b && t == GgmlType.Q4_K) {
                    t = GgmlType.Q5_K;
                }
                iAttnV++;
            } else if (name.contains("ffn_down")) {
                int i = iFfnDown;
                if (falcon) {
                    t = i < nLayer / 16 ? GgmlType.Q6_K : useMoreBits(i, nLayer) ? GgmlType.Q5_K : GgmlType.Q4_K;
                } else if (useMoreBits(i, nLayer)) {
                    t = GgmlType.Q6_K;
                }
                iFfnDown++;
            }
            chosen.put(name, fallback(t, ncols));
        }
        for (String name : shapes.keySet()) {
            out.put(name, chosen.get(name));
        }
        return out;
    }

    /** llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
    static boolean useMoreBits(int i, int n) {
        return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
    }

    /** tensor_type_fallback: a 32-element type (or F16) for rows the chosen block does not divide. */
    static GgmlType fallback(GgmlType t, long ncols) {
        if (ncols % t.blockSize() == 0) {
            return t;
        }
        GgmlType r = switch (t) {
            case Q4_K -> GgmlType.Q5_0;
            case Q5_K -> GgmlType.Q5_1;
            case Q6_K -> GgmlType.Q8_0;
            default -> t;
        };
        return ncols % r.blockSize() == 0 ? r : GgmlType.F16;
    }

    private static boolean attnVLike(String name) {
        return name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight") || name.contains("attn_v.weight");
    }

    private static int layer(String name) {
        Matcher m = LAYER.matcher(name);
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    @Override
    public String toString() {
        return name();
    }
}
