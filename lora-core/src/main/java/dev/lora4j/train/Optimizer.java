package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.util.List;

/** Updates trainable tensors from their accumulated gradients, then the caller clears them. */
public interface Optimizer {

    /** One update of every parameter that has a gradient, at the current learning rate. */
    void step();

    /** Drops every parameter's gradient (the next backward starts from zero). */
    default void zeroGrad() {
        for (Tensor p : parameters()) {
            p.zeroGrad();
        }
    }

    List<Tensor> parameters();

    double learningRate();

    void setLearningRate(double lr);

    /** Number of {@link #step()} calls so far. */
    long stepCount();

    /** Bytes of optimizer state (moment buffers), for memory reports. */
    long stateBytes();
}
