package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class VectorOpsTest {
    private static final int[] LENGTHS = {0, 1, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 4099};

    static Stream<String> backendNames() {
        return Stream.of("scalar", "vector");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void dotAtAwkwardLengthsAndOffsets(String name) {
        Backend backend = GemmTest.backend(name);
        SplittableRandom rng = new SplittableRandom(1);
        for (int n : LENGTHS) {
            float[] x = GemmTest.random(rng, n + 5);
            float[] y = GemmTest.random(rng, n + 9);
            double expected = 0;
            double magnitude = 0;
            for (int i = 0; i < n; i++) {
                expected += (double) x[3 + i] * y[7 + i];
                magnitude += Math.abs((double) x[3 + i] * y[7 + i]);
            }
            float got = backend.dot(x, 3, y, 7, n);
            assertEquals(expected, got, (n + 2) * 0x1p-23 * magnitude, name + " dot n=" + n);
            assertEquals(Float.floatToRawIntBits(got), Float.floatToRawIntBits(backend.dot(x, 3, y, 7, n)));
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void axpyAtAwkwardLengths(String name) {
        Backend backend = GemmTest.backend(name);
        SplittableRandom rng = new SplittableRandom(2);
        for (int n : LENGTHS) {
            float[] x = GemmTest.random(rng, n + 2);
            float[] y = GemmTest.random(rng, n + 4);
            float[] before = y.clone();
            backend.axpy(-1.25f, x, 2, y, 1, n);
            for (int i = 0; i < y.length; i++) {
                boolean inside = i >= 1 && i < 1 + n;
                double expected = inside ? before[i] - 1.25 * x[i + 1] : before[i];
                assertEquals(expected, y[i], inside ? 1e-6 : 0, name + " axpy n=" + n + " at " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void sumOfSquaresAccumulatesInDouble(String name) {
        Backend backend = GemmTest.backend(name);
        SplittableRandom rng = new SplittableRandom(3);
        for (int n : LENGTHS) {
            float[] x = GemmTest.random(rng, n + 1);
            double expected = 0;
            for (int i = 0; i < n; i++) {
                expected += (double) x[1 + i] * x[1 + i];
            }
            assertEquals(expected, backend.sumOfSquares(x, 1, n), 1e-13 * Math.max(1, expected), name + " n=" + n);
        }
        // 2^25 ones: a float accumulator would stall at 2^24
        float[] ones = new float[1 << 25];
        java.util.Arrays.fill(ones, 1f);
        assertEquals(1 << 25, backend.sumOfSquares(ones, 0, ones.length), 0.0);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void expShiftedSumMatchesTheScalarKernelBitForBit(String name) {
        // attention's online-softmax numerators: in place, within the array's other elements
        CpuBackend backend = (CpuBackend) GemmTest.backend(name);
        CpuBackend scalar = (CpuBackend) GemmTest.backend("scalar");
        SplittableRandom rng = new SplittableRandom(4);
        for (int n : LENGTHS) {
            float[] x = GemmTest.random(rng, n + 3);
            for (int i = 0; i < x.length; i++) {
                x[i] *= 30f;
            }
            float[] orig = x.clone();
            float[] want = x.clone();
            float shift = n == 0 ? 0f : x[2];
            float wantSum = scalar.expShiftedSum(want, 2, n, shift);
            float gotSum = backend.expShiftedSum(x, 2, n, shift);
            assertEquals(Float.floatToRawIntBits(wantSum), Float.floatToRawIntBits(gotSum), name + " sum n=" + n);
            for (int i = 0; i < x.length; i++) {
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(x[i]), name + " n=" + n + " at " + i);
                boolean inside = i >= 2 && i < 2 + n;
                double exact = inside ? Math.exp(orig[i] - shift) : orig[i]; // the float difference, as the kernel forms it
                assertEquals(exact, x[i], inside ? 3e-7 * exact + 1e-44 : 0, name + " value n=" + n + " at " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("backendNames")
    void rangesAreChecked(String name) {
        Backend backend = GemmTest.backend(name);
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
                () -> backend.dot(new float[10], 0, new float[10], 5, 6));
        assertTrue(e.getMessage().startsWith("dot: y range [5, 5 + 6) does not fit its array of length 10"),
                e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> backend.axpy(1f, new float[3], -1, new float[3], 0, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> backend.sumOfSquares(new float[3], 0, 4));
    }
}
