package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
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

    /**
     * Writes the optimizer's state (buffers, per-parameter step counts, its kind and
     * hyper-parameters, {@link #stepCount()}) to a safetensors file, atomically. Buffers are keyed
     * {@code <parameter name>.<buffer>} with torch.optim's buffer names ({@code exp_avg},
     * {@code exp_avg_sq}, {@code step} for AdamW; {@code momentum_buffer} for SGD).
     *
     * @param parameterNames one unique name per {@link #parameters()} entry, in the same order
     */
    void saveState(Path file, List<String> parameterNames) throws IOException;

    /**
     * Restores a state written by {@link #saveState} for parameters with the same names and
     * shapes (the order may differ). Everything is checked before anything changes: the optimizer
     * kind, the hyper-parameters, unknown or missing parameters and shapes each fail with an
     * {@link IllegalArgumentException} that names the file, the entry and both values. The learning
     * rate is not restored: a schedule sets it before every step.
     */
    void loadState(Path file, List<String> parameterNames) throws IOException;
}
