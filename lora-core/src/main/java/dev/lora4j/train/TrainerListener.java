package dev.lora4j.train;

/** Callbacks from {@link Trainer#fit}; run on the training thread, keep them quick. */
public interface TrainerListener {

    /** A listener that only handles steps, e.g. {@code onEachStep(m -> log.info("loss {}", m.loss()))}. */
    static TrainerListener onEachStep(java.util.function.Consumer<StepMetrics> action) {
        java.util.Objects.requireNonNull(action, "action");
        return new TrainerListener() {
            @Override
            public void onStep(StepMetrics metrics) {
                action.accept(metrics);
            }
        };
    }

    /** After each optimizer step. */
    default void onStep(StepMetrics metrics) {
    }

    /** After the last step. */
    default void onEnd(TrainingResult result) {
    }

    /**
     * What one optimizer step did. {@code loss} is the mean over its micro-batches;
     * {@code gradNorm} is the global norm before clipping.
     */
    record StepMetrics(long step, long totalSteps, double loss, double learningRate, double gradNorm,
                       long tokensSeen, double tokensPerSecond, double elapsedSeconds) {
        /** Estimated seconds until the last step, from the average step time so far. */
        public double etaSeconds() {
            return step == 0 ? Double.NaN : elapsedSeconds / step * (totalSteps - step);
        }
    }

    record TrainingResult(long steps, double finalLoss, long tokensSeen, double seconds, double[] lossPerStep) {
    }
}
