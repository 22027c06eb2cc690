package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;

/**
 * The backward rule of one recorded op: given d(loss)/d(output), accumulate d(loss)/d(input)
 * into {@link Tensor#gradBuffer()} of each input that {@link Tensor#requiresGrad()}.
 */
public interface GradFn {

    /** The op's name, for error messages and graph dumps. */
    String name();

    /** The tensors this op read that may need gradients. */
    Tensor[] inputs();

    void backward(Tensor dOut);
}
