package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.lora4j.backend.GemmTest.Problem;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code VectorGemm} at each vector width (512, 256, 128 bits) against a double-precision
 * reference: awkward sizes (1, 7, 31, 207, 702, 4096 in some dimension) in all four transpose forms,
 * alpha and beta, F32/BF16/F16 and buffer-backed B, blockwise-decoded B, and bit-identical results
 * however C is split (which is all that threads change).
 */
class VectorGemmTest {

    /** m x n x k, each with one awkward size; m*n*k small enough for the double reference. */
    private static final int[][] SHAPES = {
        {1, 1, 1}, {1, 7, 702}, {7, 1, 31}, {7, 31, 207}, {31, 7, 702}, {207, 1, 31}, {702, 31, 7},
        {1, 702, 207}, {3, 207, 31}, {207, 207, 31}, {31, 702, 31}, {7, 207, 702}, {4096, 7, 31}, {7, 4096, 31},
        {31, 7, 4096}, {1, 31, 4096}, {33, 65, 17},
    };
    private static final float[][] ALPHA_BETA = {{1f, 0f}, {-0.75f, 0.5f}, {2f, 1f}, {0.3f, -1.25f}};

    static GemmKernel width(int bits) {
        assumeTrue(Backends.vector().isPresent(), "jdk.incubator.vector is not enabled; skipping the vector gemm");
        try {
            return (GemmKernel) Class.forName("dev.lora4j.backend.VectorGemm").getMethod("ofWidth", int.class)
                    .invoke(null, bits);
        } catch (InvocationTargetException e) {
            throw new AssertionError(e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    static Stream<Arguments> widthsAndForms() {
        List<Arguments> out = new ArrayList<>();
        for (int bits : new int[] {512, 256, 128}) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    out.add(Arguments.of(bits, ta, tb));
                }
            }
        }
        return out.stream();
    }

    static Stream<Integer> widths() {
        return Stream.of(512, 256, 128);
    }

    static float[] run(GemmKernel g, Problem p) {
        float[] c = p.c0.clone();
        g.gemm(p.ta, p.tb, p.m, p.n, p.k, p.alpha, new FloatStorage(p.a), p.aOff, p.lda, p.bStorage, p.bOff, p.ldb,
                p.beta, new FloatStorage(c), p.cOff, p.ldc);
        return c;
    }

    @ParameterizedTest(name = "{0} bits {1}/{2}")
    @MethodSource("widthsAndForms")
    void awkwardSizesAlphaBetaAndStrides(int bits, boolean ta, boolean tb) {
        GemmKernel g = width(bits);
        long seed = 100;
        for (int[] s : SHAPES) {
            float[] ab = ALPHA_BETA[(int) (seed % ALPHA_BETA.length)];
            Problem p = new Problem(seed++, ta, tb, s[0], s[1], s[2], ab[0], ab[1], (int) (seed % 3), DType.F32);
            p.check(run(g, p), bits + " bits " + GemmTest.form(ta, tb) + " " + s[0] + "x" + s[1] + "x" + s[2]
                    + " alpha " + ab[0] + " beta " + ab[1]);
        }
    }

    @ParameterizedTest(name = "{0} bits {1}/{2}")
    @MethodSource("widthsAndForms")
    void halfPrecisionAndBufferB(int bits, boolean ta, boolean tb) {
        GemmKernel g = width(bits);
        for (DType type : new DType[] {DType.BF16, DType.F16}) {
            for (int[] s : new int[][] {{31, 207, 207}, {3, 702, 31}, {207, 31, 207}}) {
                Problem p = new Problem(type.ordinal() + s[0], ta, tb, s[0], s[1], s[2], 1.5f, 0.5f, 1, type);
                p.check(run(g, p), bits + " bits " + GemmTest.form(ta, tb) + " " + s[0] + "x" + s[1] + "x" + s[2]
                        + " B " + type);
            }
        }
        Problem mapped = new Problem(6, ta, tb, 31, 207, 207, 1f, 0f, 1, DType.F32, false);
        mapped.check(run(g, mapped), bits + " bits " + GemmTest.form(ta, tb) + " B F32 in a BufferStorage");
    }

