package dev.lora4j.gguf;

import dev.lora4j.tensor.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * ggml's block formats, bit for bit as {@code ggml/src/ggml-quants.c} defines them: decoding of
 * Q8_0, Q4_0, Q4_K, Q5_K and Q6_K blocks to F32, and encoding of F32 values as F32, F16, BF16 or
 * Q8_0 ({@code quantize_row_q8_0_ref}: per block of 32, {@code d = amax / 127} stored as F16,
 * {@code q = roundf(x / d)} with ties away from zero).
 *
 * <p>Block layouts (bytes in order; f16 is IEEE half):
 * <pre>
 * Q8_0 (32 elements, 34 bytes):  f16 d; i8 qs[32]                       x = d·q
 * Q4_0 (32, 18):                 f16 d; u8 qs[16]                       x[j] = d·(lo(qs[j]) − 8), x[j+16] = d·(hi(qs[j]) − 8)
 * Q4_K (256, 144):               f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
 * Q5_K (256, 176):               f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 * Q6_K (256, 210):               u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 * </pre>
 * In Q4_K and Q5_K each 64 elements are two sub-blocks of 32 with 6-bit scales and mins packed in
 * {@code scales[12]} ({@code get_scale_min_k4}); x = d·sc·q − dmin·m.
 */
public final class GgmlQuants {
    private GgmlQuants() {
    }

    // ---------------------------------------------------------------- encoding

