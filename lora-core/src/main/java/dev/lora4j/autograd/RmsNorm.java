package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * RMSNorm over the last dimension (Zhang and Sennrich 2019, as Llama uses it):
 * y = x · r · w with r = 1/sqrt(mean(x²) + eps).
 * Backward, per row with g = dy ⊙ w: dx = r·g − x·r³·mean(g ⊙ x), dw += Σ_rows dy ⊙ x · r.
 * Forward saves x and the per-row r.
 */
public final class RmsNorm {
    private RmsNorm() {
    }

    public static Tensor apply(Tensor x, Tensor weight, float eps) {
        int c = x.dim(-1);
        if (weight.rank() != 1 || weight.dim(0) != c) {
            throw new IllegalArgumentException("rmsNorm: weight must be [" + c + "] for x " + Arrays.toString(x.shape())
                    + ", got " + Arrays.toString(weight.shape()));
        }
        Backend be = Backends.get();
        float[] xs = x.contiguous().toFloatArray();
        float[] w = weight.toFloatArray();
        int rows = xs.length / c;
        float[] y = new float[xs.length];
        float[] rstd = new float[rows];
        Parallel.forRange(rows, 16, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int o = r * c;
                float inv = (float) (1.0 / Math.sqrt(be.sumOfSquares(xs, o, c) / c + eps));
                rstd[r] = inv;
                for (int i = 0; i < c; i++) {
                    y[o + i] = xs[o + i] * inv * w[i];
                }
            }
        });
        return Autograd.record(Tensor.of(y, x.shape()), "rmsNorm", new Tensor[] {x, weight}, dOut -> {
            float[] dy = dOut.data();
            if (x.requiresGrad()) {
                float[] dx = x.gradBuffer().data();
                Parallel.forRange(rows, 16, (r0, r1) -> {
                    for (int r = r0; r < r1; r++) {
                        int o = r * c;
                        float inv = rstd[r];
                        double gx = 0;
                        for (int i = 0; i < c; i++) {
                            gx += (double) dy[o + i] * w[i] * xs[o + i];
                        }
                        float k = (float) (gx / c) * inv * inv * inv;
                        for (int i = 0; i < c; i++) {
                            dx[o + i] += dy[o + i] * w[i] * inv - xs[o + i] * k;
                        }
                    }
                });
            }
            if (weight.requiresGrad()) {
                float[] dw = weight.gradBuffer().data();
                for (int r = 0; r < rows; r++) {
                    int o = r * c;
                    for (int i = 0; i < c; i++) {
                        dw[i] += dy[o + i] * xs[o + i] * rstd[r];
                    }
                }
            }
        });
    }
}
