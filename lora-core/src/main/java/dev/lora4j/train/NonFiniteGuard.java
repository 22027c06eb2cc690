package dev.lora4j.train;

import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The checks behind {@link OnNonFinite}: one step's losses and, once all its micro-batches are
 * back-propagated and before clipping or the optimizer, its gradients. Kept apart from the
 * training loop, which only calls {@link #loss}, {@link #gradients} and {@link #handle}.
 */
final class NonFiniteGuard {
    private static final Logger LOG = LoggerFactory.getLogger(NonFiniteGuard.class);

    /** What was found: the tensor and a sentence for the message. */
    record Problem(String tensor, String description) {
    }

    private final OnNonFinite policy;
    private final Path checkpointDir;
    private long skipped;

    NonFiniteGuard(OnNonFinite policy, Path checkpointDir) {
        this.policy = policy;
        this.checkpointDir = checkpointDir;
    }

    /** The loss of one micro-batch, or null when finite. */
    static Problem loss(float value, long step, int micro) {
        if (Float.isFinite(value)) {
            return null;
        }
        String hint = Float.isNaN(value) ? "; a micro-batch with every label masked gives NaN: check the prompt masking and"
                + " max length; otherwise lower the learning rate or set maxGradNorm" : "; lower the learning rate or set maxGradNorm";
        return new Problem("loss", "loss is " + value + " at step " + step + " (micro-batch " + micro + ")" + hint);
    }

    /** The first trainable tensor whose gradient holds a NaN or infinity, or null. */
    static Problem gradients(List<Tensor> parameters, Supplier<List<String>> names, long step) {
        for (int i = 0; i < parameters.size(); i++) {
            Tensor grad = parameters.get(i).grad();
            if (grad == null) {
                continue;
            }
            float[] g = grad.toFloatArray();
            for (int k = 0; k < g.length; k++) {
                if (!Float.isFinite(g[k])) {
                    String name = nameOf(names, parameters.get(i), i);
                    return new Problem(name, "the gradient of " + name + " is " + g[k] + " at element " + k
                            + " at step " + step + " (the loss was finite); lower the learning rate or set maxGradNorm");
                }
            }
        }
        return null;
    }

    private static String nameOf(Supplier<List<String>> names, Tensor parameter, int index) {
        try {
            return names.get().get(index);
        } catch (IllegalStateException unnamed) {
            return parameter.name() != null ? parameter.name() : "trainable tensor #" + index;
        }
    }

    /**
     * Applies the policy: throws for STOP, logs and returns for SKIP (the caller then discards
     * the gradients instead of stepping).
     */
    void handle(Problem problem, long step) {
        if (policy == OnNonFinite.STOP) {
            throw new NonFiniteException("training stopped: " + problem.description() + "; " + checkpointNote()
                    + " (Trainer.builder().onNonFinite(OnNonFinite.SKIP) skips such steps instead)", step, problem.tensor());
        }
        skipped++;
        LOG.warn("skipping the update of step {}: {} (onNonFinite SKIP; {} steps skipped so far)", step,
                problem.description(), skipped);
    }

    /** Steps skipped so far. */
    long skipped() {
        return skipped;
    }

    private String checkpointNote() {
        if (checkpointDir == null) {
            return "no checkpoint was being written (no checkpointDir)";
        }
        Optional<Path> latest = TrainingCheckpoints.latest(checkpointDir);
        return latest.map(p -> "the last good checkpoint " + p + " is intact; resume from it with a lower learning rate")
                .orElse("no checkpoint had been saved yet in " + checkpointDir);
    }
}
