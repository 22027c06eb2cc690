package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * LayerNorm over the last dimension with an optional bias (torch.nn.LayerNorm, as phi-1.5 and
 * Falcon use it): y = (x − μ)·r·w + b with μ the row mean and r = 1/sqrt(var(x) + eps), var the
 * biased (population) variance. Forward saves x, μ and r per row.
 * Backward, per row with x̂ = (x − μ)·r and g = dy ⊙ w:
 * dx += r·(g − mean(g) − x̂·mean(g ⊙ x̂)), dw += Σ_rows dy ⊙ x̂, db += Σ_rows dy.
 *
 * <p>The kernels work on flat arrays with explicit offsets and sizes, outputs first, and allocate
 * nothing, so that a compute backend can take them over unchanged; {@link #apply} is the autograd
 * wrapper.
 */
public final class LayerNorm {
    private LayerNorm() {
    }

    /**
     * y[yOff + r·c + i] = (x − μᵣ)·rᵣ·w[i] + b[i] for rows r in [0, rows); also writes μᵣ and rᵣ
     * to {@code mean} and {@code rstd} at {@code statOff + r}. {@code b} may be null (no bias).
     */
    public static void forward(float[] y, int yOff, float[] mean, float[] rstd, int statOff, float[] x, int xOff,
                               float[] w, float[] b, int rows, int c, float eps) {
        for (int r = 0; r < rows; r++) {
            int xo = xOff + r * c;
            int yo = yOff + r * c;
            double s = 0;
            for (int i = 0; i < c; i++) {
                s += x[xo + i];
            }
            double mu = s / c;
            double v = 0;
            for (int i = 0; i < c; i++) {
                double dev = x[xo + i] - mu;
                v += dev * dev;
            }
            double inv = 1.0 / Math.sqrt(v / c + eps);
            mean[statOff + r] = (float) mu;
            rstd[statOff + r] = (float) inv;
            for (int i = 0; i < c; i++) {
                double xhat = (x[xo + i] - mu) * inv;
                y[yo + i] = (float) (xhat * w[i] + (b == null ? 0 : b[i]));
            }
        }
    }

    /**
     * Accumulates the gradients of {@link #forward}: dx (at dxOff), dw and db (each may be null when
     * not needed) from dy (at dyOff), the saved x (at xOff), w and the saved statistics.
     */
    public static void backward(float[] dx, int dxOff, float[] dw, float[] db, float[] dy, int dyOff, float[] x, int xOff,
                                float[] w, float[] mean, float[] rstd, int statOff, int rows, int c) {
        for (int r = 0; r < rows; r++) {
            int xo = xOff + r * c;
            int go = dyOff + r * c;
            double mu = mean[statOff + r];
            double inv = rstd[statOff + r];
            double sumG = 0;
            double sumGx = 0;
            for (int i = 0; i < c; i++) {
                double xhat = (x[xo + i] - mu) * inv;
                double g = (double) dy[go + i] * w[i];
                sumG += g;
                sumGx += g * xhat;
                if (dw != null) {
                    dw[i] += (float) (dy[go + i] * xhat);
                }
                if (db != null) {
                    db[i] += dy[go + i];
                }
            }
            if (dx != null) {
                double meanG = sumG / c;
                double meanGx = sumGx / c;
                int o = dxOff + r * c;
                for (int i = 0; i < c; i++) {
                    double xhat = (x[xo + i] - mu) * inv;
                    dx[o + i] += (float) (inv * ((double) dy[go + i] * w[i] - meanG - xhat * meanGx));
                }
            }
        }
    }

    /** LayerNorm of x [..., C] with weight [C] and bias [C] (bias may be null). */
    public static Tensor apply(Tensor x, Tensor weight, Tensor bias, float eps) {
        int c = x.dim(-1);
        if (weight.rank() != 1 || weight.dim(0) != c || (bias != null && (bias.rank() != 1 || bias.dim(0) != c))) {
            throw new IllegalArgumentException("layerNorm: weight and bias must be [" + c + "] for x " + Arrays.toString(x.shape())
                    + ", got " + Arrays.toString(weight.shape()) + (bias == null ? "" : " and " + Arrays.toString(bias.shape())));
        }
        float[] xs = x.contiguous().toFloatArray();
        float[] w = weight.toFloatArray();
        float[] b = bias == null ? null : bias.toFloatArray();
        int rows = xs.length / c;
        float[] y = new float[xs.length];
        float[] mean = new float[rows];
        float[] rstd = new float[rows];
        forward(y, 0, mean, rstd, 0, xs, 0, w, b, rows, c, eps);
        return Autograd.record(Tensor.of(y, x.shape()), "layerNorm", new Tensor[] {x, weight, bias}, dOut -> {
            float[] dx = x.requiresGrad() ? x.gradBuffer().data() : null;
            float[] dw = weight.requiresGrad() ? weight.gradBuffer().data() : null;
            float[] db = bias != null && bias.requiresGrad() ? bias.gradBuffer().data() : null;
            backward(dx, 0, dw, db, dOut.data(), dOut.intOffset(), xs, 0, w, mean, rstd, 0, rows, c);
        });
    }
}
