package dev.lora4j.spark;

import java.io.Serializable;
import java.util.Arrays;
import java.util.Locale;

/**
 * What a Spark run did, as rank 0 reports it (every worker reports the same loss curve; the
 * driver checks that).
 *
 * @param workers      number of workers (barrier tasks)
 * @param examples     training examples after tokenization, in the Dataset's order
 * @param steps        optimizer steps done, counted from the start of the run (a resumed run counts the earlier ones)
 * @param totalSteps   steps of the whole run
 * @param lossPerStep  mean loss over each global batch, steps 1 to {@code steps}
 * @param tokensSeen   tokens trained on, summed over the workers (including before a resume)
 * @param seconds      training time (including before a resume)
 * @param stepSeconds  wall time of each step this run did (not of steps restored from a checkpoint)
 * @param adapterDir   the PEFT folder rank 0 saved when the run completed, else null
 */
public record SparkTrainingResult(int workers, int examples, long steps, long totalSteps, double[] lossPerStep,
                                  long tokensSeen, double seconds, double[] stepSeconds, String adapterDir)
        implements Serializable {
    private static final long serialVersionUID = 1L;

    /** False when {@code stopAfterSteps} ended the run early; a re-run with {@code resume(true)} continues it. */
    public boolean completed() {
        return steps == totalSteps;
    }

    /** The loss of the last step, NaN when no step ran. */
    public double finalLoss() {
        return lossPerStep.length == 0 ? Double.NaN : lossPerStep[lossPerStep.length - 1];
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "SparkTrainingResult(workers=%d, examples=%d, steps=%d/%d, finalLoss=%.6f, "
                + "tokensSeen=%d, seconds=%.1f, adapterDir=%s)", workers, examples, steps, totalSteps, finalLoss(),
                tokensSeen, seconds, adapterDir);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SparkTrainingResult r && workers == r.workers && examples == r.examples && steps == r.steps
                && totalSteps == r.totalSteps && Arrays.equals(lossPerStep, r.lossPerStep) && tokensSeen == r.tokensSeen
                && Double.compare(seconds, r.seconds) == 0 && Arrays.equals(stepSeconds, r.stepSeconds)
                && java.util.Objects.equals(adapterDir, r.adapterDir);
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(workers, examples, steps, totalSteps, Arrays.hashCode(lossPerStep), tokensSeen);
    }
}
