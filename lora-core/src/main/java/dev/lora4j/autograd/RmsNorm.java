package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * RMSNorm over the last dimension (Zhang and Sennrich 2019, as Llama uses it):
 * y = x · r · w with r = 1/sqrt(mean(x²) + eps); Gemma's form y = x · r · (1 + w) with a weight
 * offset of 1 (added inside the kernel, so it reads w as it is now, trained or frozen).
 * Backward, per row with g = dy ⊙ w: dx = r·g − x·r³·mean(g ⊙ x), dw += Σ_rows dy ⊙ x · r.
 * Forward saves x and the per-row r.
 */
public final class RmsNorm {
    private RmsNorm() {
    }

    public static Tensor apply(Tensor x, Tensor weight, float eps) {
        return apply(x, weight, 0f, eps);
    }

    /** RMSNorm with the weight read as w + weightOffset (0 for Llama, 1 for Gemma). */
    public static Tensor apply(Tensor x, Tensor weight, float weightOffset, float eps) {
        int c = x.dim(-1);
        if (weight.rank() != 1 || weight.dim(0) != c) {
            throw new IllegalArgumentException("rmsNorm: weight must be [" + c + "] for x " + Arrays.toString(x.shape())
                    + ", got " + Arrays.toString(weight.shape()));
        }
        Backend be = Autograd.backendFor("rmsNorm", x, weight);
        Tensor xs = x.contiguous().detach();
        int rows = Math.toIntExact(x.numel() / c);
        Tensor y = be.empty(x.shape());
        Tensor rstd = be.empty(rows);
        be.rmsNorm(y, rstd, xs, weight, weightOffset, eps);
        return Autograd.record(y, "rmsNorm", new Tensor[] {x, weight}, dOut -> be.rmsNormBackward(
                x.requiresGrad() ? x.gradBuffer() : null, weight.requiresGrad() ? weight.gradBuffer() : null, dOut, xs,
                weight, weightOffset, rstd));
    }
}
