package dev.lora4j.cli;

import dev.lora4j.train.Trainer;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Optimization settings of {@code lora4j finetune} ({@code @Mixin TrainOptions train;}), with the
 * defaults of LitGPT's LoRA recipe written out: AdamW, lr 3e-4, weight decay 0.01, 100 warmup
 * steps, global batch 128 of micro-batches of 1, one epoch, gradients clipped to norm 1.
 */
public final class TrainOptions {

    /** The optimizers --optimizer accepts (any case). */
    public enum OptimizerName {
        adamw(Trainer.OptimizerKind.ADAMW),
        sgd(Trainer.OptimizerKind.SGD);

        final Trainer.OptimizerKind kind;

        OptimizerName(Trainer.OptimizerKind kind) {
            this.kind = kind;
        }
    }

    @Spec(Spec.Target.MIXEE)
    private CommandSpec spec;

    @Option(names = {"--lr", "--learning-rate"}, defaultValue = "3e-4", paramLabel = "LR",
            description = "Peak learning rate after warmup; cosine decay to 0 follows (default: ${DEFAULT-VALUE}).")
    double learningRate;

    @Option(names = "--weight-decay", defaultValue = "0.01", paramLabel = "WD",
            description = "Decoupled weight decay (default: ${DEFAULT-VALUE}).")
    double weightDecay;

    @Option(names = "--warmup-steps", defaultValue = "100", paramLabel = "N",
            description = "Optimizer steps of linear learning-rate warmup (default: ${DEFAULT-VALUE}).")
    long warmupSteps;

    @Option(names = "--batch-size", defaultValue = "128", paramLabel = "N",
            description = "Examples per optimizer step (global batch; default: ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--micro-batch-size", defaultValue = "1", paramLabel = "N",
            description = "Examples per forward/backward pass; gradients accumulate up to --batch-size "
                    + "(default: ${DEFAULT-VALUE}).")
    int microBatchSize;

    @Option(names = "--optimizer", defaultValue = "adamw", paramLabel = "NAME",
            description = "adamw or sgd (default: ${DEFAULT-VALUE}).")
    OptimizerName optimizer;

    @Option(names = "--epochs", defaultValue = "1", paramLabel = "N",
            description = "Passes over the training set, unless --max-steps is given (default: ${DEFAULT-VALUE}).")
    int epochs;

    @Option(names = "--max-steps", paramLabel = "N",
            description = "Stop after this many optimizer steps (overrides --epochs).")
    Long maxSteps;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "SEED",
            description = "Seed of shuffling, dropout and LoRA initialization (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--max-grad-norm", defaultValue = "1.0", paramLabel = "NORM",
            description = "Clip gradients to this global norm; 0 disables clipping (default: ${DEFAULT-VALUE}).")
    double maxGradNorm;

    @Option(names = "--activation-checkpointing",
            description = "Recompute each decoder block in backward instead of keeping its activations: much less "
                    + "memory, about one more forward pass of time, the same gradients.")
    boolean activationCheckpointing;

    @Option(names = "--no-memory-check",
            description = "Start even when the memory plan predicts more than the JVM's maximum heap or the machine's "
                    + "memory (see --dry-run).")
    boolean noMemoryCheck;

    /**
     * Applies these options to a trainer builder and returns it.
     *
     * @throws picocli.CommandLine.ParameterException naming the option whose value the trainer rejects
     */
    public Trainer.Builder configure(Trainer.Builder b) {
        b.optimizer(optimizer.kind);
        OptionErrors.check(spec, "--lr", learningRate, () -> b.learningRate(learningRate));
        OptionErrors.check(spec, "--weight-decay", weightDecay, () -> b.weightDecay(weightDecay));
        OptionErrors.check(spec, "--warmup-steps", warmupSteps, () -> b.warmupSteps(warmupSteps));
        OptionErrors.check(spec, "--batch-size", batchSize, () -> b.globalBatchSize(batchSize));
        OptionErrors.check(spec, "--micro-batch-size", microBatchSize, () -> b.microBatchSize(microBatchSize));
        OptionErrors.check(spec, "--epochs", epochs, () -> b.epochs(epochs));
        if (maxSteps != null) {
            OptionErrors.check(spec, "--max-steps", maxSteps, () -> b.maxSteps(maxSteps));
        }
        OptionErrors.check(spec, "--max-grad-norm", maxGradNorm, () -> b.maxGradNorm(maxGradNorm));
        b.seed(seed);
        b.activationCheckpointing(activationCheckpointing).memoryCheck(!noMemoryCheck);
        if (batchSize % microBatchSize != 0) {
            throw OptionErrors.invalid(spec, "--batch-size", batchSize, "must be a multiple of --micro-batch-size ("
                    + microBatchSize + "), e.g. " + microBatchSize * Math.max(1, batchSize / microBatchSize));
        }
        return b;
    }

    /** The step shape of these options for a memory plan, at this sequence length. */
    public dev.lora4j.lora.MemoryPlan.Shape planShape(int sequenceLength) {
        return new dev.lora4j.lora.MemoryPlan.Shape(microBatchSize, sequenceLength, optimizer.kind == Trainer.OptimizerKind.ADAMW
                ? dev.lora4j.lora.MemoryPlan.Optimizer.ADAMW : dev.lora4j.lora.MemoryPlan.Optimizer.SGD_MOMENTUM,
                activationCheckpointing, dev.lora4j.backend.Parallel.parallelism());
    }

    /** The seed (shuffling, dropout; finetune also seeds the LoRA initialization with it). */
    public long seed() {
        return seed;
    }

    @Override
    public String toString() {
        return "TrainOptions(optimizer=" + optimizer + ", lr=" + learningRate + ", weightDecay=" + weightDecay
                + ", warmupSteps=" + warmupSteps + ", batchSize=" + batchSize + ", microBatchSize=" + microBatchSize
                + ", epochs=" + epochs + ", maxSteps=" + maxSteps + ", seed=" + seed + ", maxGradNorm=" + maxGradNorm
                + ", activationCheckpointing=" + activationCheckpointing + ")";
    }
}
