package dev.lora4j.nn;

import dev.lora4j.autograd.MatMul;
import dev.lora4j.tensor.Tensor;

/**
 * y = x·Wᵀ + b with W stored [out, in] (torch.nn.Linear). The weight is frozen unless marked
 * trainable; it may live in any storage (BF16, memory-mapped, 4-bit). {@code name} is the
 * Hugging Face module path ("model.layers.0.self_attn.q_proj"), which LoRA targeting and adapter
 * files use.
 */
public class Linear {
    private final String name;
    private Tensor weight;
    private final Tensor bias;

    public Linear(String name, Tensor weight, Tensor bias) {
        if (weight.rank() != 2) {
            throw new IllegalArgumentException(name + ": weight must be [out, in], got rank " + weight.rank());
        }
        this.name = name;
        this.weight = weight;
        this.bias = bias;
    }

    public Tensor forward(Tensor x) {
        return MatMul.linear(x, weight, bias);
    }

    public String name() {
        return name;
    }

    public Tensor weight() {
        return weight;
    }

    /** Replaces the weight tensor (same shape); used by merge and quantization. */
    public void setWeight(Tensor newWeight) {
        if (newWeight.dim(0) != weight.dim(0) || newWeight.dim(1) != weight.dim(1)) {
            throw new IllegalArgumentException(name + ": new weight " + newWeight + " does not match " + weight);
        }
        this.weight = newWeight;
    }

    public Tensor bias() {
        return bias;
    }

    public int inFeatures() {
        return weight.dim(1);
    }

    public int outFeatures() {
        return weight.dim(0);
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(" + name + ", in=" + inFeatures() + ", out=" + outFeatures() + ", "
                + weight.dtype() + (bias != null ? ", bias" : "") + ")";
    }
}
