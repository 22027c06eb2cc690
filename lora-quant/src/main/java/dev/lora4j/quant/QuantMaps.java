package dev.lora4j.quant;

import java.util.Arrays;
import org.apache.commons.math3.distribution.NormalDistribution;

/**
 * The code tables ("quantization maps") of bitsandbytes, in float32 as it builds them.
 *
 * <ul>
 *   <li>{@link #nf4()}: the 16 NF4 values as published in {@code bitsandbytes.functional.get_4bit_type("nf4")}
 *       (the table its kernels use); {@link #createNormalMap} derives them from N(0, 1) quantiles.</li>
 *   <li>{@link #fp4()}: {@code [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12}.</li>
 *   <li>{@link #dynamicSigned()}: {@code create_dynamic_map(signed=True)}, the 256-value map of
 *       8-bit blockwise quantization (Dettmers, "8-Bit Approximations for Parallelism in Deep
 *       Learning", arXiv:1511.04561), which double quantization applies to the absmax values.</li>
 * </ul>
 */
public final class QuantMaps {
    /** {@code create_normal_map}'s default: the outermost quantile, chosen so that ±1 get equal weight. */
    public static final double NF4_OFFSET = 0.9677083;

    private static final float[] NF4 = {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    private static final float[] FP4 = fp4Table();
    private static final float[] DYNAMIC_SIGNED = createDynamicMap(true, 7, 8);

    private QuantMaps() {
    }

    /** The published NF4 table, index = 4-bit code. */
    public static float[] nf4() {
        return NF4.clone();
    }

    /** The FP4 table, index = 4-bit code (bit 3 = sign). */
    public static float[] fp4() {
        return FP4.clone();
    }

    /** bitsandbytes' signed dynamic 8-bit map (256 sorted values from -0.99297 to 1). */
    public static float[] dynamicSigned() {
        return DYNAMIC_SIGNED.clone();
    }

    static float[] dynamicSignedShared() {
        return DYNAMIC_SIGNED;
    }

    private static float[] fp4Table() {
        float[] raw = {0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f};
        float[] out = new float[16];
        for (int i = 0; i < 16; i++) {
            out[i] = raw[i] / 12f;
        }
        return out;
    }

    /**
     * bitsandbytes' {@code create_normal_map(offset, use_extra_value)}: with the extra value, the
     * positive half is the N(0, 1) quantiles Φ⁻¹(p) at 8 points p evenly spaced from
     * {@code offset} down to 0.5 (exclusive), the negative half −Φ⁻¹(p) at 7 such points, plus an
     * exact 0, padded with zeros to 256 values, sorted and divided by the largest. Each step
     * rounds to float32 where PyTorch does (the evenly spaced points, the quantiles, the division).
     * Without the extra value both halves have 7 points and there are two zeros.
     *
     * @return 256 sorted values; with the extra value, the distinct ones are the 16 NF4 codes
     */
    public static float[] createNormalMap(double offset, boolean useExtraValue) {
        NormalDistribution normal = new NormalDistribution(null, 0, 1);
        float[] positive = Arrays.copyOf(torchLinspace((float) offset, 0.5f, useExtraValue ? 9 : 8), useExtraValue ? 8 : 7);
        float[] negative = Arrays.copyOf(torchLinspace((float) offset, 0.5f, 8), 7);
        float[] values = new float[256];
        int k = 0;
        for (float p : positive) {
            values[k++] = (float) normal.inverseCumulativeProbability(p);
        }
        for (float p : negative) {
            values[k++] = (float) -normal.inverseCumulativeProbability(p);
        }
        Arrays.sort(values);
        float max = values[255];
        for (int i = 0; i < 256; i++) {
            values[i] /= max;
        }
        return values;
    }

    /** The 16 NF4 codes derived from {@link #createNormalMap}{@code (NF4_OFFSET, true)}: its distinct values in order. */
    public static float[] deriveNf4() {
        float[] map = createNormalMap(NF4_OFFSET, true);
        float[] out = new float[16];
        System.arraycopy(map, 0, out, 0, 7);
        out[7] = 0f;
        System.arraycopy(map, 248, out, 8, 8);
        return out;
    }

    /**
     * bitsandbytes' {@code create_dynamic_map(signed, max_exponent_bits, total_bits)}: for each
     * exponent i in [0, max_exponent_bits) the midpoints of {@code 2^i + 1} (signed) evenly spaced
     * points in [0.1, 1], scaled by {@code 10^(i − max_exponent_bits + 1)}, with their negatives
     * when signed, then 0 and 1; sorted. Arithmetic in float32 as PyTorch does it.
     */
    public static float[] createDynamicMap(boolean signed, int maxExponentBits, int totalBits) {
        int nonSignBits = totalBits - 1; // bitsandbytes subtracts 1 whether signed or not
        int additionalItems = (1 << (nonSignBits - maxExponentBits)) - 1;
        float[] data = new float[256];
        int k = 0;
        int i = 0;
        for (; i < maxExponentBits; i++) {
            int fractionItems = signed ? (1 << (i + nonSignBits - maxExponentBits)) + 1
                    : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            k = appendScaledMeans(data, k, fractionItems, i - (maxExponentBits - 1), signed);
        }
        if (additionalItems > 0) {
            k = appendScaledMeans(data, k, additionalItems + 1, i - 1 - (maxExponentBits - 1), signed);
        }
        data[k++] = 0f;
        data[k++] = 1f;
        if (k != 1 << totalBits) {
            throw new IllegalArgumentException("create_dynamic_map(signed=" + signed + ", max_exponent_bits=" + maxExponentBits
                    + ", total_bits=" + totalBits + ") makes " + k + " values, not " + (1 << totalBits));
        }
        Arrays.sort(data); // the unused tail holds zeros, as bitsandbytes pads with zeros before sorting
        return data;
    }

    private static int appendScaledMeans(float[] data, int k, int points, int exponent, boolean signed) {
        float[] boundaries = torchLinspace(0.1f, 1f, points);
        float scale = (float) Math.pow(10, exponent);
        for (int j = 0; j + 1 < points; j++) {
            float mean = (boundaries[j] + boundaries[j + 1]) / 2f;
            data[k++] = exponent == 0 ? mean : scale * mean;
            if (signed) {
                data[k++] = exponent == 0 ? -mean : -scale * mean;
            }
        }
        return k;
    }

    /**
     * {@code torch.linspace(start, end, steps)} in float32: step = (end − start)/(steps − 1), the
     * first half counted up from start, the second half down from end.
     */
    static float[] torchLinspace(float start, float end, int steps) {
        float[] out = new float[steps];
        if (steps == 1) {
            out[0] = start;
            return out;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) {
            out[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        }
        return out;
    }
}
