package dev.lora4j.spark;

import dev.lora4j.train.Trainer;
import java.io.Serializable;

/**
 * The {@link Trainer} settings of a Spark run, applied on every worker to {@code
 * Trainer.builder(model)} exactly as one process would apply them, e.g.
 * {@code b -> b.learningRate(2e-4).globalBatchSize(16).microBatchSize(2).epochs(1)}. Serializable
 * so that Spark ships the lambda to the executors; the worker then sets the gradient reducer,
 * the adapter folders and the checkpoint folder itself (setting them here is refused).
 */
@FunctionalInterface
public interface TrainerSettings extends Serializable {

    /** Applies the settings; may return {@code builder} or nothing else. */
    void configure(Trainer.Builder builder);

    /** Keeps every Trainer default. */
    static TrainerSettings defaults() {
        return b -> {
        };
    }
}
