package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link Exp} against {@link Math#exp}, and its vector twin {@code VectorExp} against it bit for bit. */
class ExpTest {
    private static final int[] LENGTHS = {0, 1, 7, 15, 16, 17, 31, 207, 702, 4096};

    /** Every 1021th float from -110 to 110 (about 2.2 million), the range softmax meets and beyond. */
    static float[] sweep() {
        float[] x = new float[5_000_000];
        int count = 0;
        // magnitudes up to 110 with either sign, every 1021th bit pattern
        for (int bits = 0; bits <= Float.floatToRawIntBits(110f); bits += 1021) {
            float v = Float.intBitsToFloat(bits);
            x[count++] = v;
            x[count++] = -v;
        }
        return java.util.Arrays.copyOf(x, count);
    }

    static final float[] SPECIAL = {Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, 0f, -0f,
        Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE, -1000f, -104f, -103.97f, -103.9f,
        -87.34f, -87.33f, -87.3f, 88.72f, 88.7228f, 88.7229f, 88.73f, 100f, 1e-10f, -1e-10f, 0.5f * (float) Math.log(2),
        -0.5f * (float) Math.log(2), 1f, -1f, 10f, -10f};

    /** Error of {@code got} in units in the last place of the correctly rounded e^x. */
    static double ulps(float x, float got) {
        double exact = Math.exp(x);
        float rounded = (float) exact;
        if (Float.isInfinite(rounded)) {
            return got == Float.POSITIVE_INFINITY || got == Float.MAX_VALUE ? 0 : Double.POSITIVE_INFINITY;
        }
        return Math.abs(got - exact) / Math.ulp(rounded);
    }

    @Test
    void specialValues() {
        assertEquals(0f, Exp.exp(Float.NEGATIVE_INFINITY));
        assertEquals(0f, Exp.exp(-1000f));
        assertEquals(0f, Exp.exp(-Float.MAX_VALUE));
        assertEquals(Float.POSITIVE_INFINITY, Exp.exp(Float.POSITIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, Exp.exp(89f));
        assertTrue(Float.isNaN(Exp.exp(Float.NaN)));
        assertEquals(1f, Exp.exp(0f));
        assertEquals(1f, Exp.exp(-0f));
        assertEquals(Float.MIN_VALUE, Exp.exp(-103.2f), "the smallest subnormal, not 0");
        for (float x : SPECIAL) {
            float got = Exp.exp(x);
            if (Float.isNaN(x)) {
                assertTrue(Float.isNaN(got));
            } else {
                assertTrue(ulps(x, got) <= 2, "exp(" + x + ") = " + got + ", Math.exp gives " + Math.exp(x));
            }
        }
    }

    @Test
    void withinTwoUlpOfMathExpAcrossTheRange() {
        double worst = 0;
        float worstX = 0;
        for (float x : sweep()) {
            double e = ulps(x, Exp.exp(x));
            if (e > worst) {
                worst = e;
                worstX = x;
            }
        }
        SplittableRandom rng = new SplittableRandom(3);
        for (int i = 0; i < 1_000_000; i++) {
            float x = (float) (rng.nextDouble() * 20 - 16); // where softmax terms live
            double e = ulps(x, Exp.exp(x));
            if (e > worst) {
                worst = e;
                worstX = x;
            }
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp at x = " + worstX);
    }

    static Method vector(String name, Class<?>... parameters) {
        assumeTrue(Backends.vector().isPresent(), "jdk.incubator.vector is not enabled; skipping VectorExp");
        try {
            return Class.forName("dev.lora4j.backend.VectorExp").getMethod(name, parameters);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    static Object call(Method m, Object... args) {
        try {
            return m.invoke(null, args);
        } catch (InvocationTargetException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new AssertionError(e.getCause());
        } catch (IllegalAccessException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void vectorTwinIsBitIdentical() {
        Method exp = vector("exp", float[].class, int.class, float[].class, int.class, int.class);
        float[] x = sweep();
        float[] all = new float[x.length + SPECIAL.length];
        System.arraycopy(x, 0, all, 0, x.length);
        System.arraycopy(SPECIAL, 0, all, x.length, SPECIAL.length);
        float[] v = new float[all.length + 3];
        call(exp, all, 0, v, 3, all.length);
        for (int i = 0; i < all.length; i++) {
            float s = Exp.exp(all[i]);
            if (Float.floatToRawIntBits(s) != Float.floatToRawIntBits(v[3 + i])) {
                fail("exp(" + all[i] + "): vector " + v[3 + i] + ", scalar " + s);
            }
        }
        for (int n : LENGTHS) {
            float[] src = GemmTest.random(new SplittableRandom(n), n + 2);
            float[] dst = new float[n + 1];
            call(exp, src, 2, dst, 1, n);
            for (int i = 0; i < n; i++) {
                assertEquals(Exp.exp(src[2 + i]), dst[1 + i], "n = " + n + ", element " + i);
            }
        }
    }

    @Test
    void expShiftSumIsTheSoftmaxNumerator() {
        Method vectorSum = vector("expShiftSum", float[].class, int.class, float.class, float[].class, int.class,
                int.class);
        SplittableRandom rng = new SplittableRandom(5);
        for (int n : LENGTHS) {
            float[] src = new float[n + 1];
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                src[1 + i] = (float) (rng.nextDouble() * 60 - 40);
                max = Math.max(max, src[1 + i]);
            }
            if (n > 3) {
                src[3] = Float.NEGATIVE_INFINITY; // a masked score
            }
            float[] scalar = new float[n];
            float[] vec = new float[n];
            float s = Exp.expShiftSum(src, 1, max, scalar, 0, n);
            float v = (float) call(vectorSum, src, 1, max, vec, 0, n);
            double expected = 0;
            for (int i = 0; i < n; i++) {
                assertEquals(Float.floatToRawIntBits(scalar[i]), Float.floatToRawIntBits(vec[i]), "term " + i);
                assertTrue(ulps(src[1 + i] - max, scalar[i]) <= 2, "term " + i);
                expected += Math.exp((double) src[1 + i] - max);
            }
            if (n > 3) {
                assertEquals(0f, scalar[2], "e^-inf = 0");
            }
            assertEquals(expected, s, 1e-6 * n + 1e-30, "scalar sum, n = " + n);
            assertEquals(expected, v, 1e-6 * n + 1e-30, "vector sum, n = " + n);
            assertTrue(n == 0 || s >= 1f && v >= 1f, "with the maximum as shift the sum is at least 1");
        }
        assertThrows(IndexOutOfBoundsException.class, () -> Exp.expShiftSum(new float[4], 1, 0f, new float[4], 0, 4));
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
                () -> call(vectorSum, new float[4], 0, 0f, new float[3], 1, 4));
        assertTrue(e.getMessage().startsWith("expShiftSum: dst range [1, 1 + 4)"), e.getMessage());
    }
}
