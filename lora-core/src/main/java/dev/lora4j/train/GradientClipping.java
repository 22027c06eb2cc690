package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.util.List;

/** Clipping by global norm, as torch.nn.utils.clip_grad_norm_. */
public final class GradientClipping {
    private GradientClipping() {
    }

    /** √(Σ over all parameters of Σ g²). */
    public static double globalNorm(List<Tensor> params) {
        double sum = 0;
        for (Tensor p : params) {
            if (p.grad() != null) {
                Tensor g = p.grad().contiguous();
                sum += g.backend().sumOfSquares(g);
            }
        }
        return Math.sqrt(sum);
    }

    /**
     * Scales every gradient by min(1, maxNorm / (norm + 1e-6)). Returns the norm before clipping.
     */
    public static double clip(List<Tensor> params, double maxNorm) {
        Checks.positive("maxNorm", maxNorm, "1.0");
        double norm = globalNorm(params);
        double coef = maxNorm / (norm + 1e-6);
        if (coef < 1) {
            for (Tensor p : params) {
                if (p.grad() != null) {
                    Tensor g = p.grad();
                    g.backend().scale(g, g, (float) coef);
                }
            }
        }
        return norm;
    }
}
