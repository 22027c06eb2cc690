package dev.lora4j.train;

/**
 * Learning rate as a function of the optimizer step (0-based). {@link #warmupCosine} is the
 * schedule of LitGPT's LoRA recipes: linear warmup, then half-cycle cosine decay.
 */
@FunctionalInterface
public interface LearningRateSchedule {

    double at(long step);

    static LearningRateSchedule constant(double lr) {
        Checks.positive("lr", lr, "3e-4");
        return step -> lr;
    }

    /**
     * lr(s) = peak·(s+1)/warmup for s &lt; warmup; afterwards
     * min + (peak − min)·½(1 + cos(π·(s − warmup)/(total − warmup))), reaching min at s = total.
     */
    static LearningRateSchedule warmupCosine(double peak, long warmupSteps, long totalSteps, double min) {
        Checks.positive("lr", peak, "3e-4");
        Checks.nonNegative("warmupSteps", warmupSteps);
        Checks.atLeast("totalSteps", totalSteps, 1);
        Checks.nonNegative("minLr", min);
        if (min > peak) {
            throw new IllegalArgumentException("minLr (" + min + ") must not exceed lr (" + peak + ")");
        }
        long warm = Math.min(warmupSteps, totalSteps);
        return step -> {
            if (step < warm) {
                return peak * (step + 1) / warm;
            }
            long decaySteps = Math.max(1, totalSteps - warm);
            double progress = Math.min(1.0, (double) (step - warm) / decaySteps);
            return min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
        };
    }
}
