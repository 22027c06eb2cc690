package dev.lora4j.lora;

import dev.lora4j.tensor.Tensor;

/**
 * One adapter on one linear layer: A [R, in] and B [out, R], trainable, with
 * scaling = alpha/R (or alpha/√R with rsLoRA) and the dropout applied to the layer input.
 */
public record LoraAdapter(Tensor a, Tensor b, int rank, double alpha, double scaling, float dropout) {
    public LoraAdapter {
        if (a.rank() != 2 || b.rank() != 2 || a.dim(0) != rank || b.dim(1) != rank) {
            throw new IllegalArgumentException("LoRA adapter of rank " + rank + " needs A [" + rank + ", in] and B [out, "
                    + rank + "], got A " + java.util.Arrays.toString(a.shape()) + ", B " + java.util.Arrays.toString(b.shape()));
        }
    }

    /** Trainable parameters: R·(in + out). */
    public long parameterCount() {
        return a.numel() + b.numel();
    }
}