    /**
     * A blockwise-quantized B (here: a storage that refuses any decode not made of whole blocks of
     * 64) stored [k, n] is decoded in whole blocks, whatever the thread split.
     */
    @ParameterizedTest(name = "{0} bits")
    @MethodSource("widths")
    void blockwiseBIsDecodedInWholeBlocks(int bits) {
        GemmKernel g = width(bits);
        SplittableRandom rng = new SplittableRandom(8);
        int m = 207; // large enough to be split between threads, in units of whole blocks
        int n = 640;
        int k = 300;
        float[] a = GemmTest.random(rng, m * k);
        float[] b = GemmTest.random(rng, k * n);
        float[] expected = new float[m * n];
        g.gemm(false, false, m, n, k, 1f, new FloatStorage(a), 0, k, new FloatStorage(b), 0, n, 0f,
                new FloatStorage(expected), 0, n);
        float[] c = new float[m * n];
        g.gemm(false, false, m, n, k, 1f, new FloatStorage(a), 0, k, new Blocks(b, 64), 0, n, 0f, new FloatStorage(c), 0,
                n);
        assertArrayEquals(expected, c, "decoding B in blocks must not change the product");
    }

    /** A float storage that decodes only whole, aligned blocks, as 4-bit formats prefer to. */
    private record Blocks(float[] values, int block) implements Storage {
        @Override
        public DType dtype() {
            return DType.F32;
        }

        @Override
        public long size() {
            return values.length;
        }

        @Override
        public void decode(long start, int count, float[] dst, int dstOffset) {
            if (start % block != 0 || count % block != 0) {
                throw new AssertionError("decode(" + start + ", " + count + ") is not whole blocks of " + block);
            }
            System.arraycopy(values, (int) start, dst, dstOffset, count);
        }

        @Override
        public long byteSize() {
            return 4L * values.length;
        }

        @Override
        public int decodeAlignment() {
            return block;
        }
    }

    /**
     * Threads only ever split C into row or column ranges; computing C in arbitrary pieces must give
     * the same bits as computing it whole, for every form and a depth of several blocks.
     */
    @ParameterizedTest(name = "{0} bits {1}/{2}")
    @MethodSource("widthsAndForms")
    void bitIdenticalHoweverCIsSplit(int bits, boolean ta, boolean tb) {
        GemmKernel g = width(bits);
        Problem p = new Problem(11, ta, tb, 207, 121, 600, 0.7f, 0.3f, 0, DType.BF16); // 3 depth blocks
        float[] whole = run(g, p);
        assertArrayEquals(whole, run(g, p), "two runs must be bit-identical");
        float[] split = p.c0.clone();
        FloatStorage a = new FloatStorage(p.a);
        FloatStorage c = new FloatStorage(split);
        int rowCut = 13;
        int colCut = 101;
        for (int[] r : new int[][] {{0, rowCut}, {rowCut, p.m}}) {
            for (int[] q : new int[][] {{0, colCut}, {colCut, p.n}}) {
                long aOff = p.aOff + (long) r[0] * (ta ? 1 : p.lda);
                long bOff = p.bOff + (long) q[0] * (tb ? p.ldb : 1);
                g.gemm(ta, tb, r[1] - r[0], q[1] - q[0], p.k, p.alpha, a, aOff, p.lda, p.bStorage, bOff, p.ldb, p.beta,
                        c, p.cOff + (long) r[0] * p.ldc + q[0], p.ldc);
            }
        }
        assertArrayEquals(whole, split, "splitting C must not change any bit");
    }

