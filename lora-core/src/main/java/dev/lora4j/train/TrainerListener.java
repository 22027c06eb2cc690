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

    /** After the last step, or after the step {@link Trainer.Builder#stopAfterSteps} stopped at. */
    default void onEnd(TrainingResult result) {
    }

    /** After a validation pass ({@link Trainer.Builder#validation}), which follows that step's {@link #onStep}. */
    default void onValidation(ValidationMetrics metrics) {
    }

    /** After a checkpoint folder is complete (renamed into place) for optimizer step {@code step}. */
    default void onCheckpoint(java.nio.file.Path dir, long step) {
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

    /**
     * Loss and perplexity on the validation set after optimizer step {@code step}, as
     * {@link dev.lora4j.eval.LossEvaluator} computes them (mean over {@code tokens} supervised tokens).
     */
    record ValidationMetrics(long step, double loss, double perplexity, long tokens) {
    }

    /**
     * The run so far: {@code steps} optimizer steps done (including those of a resumed
     * checkpoint) out of {@code totalSteps}; {@code lossPerStep} has one entry per step done, and
     * {@code seconds} and {@code tokensSeen} also count the run before a resume.
     */
    record TrainingResult(long steps, double finalLoss, long tokensSeen, double seconds, double[] lossPerStep,
                          long totalSteps) {
        /** False when {@link Trainer.Builder#stopAfterSteps} ended the run before its last step. */
        public boolean completed() {
            return steps == totalSteps;
        }
    }
}
