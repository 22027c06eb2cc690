package dev.lora4j.train;

/**
 * What {@link Trainer} does when a step's loss or a gradient is NaN or infinite (see
 * {@link Trainer.Builder#onNonFinite}).
 */
public enum OnNonFinite {
    /**
     * Stop the run with a {@link NonFiniteException} naming the step and the tensor, before the
     * optimizer touches the weights and before any checkpoint of that step is written: the last
     * checkpoint saved stays the last good one. The default.
     */
    STOP,
    /**
     * Skip the optimizer update of that step (weights and optimizer state unchanged, gradients
     * discarded), log a warning and go on; the step still counts, consumes its examples and
     * records its non-finite loss.
     */
    SKIP
}