    /** The four forms over explicitly transposed copies sum in the same order: bit-identical. */
    @ParameterizedTest(name = "{0} bits")
    @MethodSource("widths")
    void transposeFormsAgreeBitForBit(int bits) {
        GemmKernel g = width(bits);
        SplittableRandom rng = new SplittableRandom(29);
        for (int[] s : new int[][] {{45, 70, 600}, {207, 37, 31}, {9, 9, 1100}}) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            float[] a = GemmTest.random(rng, m * k);
            float[] b = GemmTest.random(rng, k * n);
            float[] aT = GemmTest.transpose(a, m, k);
            float[] bT = GemmTest.transpose(b, k, n);
            float[] reference = null;
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    float[] c = new float[m * n];
                    g.gemm(ta, tb, m, n, k, 0.3f, new FloatStorage(ta ? aT : a), 0, ta ? m : k,
                            new FloatStorage(tb ? bT : b), 0, tb ? k : n, 0f, new FloatStorage(c), 0, n);
                    if (reference == null) {
                        reference = c;
                    } else {
                        assertArrayEquals(reference, c, bits + " bits " + GemmTest.form(ta, tb) + " vs NN");
                    }
                }
            }
        }
    }

    /** The 512-, 256- and 128-bit products and the scalar backend agree to rounding on a deep product. */
    @Test
    void widthsAgreeWithTheScalarBackend() {
        Problem p = new Problem(23, false, true, 64, 96, 4096, 1f, 1f, 1, DType.F32);
        float[] scalar = p.run(Backends.scalar());
        for (int bits : new int[] {512, 256, 128}) {
            float[] v = run(width(bits), p);
            for (int i = 0; i < scalar.length; i++) {
                assertEquals(scalar[i], v[i], 1e-4f * Math.max(1f, Math.abs(scalar[i])), bits + " bits, element " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0} bits")
    @MethodSource("widths")
    void betaZeroIgnoresNaNAndEmptyProductsScale(int bits) {
        GemmKernel g = width(bits);
        Problem p = new Problem(3, false, false, 31, 207, 33, 1f, 0f, 2, DType.F32);
        for (int i = 0; i < p.m; i++) {
            for (int j = 0; j < p.n; j++) {
                p.c0[p.cOff + i * p.ldc + j] = j % 2 == 0 ? Float.NaN : Float.NEGATIVE_INFINITY;
            }
        }
        p.check(run(g, p), bits + " bits, beta = 0 over NaN and -inf");
        Problem empty = new Problem(4, false, false, 7, 7, 0, 1f, 0.5f, 0, DType.F32);
        float[] c = run(g, empty);
        for (int i = 0; i < 7 * 7; i++) {
            assertEquals(0.5f * empty.c0[empty.cOff + i], c[empty.cOff + i], "k = 0: C = beta * C");
        }
        Problem zeroAlpha = new Problem(5, true, true, 9, 9, 9, 0f, 2f, 0, DType.F32);
        c = run(g, zeroAlpha);
        for (int i = 0; i < 9 * 9; i++) {
            assertEquals(2f * zeroAlpha.c0[zeroAlpha.cOff + i], c[zeroAlpha.cOff + i], "alpha = 0: C = beta * C");
        }
    }

    @Test
    void rejectsBadArgumentsAndWidths() {
        GemmKernel g = width(512);
        FloatStorage a = new FloatStorage(24);
        FloatStorage b = new FloatStorage(40);
        FloatStorage c = new FloatStorage(15);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> g.gemm(false, true, 3, 5, 8, 1f, a, 0, 8, b, 0, 7, 0f, c, 0, 5));
        assertEquals("gemm: ldb (7) must be >= k (8) for B (transposed) stored [n, k] = [5, 8]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> g.gemm(false, false, 3, 5, 8, 1f, a, 0, 8, b, 0, 5, 0f, c, 1, 5));
        assertTrue(e.getMessage().contains("C stored [3, 5] with row stride 5 from offset 1 needs 16 elements"),
                e.getMessage());
        AssertionError bad = assertThrows(AssertionError.class, () -> width(384));
        assertEquals("vector width must be 512, 256 or 128 bits, was 384", bad.getCause().getMessage());
    }
}