    /**
     * {@code values} encoded as {@code type} (F32, F16, BF16, Q8_0, or llama.cpp's reference
     * quantizers of {@link KQuants}: Q4_K, Q5_K, Q6_K, Q5_0, Q5_1), little-endian.
     */
    public static ByteBuffer encode(GgmlType type, float[] values) {
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(type.byteSize(values.length))).order(ByteOrder.LITTLE_ENDIAN);
        switch (type) {
            case F32 -> out.asFloatBuffer().put(values);
            case F16 -> {
                for (float v : values) {
                    out.putShort(DType.floatToF16(v));
                }
            }
            case BF16 -> {
                for (float v : values) {
                    out.putShort(DType.floatToBf16(v));
                }
            }
            case Q8_0 -> quantizeQ8_0(values, out);
            case Q4_K -> KQuants.quantizeQ4_K(values, out);
            case Q5_K -> KQuants.quantizeQ5_K(values, out);
            case Q6_K -> KQuants.quantizeQ6_K(values, out);
            case Q5_0 -> KQuants.quantizeQ5_0(values, out);
            case Q5_1 -> KQuants.quantizeQ5_1(values, out);
            default -> throw new IllegalArgumentException("lora4j writes F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K, Q5_0 and "
                    + "Q5_1 tensors, not " + type);
        }
        out.clear();
        return out;
    }

    private static void quantizeQ8_0(float[] x, ByteBuffer out) {
        if (x.length % 32 != 0) {
            throw new IllegalArgumentException("Q8_0 needs a multiple of 32 values, got " + x.length);
        }
        for (int b = 0; b < x.length; b += 32) {
            float amax = 0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[b + j]));
            }
            float d = amax / 127f;
            float id = d != 0f ? 1.0f / d : 0.0f;
            out.putShort(DType.floatToF16(d));
            for (int j = 0; j < 32; j++) {
                out.put((byte) roundAwayFromZero(x[b + j] * id));
            }
        }
    }

    /** C's roundf: halfway cases away from zero. */
    static int roundAwayFromZero(float v) {
        double a = Math.floor(Math.abs((double) v) + 0.5);
        return (int) (v < 0 ? -a : a);
    }

    // ---------------------------------------------------------------- decoding

    /**
     * Decodes block {@code block} of {@code type} from {@code src} (the block's bytes start at
     * {@code srcOffset}) into {@code y[yOffset .. yOffset + blockSize)}.
     */
    static void decodeBlock(GgmlType type, byte[] src, int srcOffset, float[] y, int yOffset) {
        switch (type) {
            case Q8_0 -> decodeQ8_0(src, srcOffset, y, yOffset);
            case Q4_0 -> decodeQ4_0(src, srcOffset, y, yOffset);
            case Q4_K -> decodeQ4_K(src, srcOffset, y, yOffset);
            case Q5_K -> decodeQ5_K(src, srcOffset, y, yOffset);
            case Q6_K -> decodeQ6_K(src, srcOffset, y, yOffset);
            case Q5_0 -> KQuants.decodeQ5_0(src, srcOffset, y, yOffset);
            case Q5_1 -> KQuants.decodeQ5_1(src, srcOffset, y, yOffset);
            default -> throw new IllegalArgumentException("no block decoder for " + type);
        }
    }

    private static float f16(byte[] b, int o) {
        return DType.f16ToFloat((short) ((b[o] & 0xff) | (b[o + 1] << 8)));
    }

    static void decodeQ8_0(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        for (int j = 0; j < 32; j++) {
            y[yo + j] = b[o + 2 + j] * d;
        }
    }

    static void decodeQ4_0(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        for (int j = 0; j < 16; j++) {
            int q = b[o + 2 + j] & 0xff;
            y[yo + j] = ((q & 0x0f) - 8) * d;
            y[yo + j + 16] = ((q >>> 4) - 8) * d;
        }
    }

    /** {@code get_scale_min_k4}: the 6-bit scale (index 0 of {@code out}) and min (index 1) of sub-block j. */
    private static void scaleMinK4(int j, byte[] b, int scales, int[] out) {
        if (j < 4) {
            out[0] = b[scales + j] & 63;
            out[1] = b[scales + j + 4] & 63;
        } else {
            out[0] = (b[scales + j + 4] & 0x0f) | (((b[scales + j - 4] & 0xff) >>> 6) << 4);
            out[1] = ((b[scales + j + 4] & 0xff) >>> 4) | (((b[scales + j] & 0xff) >>> 6) << 4);
        }
    }

    static void decodeQ4_K(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        float min = f16(b, o + 2);
        int scales = o + 4;
        int q = o + 16;
        int[] sm = new int[2];
        int is = 0;
        for (int j = 0; j < 256; j += 64) {
            scaleMinK4(is, b, scales, sm);
            float d1 = d * sm[0];
            float m1 = min * sm[1];
            scaleMinK4(is + 1, b, scales, sm);
            float d2 = d * sm[0];
            float m2 = min * sm[1];
            for (int l = 0; l < 32; l++) {
                y[yo++] = d1 * (b[q + l] & 0x0f) - m1;
            }
            for (int l = 0; l < 32; l++) {
                y[yo++] = d2 * ((b[q + l] & 0xff) >>> 4) - m2;
            }
            q += 32;
            is += 2;
        }
    }

    static void decodeQ5_K(byte[] b, int o, float[] y, int yo) {
        float d = f16(b, o);
        float min = f16(b, o + 2);
        int scales = o + 4;
        int qh = o + 16;
        int ql = o + 48;
        int[] sm = new int[2];
        int is = 0;
        int u1 = 1;
        int u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            scaleMinK4(is, b, scales, sm);
            float d1 = d * sm[0];
            float m1 = min * sm[1];
            scaleMinK4(is + 1, b, scales, sm);
            float d2 = d * sm[0];
            float m2 = min * sm[1];
            for (int l = 0; l < 32; l++) {
                y[yo++] = d1 * ((b[ql + l] & 0x0f) + ((b[qh + l] & u1) != 0 ? 16 : 0)) - m1;
            }
            for (int l = 0; l < 32; l++) {
                y[yo++] = d2 * (((b[ql + l] & 0xff) >>> 4) + ((b[qh + l] & u2) != 0 ? 16 : 0)) - m2;
            }
            ql += 32;
            is += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }

    static void decodeQ6_K(byte[] b, int o, float[] y, int yo) {
        int ql = o;
        int qh = o + 128;
        int sc = o + 192;
        float d = f16(b, o + 208);
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int h = b[qh + l] & 0xff;
                int q1 = ((b[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
                int q2 = ((b[ql + l + 32] & 0x0f) | (((h >>> 2) & 3) << 4)) - 32;
                int q3 = (((b[ql + l] & 0xff) >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
                int q4 = (((b[ql + l + 32] & 0xff) >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
                y[yo + l] = d * b[sc + is] * q1;
                y[yo + l + 32] = d * b[sc + is + 2] * q2;
                y[yo + l + 64] = d * b[sc + is + 4] * q3;
                y[yo + l + 96] = d * b[sc + is + 6] * q4;
            }
            yo += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}
