package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class GemmTest {

    /** Shapes mixing the sizes {1, 7, 31, 207, 702}; m*n*k stays small enough for a double reference. */
    private static final int[][] SHAPES = {
        {1, 1, 1}, {7, 31, 207}, {31, 7, 702}, {207, 1, 31}, {702, 31, 7}, {1, 702, 207}, {207, 207, 31},
        {31, 702, 207}, {7, 207, 702},
    };

    static Stream<Arguments> backendsAndForms() {
        List<Arguments> out = new ArrayList<>();
        for (String backend : new String[] {"scalar", "vector"}) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    out.add(Arguments.of(backend, ta, tb));
                }
            }
        }
        return out.stream();
    }

    static Backend backend(String name) {
        if (name.equals("scalar")) {
            return Backends.scalar();
        }
        assumeTrue(Backends.vector().isPresent(), "jdk.incubator.vector is not enabled; skipping the vector backend");
        return Backends.vector().get();
    }

    /** A gemm problem laid out with padding: offsets and row strides larger than needed. */
    static final class Problem {
        final boolean ta;
        final boolean tb;
        final int m;
        final int n;
        final int k;
        final float alpha;
        final float beta;
        final int lda;
        final int ldb;
        final int ldc;
        final int aOff = 3;
        final int bOff = 5;
        final int cOff = 2;
        final float[] a;
        final float[] b;
        final float[] c0;
        final Storage bStorage;

        Problem(long seed, boolean ta, boolean tb, int m, int n, int k, float alpha, float beta, int pad, DType bType) {
            this(seed, ta, tb, m, n, k, alpha, beta, pad, bType, bType == DType.F32);
        }

        /** {@code heap}: B as FloatStorage, else as a little-endian BufferStorage of {@code bType}. */
        Problem(long seed, boolean ta, boolean tb, int m, int n, int k, float alpha, float beta, int pad, DType bType,
                boolean heap) {
            SplittableRandom rng = new SplittableRandom(seed);
            this.ta = ta;
            this.tb = tb;
            this.m = m;
            this.n = n;
            this.k = k;
            this.alpha = alpha;
            this.beta = beta;
            int aRows = ta ? k : m;
            int aCols = ta ? m : k;
            int bRows = tb ? n : k;
            int bCols = tb ? k : n;
            lda = aCols + pad;
            ldb = bCols + 2 * pad;
            ldc = n + pad;
            a = random(rng, aOff + aRows * lda);
            float[] bValues = random(rng, bOff + bRows * ldb);
            c0 = random(rng, cOff + m * ldc + 1);
            bStorage = heap ? new FloatStorage(bValues) : BufferStorage.of(bValues, bType);
            b = new float[bValues.length];
            bStorage.decode(0, b.length, b, 0); // the reference sees exactly the widened values
        }

        float[] run(Backend backend) {
            float[] c = c0.clone();
            backend.gemm(ta, tb, m, n, k, alpha, new FloatStorage(a), aOff, lda, bStorage, bOff, ldb, beta,
                    new FloatStorage(c), cOff, ldc);
            return c;
        }

        double opA(int i, int p) {
            return ta ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
        }

        double opB(int p, int j) {
            return tb ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
        }

        /** Checks C against a double-precision reference, and that padding around C is untouched. */
        void check(float[] c, String what) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    double magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double t = opA(i, p) * opB(p, j);
                        sum += t;
                        magnitude += Math.abs(t);
                    }
                    double old = c0[cOff + i * ldc + j];
                    double expected = alpha * sum + (beta == 0 ? 0 : beta * old);
                    double scale = Math.abs(alpha) * magnitude + (beta == 0 ? 0 : Math.abs(beta * old));
                    double tolerance = (k + 4) * 0x1p-23 * scale + 1e-30;
                    float got = c[cOff + i * ldc + j];
                    if (!(Math.abs(got - expected) <= tolerance)) {
                        fail(what + ": C[" + i + "," + j + "] = " + got + ", expected " + expected + " +- " + tolerance);
                    }
                }
            }
            for (int idx = 0; idx < c.length; idx++) {
                int rel = idx - cOff;
                boolean inside = rel >= 0 && rel / ldc < m && rel % ldc < n;
                if (!inside && Float.floatToRawIntBits(c[idx]) != Float.floatToRawIntBits(c0[idx])) {
                    fail(what + ": element " + idx + " outside C was overwritten");
                }
            }
        }
    }

    static float[] random(SplittableRandom rng, int size) {
        float[] x = new float[size];
        for (int i = 0; i < size; i++) {
            x[i] = (float) (rng.nextDouble() * 2 - 1);
        }
        return x;
    }

    static String form(boolean ta, boolean tb) {
        return (ta ? "T" : "N") + (tb ? "T" : "N");
    }

    @ParameterizedTest(name = "{0} {1}/{2}")
    @MethodSource("backendsAndForms")
    void matchesDoubleReferenceWithStridesAlphaBeta(String name, boolean ta, boolean tb) {
        Backend backend = backend(name);
        long seed = 17;
        for (int[] s : SHAPES) {
            float alpha = seed % 2 == 0 ? 1f : -0.75f;
            float beta = seed % 3 == 0 ? 0.5f : 0f;
            Problem p = new Problem(seed++, ta, tb, s[0], s[1], s[2], alpha, beta, 3, DType.F32);
            p.check(p.run(backend), name + " " + form(ta, tb) + " " + s[0] + "x" + s[1] + "x" + s[2]);
        }
    }

    @ParameterizedTest(name = "{0} {1}/{2}")
    @MethodSource("backendsAndForms")
    void halfPrecisionAndBufferB(String name, boolean ta, boolean tb) {
        Backend backend = backend(name);
        for (DType type : new DType[] {DType.BF16, DType.F16}) {
            Problem p = new Problem(type.ordinal(), ta, tb, 31, 207, 207, 1.5f, 1f, 1, type);
            p.check(p.run(backend), name + " " + form(ta, tb) + " B " + type);
        }
        Problem tall = new Problem(5, ta, tb, 207, 31, 702, 1f, 0f, 0, DType.BF16);
        tall.check(tall.run(backend), name + " " + form(ta, tb) + " 207x31x702 B BF16");
        Problem mapped = new Problem(6, ta, tb, 31, 207, 207, 1f, 0f, 1, DType.F32, false);
        mapped.check(mapped.run(backend), name + " " + form(ta, tb) + " B F32 in a BufferStorage");
    }

    /** Every BF16 and F16 bit pattern goes through the widening of B exactly (C = 1 x B). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void widensEveryHalfPrecisionBitPattern(String name) {
        Backend backend = backend(name);
        for (DType type : new DType[] {DType.BF16, DType.F16}) {
            java.nio.ByteBuffer bytes = java.nio.ByteBuffer.allocate(2 * 65536).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int bits = 0; bits < 65536; bits++) {
                bytes.putShort((short) bits);
            }
            bytes.flip();
            BufferStorage b = new BufferStorage(bytes, type);
            for (boolean tb : new boolean[] {false, true}) {
                float[] c = new float[65536];
                backend.gemm(false, tb, 1, 65536, 1, 1f, new FloatStorage(new float[] {1f}), 0, 1, b, 0, tb ? 1 : 65536,
                        0f, new FloatStorage(c), 0, 65536);
                for (int bits = 0; bits < 65536; bits++) {
                    float expected = type == DType.BF16 ? DType.bf16ToFloat((short) bits) : DType.f16ToFloat((short) bits);
                    if (!(c[bits] == expected || Float.isNaN(c[bits]) && Float.isNaN(expected))) {
                        fail(name + " " + type + " bits 0x" + Integer.toHexString(bits) + ": " + c[bits] + " != " + expected);
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void betaZeroIgnoresNaNInC(String name) {
        Backend backend = backend(name);
        Problem p = new Problem(3, false, true, 31, 207, 31, 1f, 0f, 2, DType.F32);
        for (int i = 0; i < p.m; i++) {
            for (int j = 0; j < p.n; j++) {
                p.c0[p.cOff + i * p.ldc + j] = j % 2 == 0 ? Float.NaN : Float.POSITIVE_INFINITY;
            }
        }
        p.check(p.run(backend), name + " beta=0 over NaN");
        Problem empty = new Problem(4, false, false, 7, 7, 0, 1f, 0f, 0, DType.F32);
        empty.c0[0] = Float.NaN;
        float[] c = empty.run(backend);
        for (int i = 0; i < 7; i++) {
            for (int j = 0; j < 7; j++) {
                assertEquals(0f, c[empty.cOff + i * 7 + j], "k = 0 with beta = 0 zeroes C");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void deterministicAndIndependentOfHowCIsSplit(String name) {
        Backend backend = backend(name);
        Problem p = new Problem(11, false, true, 207, 702, 702, 0.7f, 0.3f, 0, DType.BF16);
        float[] first = p.run(backend);
        assertArrayEquals(first, p.run(backend), "two runs must be bit-identical");
        // the same product as two calls over column ranges and row ranges: every element must
        // come out bit-identical, whatever tile or thread it landed in
        float[] split = p.c0.clone();
        FloatStorage a = new FloatStorage(p.a);
        FloatStorage c = new FloatStorage(split);
        int cut = 101;
        backend.gemm(false, true, p.m, cut, p.k, p.alpha, a, p.aOff, p.lda, p.bStorage, p.bOff, p.ldb, p.beta, c,
                p.cOff, p.ldc);
        backend.gemm(false, true, 13, p.n - cut, p.k, p.alpha, a, p.aOff, p.lda, p.bStorage,
                p.bOff + (long) cut * p.ldb, p.ldb, p.beta, c, p.cOff + cut, p.ldc);
        backend.gemm(false, true, p.m - 13, p.n - cut, p.k, p.alpha, a, p.aOff + 13 * p.lda, p.lda, p.bStorage,
                p.bOff + (long) cut * p.ldb, p.ldb, p.beta, c, p.cOff + 13 * p.ldc + cut, p.ldc);
        assertArrayEquals(first, split, "splitting C must not change any bit");
    }

    /**
     * The four transpose forms over explicitly transposed copies are the same product, and every
     * path (packed, or rows of B streamed for x·Wᵀ) sums in the same order: results must agree bit
     * for bit. Shapes cover both the tall (m > k) and the deep (k >= m) case.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void transposeFormsAgreeBitForBit(String name) {
        Backend backend = backend(name);
        SplittableRandom rng = new SplittableRandom(29);
        for (int[] s : new int[][] {{45, 70, 600}, {207, 37, 31}, {5, 9, 1100}}) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            float[] a = random(rng, m * k);
            float[] b = random(rng, k * n);
            float[] aT = transpose(a, m, k);
            float[] bT = transpose(b, k, n);
            float[] reference = null;
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    float[] c = new float[m * n];
                    backend.gemm(ta, tb, m, n, k, 0.3f, new FloatStorage(ta ? aT : a), 0, ta ? m : k,
                            new FloatStorage(tb ? bT : b), 0, tb ? k : n, 0f, new FloatStorage(c), 0, n);
                    if (reference == null) {
                        reference = c;
                    } else {
                        assertArrayEquals(reference, c, name + " " + form(ta, tb) + " vs NN, " + m + "x" + n + "x" + k);
                    }
                }
            }
        }
    }

    static float[] transpose(float[] x, int rows, int cols) {
        float[] t = new float[x.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        return t;
    }

    @Test
    void vectorAgreesWithScalar() {
        Backend vector = backend("vector");
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                Problem p = new Problem(23, ta, tb, 207, 207, 702, 1f, 1f, 1, DType.F32);
                float[] s = p.run(Backends.scalar());
                float[] v = p.run(vector);
                for (int i = 0; i < s.length; i++) {
                    assertEquals(s[i], v[i], 2e-5f * Math.max(1f, Math.abs(s[i])), "element " + i + " " + form(ta, tb));
                }
            }
        }
    }

    @Test
    void backendsHaveTheirNames() {
        assertEquals("scalar", Backends.scalar().name());
        Backends.vector().ifPresent(v -> assertEquals("vector", v.name()));
    }

    static Stream<String> backendNames() {
        return Stream.of("scalar", "vector");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void rejectsBadArguments(String name) {
        Backend backend = backend(name);
        FloatStorage a = new FloatStorage(24);
        FloatStorage b = new FloatStorage(40);
        FloatStorage c = new FloatStorage(15);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 3, 5, 8, 1f, a, 0, 7, b, 0, 5, 0f, c, 0, 5));
        assertEquals("gemm: lda (7) must be >= k (8) for A stored [m, k] = [3, 8]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(true, false, 3, 5, 8, 1f, a, 0, 2, b, 0, 5, 0f, c, 0, 5));
        assertEquals("gemm: lda (2) must be >= m (3) for A (transposed) stored [k, m] = [8, 3]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, true, 3, 5, 8, 1f, a, 0, 8, b, 0, 7, 0f, c, 0, 5));
        assertEquals("gemm: ldb (7) must be >= k (8) for B (transposed) stored [n, k] = [5, 8]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 3, 5, 8, 1f, a, 1, 8, b, 0, 5, 0f, c, 0, 5));
        assertTrue(e.getMessage().contains("A stored [3, 8] with row stride 8 from offset 1 needs 25 elements but its"
                + " storage holds 24"), e.getMessage());
        Storage half = BufferStorage.of(new float[24], DType.BF16);
        e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 3, 5, 8, 1f, half, 0, 8, b, 0, 5, 0f, c, 0, 5));
        assertTrue(e.getMessage().startsWith("gemm: A must be heap F32 (FloatStorage)"), e.getMessage());
        assertTrue(e.getMessage().contains("BufferStorage of BF16"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> backend.gemm(false, false, 3, 5, -1, 1f, a, 0, 8, b, 0, 5, 0f, c, 0, 5));
        assertEquals("gemm: k (-1) must be >= 0", e.getMessage());
    }
}
