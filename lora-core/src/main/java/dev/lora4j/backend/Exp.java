package dev.lora4j.backend;

/**
 * e^x in float for softmax, attention and the cross-entropy loss, within 2 ulp of the exact
 * value over the whole float range (subnormal results included), and the scalar twin of
 * {@code VectorExp}: lane by lane the vector kernel performs the same IEEE operations in the same
 * order, so the two agree bit for bit.
 *
 * <p>Method (Cody and Waite's reduction with Cephes' {@code expf} polynomial, S. Moshier,
 * 1984-2000): {@code n = rint(x·log2 e)}, {@code r = x - n·ln 2} with ln 2 split in two so that
 * {@code n·ln2_hi} is exact, {@code e^r = 1 + r + r²·P(r)} on |r| ≤ ln 2 / 2, and the result
 * {@code e^r · 2^n} scaled in two halves so that subnormal results round once and large ones
 * overflow to infinity. Special values: e^-inf = 0 (as is every x below about -103.97), e^+inf =
 * +inf (every x above about 88.72), NaN gives NaN.
 */
public final class Exp {
    private Exp() {
    }

    /** Inputs are clamped to [LOW, HIGH]: e^LOW rounds to 0, e^HIGH overflows to infinity. */
    static final float LOW = -104f;
    static final float HIGH = 88.8f;
    static final float LOG2E = 1.44269504088896341f;
    /** 1.5·2^23: adding it rounds to an integer, which then sits in the low bits of the float. */
    static final float ROUND = 0x1.8p23f;
    static final float LN2_HI = 0.693359375f;
    static final float LN2_LO = -2.12194440e-4f;
    static final float P0 = 1.9875691500e-4f;
    static final float P1 = 1.3981999507e-3f;
    static final float P2 = 8.3334519073e-3f;
    static final float P3 = 4.1665795894e-2f;
    static final float P4 = 1.6666665459e-1f;
    static final float P5 = 5.0000001201e-1f;

    /** e^x; see the class comment for accuracy and special values. */
    public static float exp(float x) {
        // comparisons, not Math.min/max, so that NaN passes through unchanged
        float v = x < LOW ? LOW : x;
        v = v > HIGH ? HIGH : v;
        float t = Math.fma(v, LOG2E, ROUND);
        float nf = t - ROUND;
        int n = Float.floatToRawIntBits(t) - Float.floatToRawIntBits(ROUND);
        float r = Math.fma(nf, -LN2_HI, v);
        r = Math.fma(nf, -LN2_LO, r);
        float p = Math.fma(P0, r, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float y = Math.fma(p, r * r, r) + 1f;
        int n1 = n >> 1;
        return y * Float.intBitsToFloat((n1 + 127) << 23) * Float.intBitsToFloat((n - n1 + 127) << 23);
    }

    /** {@code dst[dstOffset + i] = e^(src[srcOffset + i])} for i &lt; n (src and dst may be the same array). */
    public static void exp(float[] src, int srcOffset, float[] dst, int dstOffset, int n) {
        ScalarBackend.checkRange("exp", "src", src, srcOffset, n);
        ScalarBackend.checkRange("exp", "dst", dst, dstOffset, n);
        for (int i = 0; i < n; i++) {
            dst[dstOffset + i] = exp(src[srcOffset + i]);
        }
    }

    /**
     * The softmax numerator: {@code dst[dstOffset + i] = e^(src[srcOffset + i] - shift)} for i &lt; n,
     * returning their sum (accumulated in float in index order). With shift = the row's maximum,
     * every term is at most 1 and the sum at least 1.
     */
    public static float expShiftSum(float[] src, int srcOffset, float shift, float[] dst, int dstOffset, int n) {
        ScalarBackend.checkRange("expShiftSum", "src", src, srcOffset, n);
        ScalarBackend.checkRange("expShiftSum", "dst", dst, dstOffset, n);
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = exp(src[srcOffset + i] - shift);
            dst[dstOffset + i] = e;
            sum += e;
        }
        return sum;
    }
}
