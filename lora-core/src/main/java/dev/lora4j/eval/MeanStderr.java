package dev.lora4j.eval;

/**
 * The standard error of a mean the way lm-eval reports {@code *_stderr}: sample standard deviation
 * (n − 1 in the denominator) over √n. Undefined (NaN) below two samples.
 */
final class MeanStderr {
    private MeanStderr() {
    }

    static double of(double[] values) {
        int n = values.length;
        if (n < 2) {
            return Double.NaN;
        }
        double mean = 0;
        for (double v : values) {
            mean += v;
        }
        mean /= n;
        double squares = 0;
        for (double v : values) {
            squares += (v - mean) * (v - mean);
        }
        return Math.sqrt(squares / (n - 1)) / Math.sqrt(n);
    }

    static double mean(double[] values) {
        double sum = 0;
        for (double v : values) {
            sum += v;
        }
        return values.length == 0 ? Double.NaN : sum / values.length;
    }
}
