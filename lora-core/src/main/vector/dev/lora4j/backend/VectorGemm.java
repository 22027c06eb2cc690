package dev.lora4j.backend;

import dev.lora4j.backend.GemmPacking.Widener;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API matrix product behind {@link VectorBackend#gemm}: {@link PackedGemm}'s packed
 * panels and cache blocking with a register-blocked fused-multiply-add micro-kernel, and B
 * widened from BF16/F16 with vector operations.
 *
 * <p>Every element of C is computed as {@code c = beta*c (0 when beta == 0); for each depth block
 * in order: c = fma(alpha, s_block, c)}, where {@code s_block} is a chain of fused multiply-adds in
 * increasing k starting from 0. That order depends only on k and the block depth, never on how C
 * is split between threads or tiles, so results are bit-identical for any thread count and the
 * four transpose forms agree bit for bit.
 *
 * <p>One subclass per vector width, each with its species a compile-time constant (the Vector API
 * only compiles to vector instructions when C2 sees the species as a constant): 512 bits with an
 * 8 x 2-vector tile (16 accumulators of 32 registers), 256 and 128 bits with a 6 x 2-vector tile
 * (12 accumulators, which fit the 16 registers of AVX2). Only the platform's preferred width is
 * used in production; the others exist to be tested ({@link #ofWidth}).
 */
public abstract class VectorGemm extends PackedGemm {

    /**
     * Depth of a packed block. A B micro-panel (kc x nr floats, 32 KiB at 512 bits) then stays in
     * a 48 KiB L1 while the micro-kernel sweeps the A block.
     */
    static final int KC = 256;
    /** Rows of op(A) packed at a time: an A block of {@code MC x KC} floats (256 KiB) stays in L2. */
    static final int MC = 256;
    /** Columns of op(B) packed at a time: a B block of {@code KC x NC} floats (3 MiB) in L3. */
    static final int NC = 3072;

    private final String name;

    VectorGemm(String name, int mr, int nr, int kc, int mc, int nc) {
        super("vector", mr, nr, kc, mc, nc);
        this.name = name;
    }

    /** The product at the platform's preferred vector width. */
    public static VectorGemm preferred() {
        return ofWidth(FloatVector.SPECIES_PREFERRED.vectorBitSize());
    }

    /**
     * The product at a given vector width: 512, 256 or 128 bits. A width wider than the hardware's
     * still computes correctly (the Vector API emulates it) but slowly; it exists for tests.
     */
    public static VectorGemm ofWidth(int bits) {
        return ofWidth(bits, KC, MC, NC);
    }

    /** With explicit cache blocking, for tuning experiments. */
    static VectorGemm ofWidth(int bits, int kc, int mc, int nc) {
        return switch (bits) {
            case 512 -> new Width512(kc, mc, nc);
            case 256 -> new Width256(kc, mc, nc);
            case 128 -> new Width128(kc, mc, nc);
            default -> throw new IllegalArgumentException("vector width must be 512, 256 or 128 bits, was " + bits);
        };
    }

    @Override
    public String toString() {
        return name + " (" + super.toString() + ")";
    }

    /** Partial tiles and row dots round as the fused-multiply-add kernels do. */
    @Override
    final float accumulate(float c, float alpha, float sum) {
        return Math.fma(alpha, sum, c);
    }

    // ---------------------------------------------------------------- widening B

    /** BF16, F16 and F32 buffers are copied in bulk (half precision widened with vector ops); others decode. */
    @Override
    Widener widener(Storage b) {
        if (b instanceof BufferStorage buffer && buffer.dtype() == DType.F32) {
            FloatBuffer floats = buffer.bytes().asFloatBuffer();
            return (start, count, dst, dstOffset) -> floats.get(Math.toIntExact(start), dst, dstOffset, count);
        }
        if (b instanceof BufferStorage buffer && (buffer.dtype() == DType.BF16 || buffer.dtype() == DType.F16)) {
            ShortBuffer shorts = buffer.bytes().asShortBuffer();
            boolean bf16 = buffer.dtype() == DType.BF16;
            return new Widener() {
                private short[] raw = new short[0];

                @Override
                public void widen(long start, int count, float[] dst, int dstOffset) {
                    if (raw.length < count) {
                        raw = new short[count];
                    }
                    shorts.get(Math.toIntExact(start), raw, 0, count);
                    if (bf16) {
                        VectorBackend.widenBf16(raw, count, dst, dstOffset);
                    } else {
                        VectorBackend.widenF16(raw, count, dst, dstOffset);
                    }
                }
            };
        }
        return b::decode;
    }

    // ---------------------------------------------------------------- the micro-kernels

    /*
     * The kernels below are one template instantiated per width, because the species must be a
     * static final constant in the method C2 compiles. Indices are written as functions of the loop
     * counter p (not as pointers bumped each step) so that C2 can hoist their bounds checks out of
     * the loop. The tile update at the end is written out in place: through a helper taking vectors
     * as arguments, C2 boxed the accumulators (about 770 bytes per tile).
     */

    /** 512-bit vectors, 8 x 32 tiles: 16 accumulators, 2 B vectors and a broadcast in 32 registers. */
    static final class Width512 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
        private static final int L = 16;

        Width512(int kc, int mc, int nc) {
            super("512-bit vector gemm", 8, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            FloatVector c60 = c00, c61 = c00, c70 = c00, c71 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 8 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
                x = FloatVector.broadcast(F, a[pa + 6]);
                c60 = x.fma(b0, c60);
                c61 = x.fma(b1, c61);
                x = FloatVector.broadcast(F, a[pa + 7]);
                c70 = x.fma(b0, c70);
                c71 = x.fma(b1, c71);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c60.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c61.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c70.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c71.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) { // in lane order: reduceLanes leaves its order open
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }

    /** 256-bit vectors, 6 x 16 tiles. */
    static final class Width256 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
        private static final int L = 8;

        Width256(int kc, int mc, int nc) {
            super("256-bit vector gemm", 6, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 6 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) {
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }

    /** 128-bit vectors, 6 x 8 tiles. */
    static final class Width128 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_128;
        private static final int L = 4;

        Width128(int kc, int mc, int nc) {
            super("128-bit vector gemm", 6, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 6 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) {
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }
}
