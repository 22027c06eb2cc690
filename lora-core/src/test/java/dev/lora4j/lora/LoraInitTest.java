package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class LoraInitTest {

    @Test
    void kaimingUniformBoundIsOneOverRootFanIn() {
        // kaiming_uniform_(a=√5): gain √(2/(1+5)) times √(3/fan_in).
        for (int fanIn : new int[] {1, 64, 4096}) {
            double expected = Math.sqrt(2.0 / (1 + 5.0)) * Math.sqrt(3.0 / fanIn);
            assertEquals(expected, LoraInit.kaimingUniformBound(fanIn), 1e-15);
        }
        assertEquals(0.125, LoraInit.kaimingUniformBound(64));
        assertEquals(0.0625, LoraInit.gaussianStd(16));
    }

    @Test
    void kaimingUniformStaysInItsBoundWithUniformMoments() {
        int rank = 16;
        int in = 4096;
        float[] a = LoraInit.KAIMING_UNIFORM.newA(rank, in, new SplittableRandom(1));
        double bound = 1 / Math.sqrt(in);
        double sum = 0;
        double sumSq = 0;
        double max = 0;
        for (float v : a) {
            assertTrue(Math.abs(v) <= bound, "outside ±1/√in: " + v);
            sum += v;
            sumSq += (double) v * v;
            max = Math.max(max, Math.abs(v));
        }
        int n = a.length;
        assertEquals(0.0, sum / n, 0.01 * bound);
        assertEquals(bound * bound / 3, sumSq / n, 0.02 * bound * bound / 3, "variance of U(-b, b) is b²/3");
        assertTrue(max > 0.999 * bound, "draws reach the edge of the range");
    }

    @Test
    void gaussianHasStandardDeviationOneOverRank() {
        int rank = 8;
        float[] a = LoraInit.GAUSSIAN.newA(rank, 8191, new SplittableRandom(2));
        double sum = 0;
        double sumSq = 0;
        double sum4 = 0;
        for (float v : a) {
            sum += v;
            sumSq += (double) v * v;
            sum4 += Math.pow(v, 4);
        }
        int n = a.length;
        double std = 1.0 / rank;
        assertEquals(0.0, sum / n, 0.02 * std);
        assertEquals(std, Math.sqrt(sumSq / n), 0.01 * std);
        assertEquals(3.0, (sum4 / n) / Math.pow(sumSq / n, 2), 0.1, "kurtosis of a normal");
        assertTrue(Float.isFinite(a[n - 1]) && a[n - 1] != 0f, "odd length: the last element is filled too");
    }

    @Test
    void drawsAreDeterministicPerSeed() {
        float[] a1 = LoraInit.KAIMING_UNIFORM.newA(4, 10, new SplittableRandom(5));
        float[] a2 = LoraInit.KAIMING_UNIFORM.newA(4, 10, new SplittableRandom(5));
        float[] a3 = LoraInit.KAIMING_UNIFORM.newA(4, 10, new SplittableRandom(6));
        assertArrayEquals(a1, a2);
        assertFalse(Arrays.equals(a1, a3));
        // The first draw follows SplittableRandom's specified nextDouble: (nextLong() >>> 11) · 2⁻⁵³.
        double u = (new SplittableRandom(5).nextLong() >>> 11) * 0x1.0p-53;
        assertEquals((float) ((2 * u - 1) / Math.sqrt(10)), a1[0]);
    }

    @Test
    void bStartsAtZeroAndShapesAreChecked() {
        float[] b = {1f, 2f, 3f, 4f, 5f, 6f};
        LoraInit.fillB(b, 3, 2);
        assertArrayEquals(new float[6], b);
        assertEquals(12, LoraInit.newB(6, 2).length);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraInit.GAUSSIAN.fillA(new float[5], 2, 3, new SplittableRandom(0)));
        assertEquals("A must have 6 elements for shape [2, 3], was 5; allocate rows × columns floats", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LoraInit.newB(0, 4));
        assertEquals("true", LoraInit.KAIMING_UNIFORM.peftName());
        assertEquals("gaussian", LoraInit.GAUSSIAN.peftName());
    }
}
