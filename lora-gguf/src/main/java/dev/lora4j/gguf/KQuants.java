package dev.lora4j.gguf;

import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.DType;
import java.nio.ByteBuffer;

/**
 * llama.cpp's reference quantizers for the types a Q4_K_M file mixes, bit for bit as
 * {@code ggml/src/ggml-quants.c} computes them without an importance matrix:
 * {@code quantize_row_q4_K_ref}, {@code quantize_row_q5_K_ref} (both through
 * {@code make_qkx2_quants}), {@code quantize_row_q6_K_ref} (through {@code make_qx_quants} with
 * weights x²), and the 32-element fallbacks {@code quantize_row_q5_0_ref} and
 * {@code quantize_row_q5_1_ref}; plus decoders for Q5_0 and Q5_1.
 *
 * <p>Exactness rests on doing every operation in IEEE single precision in C's order (Java's float
 * arithmetic is the same as ggml's SSE2 code without fused multiply-adds), {@code nearest_int}'s
 * magic-number rounding (ties to even), truncating float-to-int casts where C casts, and
 * {@link DType#floatToF16} (round to nearest even, like {@code GGML_FP32_TO_FP16}). The tests
 * compare against bytes written by llama.cpp's {@code llama_model_quantize}. Blocks are independent,
 * so a tensor's blocks are quantized on the {@code lora4j.threads} pool ({@link Parallel}), each
 * writing its own bytes of {@code out} (absolute puts); the result does not depend on the split.
 *
 * <p>Block layouts (bytes in order):
 * <pre>
 * Q5_0 (32 elements, 22 bytes):  f16 d; u32 qh; u8 qs[16]            x = d·(q − 16)
 * Q5_1 (32, 24):                 f16 d; f16 m; u32 qh; u8 qs[16]     x = d·q + m
 * Q4_K, Q5_K, Q6_K:              see {@link GgmlQuants}
 * </pre>
 */
final class KQuants {
    private static final int QK_K = 256;
    /** ggml-quants.c's GROUP_MAX_EPS. */
    private static final float GROUP_MAX_EPS = 1e-15f;

    private KQuants() {
    }

    /** ggml's {@code nearest_int}: round to nearest, ties to even, for |v| ≤ 4194303. */
    static int nearestInt(float v) {
        int i = Float.floatToRawIntBits(v + 12582912.f);
        return (i & 0x007fffff) - 0x00400000;
    }

    private static void putF16(ByteBuffer out, int at, float v) {
        short h = DType.floatToF16(v);
        out.put(at, (byte) h);
        out.put(at + 1, (byte) (h >> 8));
    }

    private static float f16(byte[] b, int o) {
        return DType.f16ToFloat((short) ((b[o] & 0xff) | (b[o + 1] << 8)));
    }

    private static float f16(ByteBuffer b, int o) {
        return DType.f16ToFloat((short) ((b.get(o) & 0xff) | (b.get(o + 1) << 8)));
    }

    /** Blocks [from, to) of a tensor. */
    private interface Blocks {
        void run(int from, int to);
    }

    /**
     * Runs {@code body} over the {@code x.length / blockSize} blocks in parallel and advances
     * {@code out}'s position past them; refuses a length that is not whole blocks.
     */
    private static void blocks(String type, float[] x, int blockSize, int typeSize, ByteBuffer out, Blocks body) {
        if (x.length % blockSize != 0) {
            throw new IllegalArgumentException(type + " needs a multiple of " + blockSize + " values, got " + x.length);
        }
        int n = x.length / blockSize;
        int base = out.position();
        Parallel.forRange(n, Math.max(1, 16384 / blockSize), body::run);
        out.position(base + n * typeSize);
    }

    // ---------------------------------------------------------------- helpers of ggml-quants.c

