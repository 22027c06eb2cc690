package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;

/** Comparison of kernel outputs with the CPU reference: |got − want| ≤ atol + rtol·|want| per element. */
final class Compare {
    private Compare() {
    }

    /** Asserts closeness, prints the max error to stdout, returns it; the message lists the first mismatches. */
    static double close(double slack, String what, float[] want, float[] got, double atol, double rtol) {
        return close(what, want, got, atol + slack, rtol + slack);
    }

    static double close(String what, float[] want, float[] got, double atol, double rtol) {
        assertEquals(want.length, got.length, what + ": length");
        double max = 0;
        StringBuilder bad = new StringBuilder();
        int mismatches = 0;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs((double) got[i] - want[i]);
            if (!(err <= atol + rtol * Math.abs(want[i]))) {
                if (mismatches++ < 5) {
                    bad.append("\n  [").append(i).append("] want ").append(want[i]).append(" got ").append(got[i]);
                }
            }
            if (err > max || Double.isNaN(err)) {
                max = Double.isNaN(err) ? Double.NaN : err;
            }
        }
        System.out.printf("kernel %-42s max |err| = %.3g over %d values%n", what, max, want.length);
        if (mismatches > 0) {
            fail(what + ": " + mismatches + " of " + want.length + " values differ by more than " + atol + " + " + rtol
                    + "·|want| (max error " + max + "); first:" + bad);
        }
        return max;
    }

    static float[] uniform(SplittableRandom rng, int n, float scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((rng.nextDouble() * 2 - 1) * scale);
        }
        return x;
    }

    static float[] bf16Round(float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = HostDevice.bf16Round(x[i]);
        }
        return out;
    }
}
