package dev.lora4j.train;

/**
 * A training step produced a NaN or infinite loss or gradient and the trainer was set to
 * {@link OnNonFinite#STOP}. The message names the step, the tensor (the loss of a micro-batch or
 * the first trainable tensor whose gradient is not finite) and the newest checkpoint left intact.
 */
public final class NonFiniteException extends IllegalStateException {
    private static final long serialVersionUID = 1L;
    private final long step;
    private final String tensor;

    NonFiniteException(String message, long step, String tensor) {
        super(message);
        this.step = step;
        this.tensor = tensor;
    }

    /** The optimizer step (counted from 0) whose loss or gradient was not finite. */
    public long step() {
        return step;
    }

    /** "loss" or the name of the trainable tensor whose gradient was not finite. */
    public String tensor() {
        return tensor;
    }
}