    /**
     * {@code make_qkx2_quants} with {@code use_mad = false}: an asymmetric n-element quantization
     * to 0..nmax minimising the weighted squared error over nstep+1 trial scales. Writes the levels
     * to {@code L[lo..lo+n)}, returns the scale and stores −min in {@code mins[mi]}.
     */
    static float makeQkx2Quants(int n, int nmax, float[] x, int xo, float[] weights, int[] L, int lo, float[] mins, int mi,
                                int[] laux, float rmin, float rdelta, int nstep) {
        float min = x[xo];
        float max = x[xo];
        float sumW = weights[0];
        float sumX = sumW * x[xo];
        for (int i = 1; i < n; i++) {
            float xi = x[xo + i];
            if (xi < min) {
                min = xi;
            }
            if (xi > max) {
                max = xi;
            }
            float w = weights[i];
            sumW += w;
            sumX += w * xi;
        }
        if (min > 0) {
            min = 0;
        }
        if (max == min) {
            for (int i = 0; i < n; i++) {
                L[lo + i] = 0;
            }
            mins[mi] = -min;
            return 0.f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++) {
            int l = nearestInt(iscale * (x[xo + i] - min));
            L[lo + i] = Math.max(0, Math.min(nmax, l));
            float diff = scale * L[lo + i] + min - x[xo + i];
            diff = diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1) {
            mins[mi] = -min;
            return scale;
        }
        for (int is = 0; is <= nstep; is++) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0;
            float sumL2 = 0;
            float sumXl = 0;
            for (int i = 0; i < n; i++) {
                int l = nearestInt(iscale * (x[xo + i] - min));
                l = Math.max(0, Math.min(nmax, l));
                laux[i] = l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[xo + i];
            }
            float d = sumW * sumL2 - sumL * sumL;
            if (d > 0) {
                float thisScale = (sumW * sumXl - sumX * sumL) / d;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / d;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++) {
                    float diff = thisScale * laux[i] + thisMin - x[xo + i];
                    diff = diff * diff;
                    curError += weights[i] * diff;
                }
                if (curError < bestError) {
                    System.arraycopy(laux, 0, L, lo, n);
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        mins[mi] = -min;
        return scale;
    }

    /**
     * {@code make_qx_quants} with {@code rmse_type = 1} and no importance weights (weights x²): a
     * symmetric quantization to −nmax..nmax−1, stored as level + nmax in {@code L[lo..lo+n)}, with
     * 18 trial scales around nmax/max; returns the scale.
     */
    static float makeQxQuants(int n, int nmax, float[] x, int xo, int[] L, int lo) {
        float max = 0;
        float amax = 0;
        for (int i = 0; i < n; i++) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) {
                amax = ax;
                max = x[xo + i];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; i++) {
                L[lo + i] = 0;
            }
            return 0.f;
        }
        float iscale = -nmax / max;
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; i++) {
            float xi = x[xo + i];
            int l = nearestInt(iscale * xi);
            l = Math.max(-nmax, Math.min(nmax - 1, l));
            L[lo + i] = l + nmax;
            float w = xi * xi;
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        float best = scale * sumlx;
        for (int is = -9; is <= 9; is++) {
            if (is == 0) {
                continue;
            }
            iscale = -(nmax + 0.1f * is) / max;
            sumlx = 0;
            suml2 = 0;
            for (int i = 0; i < n; i++) {
                float xi = x[xo + i];
                int l = nearestInt(iscale * xi);
                l = Math.max(-nmax, Math.min(nmax - 1, l));
                float w = xi * xi;
                sumlx += w * xi * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                for (int i = 0; i < n; i++) {
                    int l = nearestInt(iscale * x[xo + i]);
                    L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /** get_scale_min_k4 on packed scales being written: scale (out[0]) and min (out[1]) of sub-block j. */
    private static void scaleMin(int j, byte[] s, int[] out) {
        if (j < 4) {
            out[0] = s[j] & 63;
            out[1] = s[j + 4] & 63;
        } else {
            out[0] = (s[j + 4] & 0x0f) | (((s[j - 4] & 0xff) >>> 6) << 4);
            out[1] = ((s[j + 4] & 0xff) >>> 4) | (((s[j] & 0xff) >>> 6) << 4);
        }
    }

    // ---------------------------------------------------------------- Q4_K and Q5_K

    /** quantize_row_q4_K_ref (bits 4) or quantize_row_q5_K_ref (bits 5) of x into out, block after block. */
    private static void quantizeK45(float[] x, ByteBuffer out, int bits) {
        int typeSize = bits == 4 ? 144 : 176;
        int base = out.position();
        blocks("Q" + bits + "_K", x, QK_K, typeSize, out, (from, to) -> quantizeK45(x, out, base, bits, from, to));
    }

    private static void quantizeK45(float[] x, ByteBuffer out, int base, int bits, int from, int to) {
        int nmax = bits == 4 ? 15 : 31;
        float rmin = bits == 4 ? -1.f : -0.5f;
        int nstep = bits == 4 ? 20 : 15;
        int typeSize = bits == 4 ? 144 : 176;
        int[] L = new int[QK_K];
        int[] laux = new int[32];
        float[] weights = new float[32];
        float[] mins = new float[QK_K / 32];
        float[] scales = new float[QK_K / 32];
        byte[] sc = new byte[12];
        int[] sm = new int[2];
        for (int b = from; b < to; b++) {
            int xo = b * QK_K;
            int o = base + b * typeSize;
            float maxScale = 0;
            float maxMin = 0;
            for (int j = 0; j < QK_K / 32; j++) {
                float sumX2 = 0;
                for (int l = 0; l < 32; l++) {
                    sumX2 += x[xo + 32 * j + l] * x[xo + 32 * j + l];
                }
                float avX = (float) Math.sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++) {
                    weights[l] = avX + Math.abs(x[xo + 32 * j + l]);
                }
                scales[j] = makeQkx2Quants(32, nmax, x, xo + 32 * j, weights, L, 32 * j, mins, j, laux, rmin, 0.1f, nstep);
                if (scales[j] > maxScale) {
                    maxScale = scales[j];
                }
                if (mins[j] > maxMin) {
                    maxMin = mins[j];
                }
            }
            float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
            float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
            for (int j = 0; j < QK_K / 32; j++) {
                int ls = Math.min(63, nearestInt(invScale * scales[j]) & 0xff);
                int lm = Math.min(63, nearestInt(invMin * mins[j]) & 0xff);
                if (j < 4) {
                    sc[j] = (byte) ls;
                    sc[j + 4] = (byte) lm;
                } else {
                    sc[j + 4] = (byte) ((ls & 0xf) | ((lm & 0xf) << 4));
                    sc[j - 4] |= (byte) ((ls >> 4) << 6);
                    sc[j] |= (byte) ((lm >> 4) << 6);
                }
            }
            putF16(out, o, maxScale / 63.f);
            putF16(out, o + 2, maxMin / 63.f);
            float dAll = f16(out, o);
            float mAll = f16(out, o + 2);
            for (int j = 0; j < QK_K / 32; j++) {
                scaleMin(j, sc, sm);
                float d = dAll * sm[0];
                if (d == 0) {
                    continue;
                }
                float dm = mAll * sm[1];
                for (int ii = 0; ii < 32; ii++) {
                    int l = nearestInt((x[xo + 32 * j + ii] + dm) / d);
                    L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
                }
            }
            for (int k = 0; k < 12; k++) {
                out.put(o + 4 + k, sc[k]);
            }
            if (bits == 4) {
                int q = o + 16;
                for (int j = 0; j < QK_K; j += 64) {
                    for (int l = 0; l < 32; l++) {
                        out.put(q + l, (byte) (L[j + l] | (L[j + l + 32] << 4)));
                    }
                    q += 32;
                }
            } else {
                int qh = o + 16;
                int ql = o + 48;
                byte[] h = new byte[32];
                int m1 = 1;
                int m2 = 2;
                for (int n = 0; n < QK_K; n += 64) {
                    for (int j = 0; j < 32; j++) {
                        int l1 = L[n + j];
                        if (l1 > 15) {
                            l1 -= 16;
                            h[j] |= (byte) m1;
                        }
                        int l2 = L[n + j + 32];
                        if (l2 > 15) {
                            l2 -= 16;
                            h[j] |= (byte) m2;
                        }
                        out.put(ql + j, (byte) (l1 | (l2 << 4)));
                    }
                    m1 <<= 2;
                    m2 <<= 2;
                    ql += 32;
                }
                for (int j = 0; j < 32; j++) {
                    out.put(qh + j, h[j]);
                }
            }
        }
    }

    static void quantizeQ4_K(float[] x, ByteBuffer out) {
        quantizeK45(x, out, 4);
    }

    static void quantizeQ5_K(float[] x, ByteBuffer out) {
        quantizeK45(x, out, 5);
    }

    // ---------------------------------------------------------------- Q6_K

    /** quantize_row_q6_K_ref. */
    static void quantizeQ6_K(float[] x, ByteBuffer out) {
        int base = out.position();
        blocks("Q6_K", x, QK_K, 210, out, (from, to) -> quantizeQ6_K(x, out, base, from, to));
    }

    private static void quantizeQ6_K(float[] x, ByteBuffer out, int base, int from, int to) {
        int[] L = new int[QK_K];
        float[] scales = new float[QK_K / 16];
        byte[] sc = new byte[QK_K / 16];
        for (int b = from; b < to; b++) {
            int xo = b * QK_K;
            int o = base + b * 210;
            float maxScale = 0;
            float maxAbsScale = 0;
            for (int ib = 0; ib < QK_K / 16; ib++) {
                float scale = makeQxQuants(16, 32, x, xo + 16 * ib, L, 16 * ib);
                scales[ib] = scale;
                float abs = Math.abs(scale);
                if (abs > maxAbsScale) {
                    maxAbsScale = abs;
                    maxScale = scale;
                }
            }
            if (maxAbsScale < GROUP_MAX_EPS) {
                for (int k = 0; k < 210; k++) {
                    out.put(o + k, (byte) 0);
                }
                putF16(out, o + 208, 0.f);
                continue;
            }
            float iscale = -128.f / maxScale;
            putF16(out, o + 208, 1 / iscale);
            for (int ib = 0; ib < QK_K / 16; ib++) {
                sc[ib] = (byte) Math.min(127, nearestInt(iscale * scales[ib]));
            }
            float dAll = f16(out, o + 208);
            for (int j = 0; j < QK_K / 16; j++) {
                float d = dAll * sc[j];
                if (d == 0) {
                    continue;
                }
                for (int ii = 0; ii < 16; ii++) {
                    int l = nearestInt(x[xo + 16 * j + ii] / d);
                    l = Math.max(-32, Math.min(31, l));
                    L[16 * j + ii] = l + 32;
                }
            }
            int ql = o;
            int qh = o + 128;
            for (int j = 0; j < QK_K; j += 128) {
                for (int l = 0; l < 32; l++) {
                    int q1 = L[j + l] & 0xf;
                    int q2 = L[j + l + 32] & 0xf;
                    int q3 = L[j + l + 64] & 0xf;
                    int q4 = L[j + l + 96] & 0xf;
                    out.put(ql + l, (byte) (q1 | (q3 << 4)));
                    out.put(ql + l + 32, (byte) (q2 | (q4 << 4)));
                    out.put(qh + l, (byte) ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4)
                            | ((L[j + l + 96] >> 4) << 6)));
                }
                ql += 64;
                qh += 32;
            }
            for (int k = 0; k < 16; k++) {
                out.put(o + 192 + k, sc[k]);
            }
        }
    }

    // ---------------------------------------------------------------- Q5_0 and Q5_1

    /** quantize_row_q5_0_ref. */
    static void quantizeQ5_0(float[] x, ByteBuffer out) {
        int base = out.position();
        blocks("Q5_0", x, 32, 22, out, (from, to) -> quantizeQ5_0(x, out, base, from, to));
    }

    private static void quantizeQ5_0(float[] x, ByteBuffer out, int base, int from, int to) {
        for (int blk = from; blk < to; blk++) {
            int b = blk * 32;
            int o = base + blk * 22;
            float amax = 0.0f;
            float max = 0.0f;
            for (int j = 0; j < 32; j++) {
                float v = x[b + j];
                if (amax < Math.abs(v)) {
                    amax = Math.abs(v);
                    max = v;
                }
            }
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            putF16(out, o, d);
            int qh = 0;
            byte[] qs = new byte[16];
            for (int j = 0; j < 16; j++) {
                float x0 = x[b + j] * id;
                float x1 = x[b + 16 + j] * id;
                int xi0 = Math.min(31, (byte) (int) (x0 + 16.5f));
                int xi1 = Math.min(31, (byte) (int) (x1 + 16.5f));
                qs[j] = (byte) ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
                qh |= ((xi0 & 0x10) >>> 4) << j;
                qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
            }
            out.putInt(o + 2, qh);
            out.put(o + 6, qs);
        }
    }

    /** quantize_row_q5_1_ref. */
    static void quantizeQ5_1(float[] x, ByteBuffer out) {
        int base = out.position();
        blocks("Q5_1", x, 32, 24, out, (from, to) -> quantizeQ5_1(x, out, base, from, to));
    }

    private static void quantizeQ5_1(float[] x, ByteBuffer out, int base, int from, int to) {
        for (int blk = from; blk < to; blk++) {
            int b = blk * 32;
            int o = base + blk * 24;
            float min = Float.MAX_VALUE;
            float max = -Float.MAX_VALUE;
            for (int j = 0; j < 32; j++) {
                float v = x[b + j];
                if (v < min) {
                    min = v;
                }
                if (v > max) {
                    max = v;
                }
            }
            float d = (max - min) / ((1 << 5) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            putF16(out, o, d);
            putF16(out, o + 2, min);
            int qh = 0;
            byte[] qs = new byte[16];
            for (int j = 0; j < 16; j++) {
                float x0 = (x[b + j] - min) * id;
                float x1 = (x[b + 16 + j] - min) * id;
                int xi0 = ((int) (x0 + 0.5f)) & 0xff;
                int xi1 = ((int) (x1 + 0.5f)) & 0xff;
                qs[j] = (byte) ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
                qh |= ((xi0 & 0x10) >>> 4) << j;
                qh |= ((xi1 & 0x10) >>> 4) << (j + 16);
            }
            out.putInt(o + 4, qh);
            out.put(o + 8, qs);
        }
    }

    static void decodeQ5_0(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        int qh = (b[o + 2] & 0xff) | (b[o + 3] & 0xff) << 8 | (b[o + 4] & 0xff) << 16 | (b[o + 5] & 0xff) << 24;
        for (int j = 0; j < 16; j++) {
            int q = b[o + 6 + j] & 0xff;
            int xh0 = ((qh >>> j) << 4) & 0x10;
            int xh1 = (qh >>> (j + 12)) & 0x10;
            y[yo + j] = (((q & 0x0f) | xh0) - 16) * d;
            y[yo + j + 16] = (((q >>> 4) | xh1) - 16) * d;
        }
    }

    static void decodeQ5_1(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        float m = f16(b, o + 2);
        int qh = (b[o + 4] & 0xff) | (b[o + 5] & 0xff) << 8 | (b[o + 6] & 0xff) << 16 | (b[o + 7] & 0xff) << 24;
        for (int j = 0; j < 16; j++) {
            int q = b[o + 8 + j] & 0xff;
            int xh0 = ((qh >>> j) << 4) & 0x10;
            int xh1 = (qh >>> (j + 12)) & 0x10;
            y[yo + j] = ((q & 0x0f) | xh0) * d + m;
            y[yo + j + 16] = ((q >>> 4) | xh1) * d + m;
        }
    }
}
