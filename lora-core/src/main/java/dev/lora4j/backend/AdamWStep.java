package dev.lora4j.backend;

/**
 * The scalars of one {@link Backend#adamW} step, as torch.optim.AdamW computes them for the
 * parameter's step count t: decay = 1 − lr·λ, c₁ = 1 − β₁ and c₂ = 1 − β₂ (in double, then
 * rounded), stepSize = lr / (1 − β₁ᵗ), bias2Sqrt = √(1 − β₂ᵗ).
 */
public record AdamWStep(float decay, float beta1, float beta2, float c1, float c2, float stepSize, double bias2Sqrt,
                        double eps) {
}
