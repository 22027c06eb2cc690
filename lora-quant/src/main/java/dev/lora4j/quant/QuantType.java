package dev.lora4j.quant;

import java.util.Locale;

/**
 * The two 4-bit data types of bitsandbytes (its {@code quant_type}), each a table of 16 values in
 * [-1, 1] indexed by the 4-bit code. A block of weights is stored as codes plus the block's absmax;
 * element i decodes to {@code code[q_i] * absmax}.
 *
 * <ul>
 *   <li>{@link #NF4}: 4-bit NormalFloat (Dettmers et al., "QLoRA", 2023, arXiv:2305.14314),
 *       quantiles of N(0, 1) normalized to [-1, 1] with an exact zero; sorted, so code i is the
 *       i-th smallest value. See {@link QuantMaps#createNormalMap} for its derivation.</li>
 *   <li>{@link #FP4}: a float with sign, 2 exponent bits (bias 3) and 1 mantissa bit, values
 *       {0, 0.0625, 2, 3, 4, 6, 8, 12}/12 and their negatives; bit 3 is the sign.</li>
 * </ul>
 *
 * Quantization follows bitsandbytes' CUDA kernels ({@code dQuantizeNF4}, {@code dQuantizeFP4}):
 * the scaled value {@code x · (1/absmax)} goes to the nearest code, a value exactly on a midpoint
 * to the code below it, and NaN (an all-zero block) to code 0.
 */
public enum QuantType {
    NF4("nf4"),
    FP4("fp4");

    /** FP4 magnitudes by rank: the 3-bit code of the k-th smallest magnitude. */
    private static final int[] FP4_CODE_BY_RANK = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
    /**
     * bitsandbytes' FP4 decision thresholds on |x| (the midpoints of the magnitudes, as its kernel
     * spells them; 0.583333 is a little below 7/12).
     */
    private static final float[] FP4_THRESHOLDS = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f,
        0.583333f, 0.8333333f};

    private final String bnbName;
    private final float[] code;
    /** NF4: the 15 midpoints between consecutive codes, computed in double and rounded to float. */
    private final float[] midpoints;

    QuantType(String bnbName) {
        this.bnbName = bnbName;
        this.code = bnbName.equals("nf4") ? QuantMaps.nf4() : QuantMaps.fp4();
        float[] mids = new float[15];
        for (int i = 0; i < 15; i++) {
            mids[i] = (float) (((double) code[i] + code[i + 1]) / 2);
        }
        this.midpoints = mids;
    }

    /** The name bitsandbytes and Hugging Face use: "nf4" or "fp4". */
    public String bnbName() {
        return bnbName;
    }

    /** The 16 code values, index = 4-bit code (a copy). */
    public float[] code() {
        return code.clone();
    }

    float[] codeShared() {
        return code;
    }

    /** The 4-bit code of {@code scaled} (a value already divided by its block's absmax). */
    int encode(float scaled) {
        if (this == NF4) {
            float[] m = midpoints;
            // branch-light binary search over the 15 midpoints: the code is how many lie below x
            int q = scaled > m[7] ? 8 : 0;
            q += scaled > m[q + 3] ? 4 : 0;
            q += scaled > m[q + 1] ? 2 : 0;
            q += scaled > m[q] ? 1 : 0;
            return q;
        }
        int sign = scaled < 0 ? 0b1000 : 0;
        float a = Math.abs(scaled);
        int rank = 0;
        while (rank < FP4_THRESHOLDS.length && a > FP4_THRESHOLDS[rank]) {
            rank++;
        }
        return FP4_CODE_BY_RANK[rank] | sign;
    }

    /** Parses a bitsandbytes {@code quant_type} ("nf4" or "fp4", any case). */
    public static QuantType parse(String name) {
        if (name != null) {
            for (QuantType t : values()) {
                if (t.bnbName.equals(name.toLowerCase(Locale.ROOT))) {
                    return t;
                }
            }
        }
        throw new IllegalArgumentException("unknown 4-bit quant type '" + name + "'; bitsandbytes defines nf4 and fp4");
    }
}
