package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * LayerNorm over the last dimension with an optional bias (torch.nn.LayerNorm, as phi-1.5 and
 * Falcon use it): y = (x − μ)·r·w + b with μ the row mean and r = 1/sqrt(var(x) + eps), var the
 * biased (population) variance. Forward saves x, μ and r per row.
 * Backward, per row with x̂ = (x − μ)·r and g = dy ⊙ w:
 * dx += r·(g − mean(g) − x̂·mean(g ⊙ x̂)), dw += Σ_rows dy ⊙ x̂, db += Σ_rows dy
 * ({@link Backend#layerNorm}, {@link Backend#layerNormBackward}).
 */
public final class LayerNorm {
    private LayerNorm() {
    }

    /** LayerNorm of x [..., C] with weight [C] and bias [C] (bias may be null). */
    public static Tensor apply(Tensor x, Tensor weight, Tensor bias, float eps) {
        int c = x.dim(-1);
        if (weight.rank() != 1 || weight.dim(0) != c || (bias != null && (bias.rank() != 1 || bias.dim(0) != c))) {
            throw new IllegalArgumentException("layerNorm: weight and bias must be [" + c + "] for x " + Arrays.toString(x.shape())
                    + ", got " + Arrays.toString(weight.shape()) + (bias == null ? "" : " and " + Arrays.toString(bias.shape())));
        }
        Backend be = Autograd.backendFor("layerNorm", x, weight, bias);
        Tensor xs = x.contiguous().detach();
        int rows = Math.toIntExact(x.numel() / c);
        Tensor y = be.empty(x.shape());
        Tensor mean = be.empty(rows);
        Tensor rstd = be.empty(rows);
        be.layerNorm(y, mean, rstd, xs, weight, bias, eps);
        return Autograd.record(y, "layerNorm", new Tensor[] {x, weight, bias}, dOut -> be.layerNormBackward(
                x.requiresGrad() ? x.gradBuffer() : null, weight.requiresGrad() ? weight.gradBuffer() : null,
                bias != null && bias.requiresGrad() ? bias.gradBuffer() : null, dOut, xs, weight, mean, rstd));
    }
}
