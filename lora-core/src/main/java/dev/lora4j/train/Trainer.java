package dev.lora4j.train;

import dev.lora4j.autograd.Elementwise;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraAdapter;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The training loop: seeded shuffling, micro-batches accumulated into a global batch, global-norm
 * clipping, a learning-rate schedule, and listener callbacks. With the same seed, data and
 * settings, the loss curve is identical bit for bit on the same machine.
 *
 * <pre>{@code
 * Trainer trainer = Trainer.builder(model)
 *     .optimizer(Trainer.OptimizerKind.ADAMW).learningRate(3e-4).weightDecay(0.01)
 *     .warmupSteps(100).epochs(1).globalBatchSize(128).microBatchSize(1)
 *     .listener(m -> log.info("step {} loss {}", m.step(), m.loss()))
 *     .build();
 * trainer.fit(examples);
 * }</pre>
 */
public final class Trainer {
    private static final Logger LOG = LoggerFactory.getLogger(Trainer.class);

    /** Which optimizer {@link Builder#build()} creates. */
    public enum OptimizerKind {
        ADAMW,
        SGD
    }

    private final Builder config;
    private final LlamaModel model;
    private final List<Tensor> parameters;
    private final Optimizer optimizer;

    private Trainer(Builder b) {
        this.config = b.copy();
        this.model = b.model;
        this.parameters = b.parameters != null ? List.copyOf(b.parameters) : trainableParameters(model);
        if (parameters.isEmpty()) {
            throw new IllegalStateException("Trainer: the model has no trainable parameter; wrap it with LoRA "
                    + "(LoraModel.wrap) or call setBaseTrainable(true) for full training");
        }
        this.optimizer = b.optimizer == OptimizerKind.ADAMW
                ? new AdamW(parameters, b.learningRate, b.beta1, b.beta2, b.eps, b.weightDecay)
                : new Sgd(parameters, b.learningRate, b.momentum, 0, b.weightDecay, false);
        long seed = b.seed;
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                ll.seedDropout(seed ^ lin.name().hashCode());
            }
        }
    }

    public static Builder builder(LlamaModel model) {
        return new Builder(model);
    }

    /** Every tensor of the model that requires a gradient: LoRA A/B, and base tensors if made trainable. */
    public static List<Tensor> trainableParameters(LlamaModel model) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor t : model.allTensors().values()) {
            if (t.requiresGrad()) {
                out.add(t);
            }
        }
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                for (LoraAdapter ad : ll.adapters().values()) {
                    if (ad.a().requiresGrad()) {
                        out.add(ad.a());
                    }
                    if (ad.b().requiresGrad()) {
                        out.add(ad.b());
                    }
                }
            }
        }
        return out;
    }

    public Optimizer optimizer() {
        return optimizer;
    }

    public List<Tensor> parameters() {
        return parameters;
    }

    /** Number of optimizer steps {@link #fit} will run on a dataset of this size. */
    public long totalSteps(int datasetSize) {
        if (config.maxSteps > 0) {
            return config.maxSteps;
        }
        return (long) config.epochs * ((datasetSize + config.globalBatchSize - 1) / config.globalBatchSize);
    }

    /** Trains on {@code data}; returns when the step budget (maxSteps, or epochs) is used. */
    public TrainerListener.TrainingResult fit(List<Example> data) {
        if (data.isEmpty()) {
            throw new IllegalArgumentException("Trainer.fit: the training set is empty");
        }
        int maxLen = model.config().maxPositionEmbeddings();
        for (int i = 0; i < data.size(); i++) {
            if (data.get(i).length() > maxLen) {
                throw new IllegalArgumentException("Trainer.fit: example " + i + " has " + data.get(i).length()
                        + " tokens, more than max_position_embeddings " + maxLen + "; truncate it when building the dataset");
            }
        }
        long total = totalSteps(data.size());
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(config.learningRate, config.warmupSteps, total,
                config.minLearningRate);
        int accumulation = config.globalBatchSize / config.microBatchSize;
        IndexStream order = new IndexStream(data.size(), config.seed, config.shuffle);
        double[] losses = new double[(int) total];
        long tokens = 0;
        long start = System.nanoTime();
        LOG.info("training {} parameters ({} tensors) for {} steps: {} micro-batches of {} per step, {}", count(parameters),
                parameters.size(), total, accumulation, config.microBatchSize, optimizer);
        double lastLoss = Double.NaN;
        for (long step = 0; step < total; step++) {
            double lr = schedule.at(step);
            optimizer.setLearningRate(lr);
            double stepLoss = 0;
            for (int micro = 0; micro < accumulation; micro++) {
                List<Example> examples = new ArrayList<>(config.microBatchSize);
                for (int i = 0; i < config.microBatchSize; i++) {
                    examples.add(data.get(order.next()));
                }
                CausalLmLoss.Batch batch = CausalLmLoss.collate(examples, config.padTokenId);
                Tensor loss = CausalLmLoss.loss(model, batch);
                float value = loss.toFloatArray()[0];
                if (Float.isNaN(value)) {
                    throw new IllegalStateException("loss is NaN at step " + step + " (micro-batch " + micro + "); a micro-batch "
                            + "with every label masked gives NaN: check the prompt masking and max length");
                }
                stepLoss += value / accumulation;
                Elementwise.scale(loss, 1f / accumulation).backward();
                tokens += batch.realTokens();
            }
            double norm = config.maxGradNorm > 0 ? GradientClipping.clip(parameters, config.maxGradNorm)
                    : GradientClipping.globalNorm(parameters);
            optimizer.step();
            optimizer.zeroGrad();
            losses[(int) step] = stepLoss;
            lastLoss = stepLoss;
            double elapsed = (System.nanoTime() - start) / 1e9;
            TrainerListener.StepMetrics m = new TrainerListener.StepMetrics(step + 1, total, stepLoss, lr, norm, tokens,
                    tokens / Math.max(elapsed, 1e-9), elapsed);
            for (TrainerListener l : config.listeners) {
                l.onStep(m);
            }
        }
        TrainerListener.TrainingResult result = new TrainerListener.TrainingResult(total, lastLoss, tokens,
                (System.nanoTime() - start) / 1e9, losses);
        for (TrainerListener l : config.listeners) {
            l.onEnd(result);
        }
        return result;
    }

    private static long count(List<Tensor> params) {
        long n = 0;
        for (Tensor t : params) {
            n += t.numel();
        }
        return n;
    }

    @Override
    public String toString() {
        return "Trainer" + config.describe();
    }

    /** Endless example order: a fresh seeded permutation per epoch. */
    private static final class IndexStream {
        private final int n;
        private final SplittableRandom rng;
        private final boolean shuffle;
        private int[] perm;
        private int pos;

        IndexStream(int n, long seed, boolean shuffle) {
            this.n = n;
            this.rng = new SplittableRandom(seed);
            this.shuffle = shuffle;
            this.pos = n;
        }

        int next() {
            if (pos == n) {
                perm = new int[n];
                for (int i = 0; i < n; i++) {
                    perm[i] = i;
                }
                if (shuffle) {
                    for (int i = n - 1; i > 0; i--) {
                        int j = rng.nextInt(i + 1);
                        int tmp = perm[i];
                        perm[i] = perm[j];
                        perm[j] = tmp;
                    }
                }
                pos = 0;
            }
            return perm[pos++];
        }
    }

    /** Fluent settings; each setter validates at once. Defaults follow LitGPT's LoRA recipe. */
    public static final class Builder {
        private final LlamaModel model;
        private List<Tensor> parameters;
        private OptimizerKind optimizer = OptimizerKind.ADAMW;
        private double learningRate = 3e-4;
        private double minLearningRate = 0;
        private double weightDecay = 0.01;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double eps = 1e-8;
        private double momentum = 0.9;
        private long warmupSteps = 100;
        private long maxSteps = 0;
        private int epochs = 1;
        private int globalBatchSize = 128;
        private int microBatchSize = 1;
        private double maxGradNorm = 1.0;
        private long seed = 42;
        private boolean shuffle = true;
        private int padTokenId = 0;
        private final List<TrainerListener> listeners = new ArrayList<>();

        private Builder(LlamaModel model) {
            if (model == null) {
                throw new IllegalArgumentException("model must not be null");
            }
            this.model = model;
        }

        /** Train these tensors instead of every tensor that requires a gradient. */
        public Builder parameters(List<Tensor> value) {
            if (value == null || value.isEmpty()) {
                throw new IllegalArgumentException("parameters must not be empty");
            }
            parameters = List.copyOf(value);
            return this;
        }

        public Builder optimizer(OptimizerKind value) {
            optimizer = java.util.Objects.requireNonNull(value, "optimizer");
            return this;
        }

        public Builder learningRate(double value) {
            Checks.positive("learningRate", value, "3e-4");
            learningRate = value;
            return this;
        }

        /** Where the cosine decay ends (default 0). */
        public Builder minLearningRate(double value) {
            Checks.nonNegative("minLearningRate", value);
            minLearningRate = value;
            return this;
        }

        public Builder weightDecay(double value) {
            Checks.nonNegative("weightDecay", value);
            weightDecay = value;
            return this;
        }

        public Builder betas(double b1, double b2) {
            Checks.inRange("beta1", b1, 0, 1);
            Checks.inRange("beta2", b2, 0, 1);
            beta1 = b1;
            beta2 = b2;
            return this;
        }

        public Builder eps(double value) {
            Checks.positive("eps", value, "1e-8");
            eps = value;
            return this;
        }

        /** SGD momentum (default 0.9). */
        public Builder momentum(double value) {
            Checks.nonNegative("momentum", value);
            momentum = value;
            return this;
        }

        public Builder warmupSteps(long value) {
            Checks.nonNegative("warmupSteps", value);
            warmupSteps = value;
            return this;
        }

        /** Stop after this many optimizer steps (overrides epochs when > 0). */
        public Builder maxSteps(long value) {
            Checks.atLeast("maxSteps", value, 1);
            maxSteps = value;
            return this;
        }

        public Builder epochs(int value) {
            Checks.atLeast("epochs", value, 1);
            epochs = value;
            return this;
        }

        /** Examples per optimizer step; must be a multiple of the micro-batch size. */
        public Builder globalBatchSize(int value) {
            Checks.atLeast("globalBatchSize", value, 1);
            globalBatchSize = value;
            return this;
        }

        /** Examples per forward/backward pass (memory); gradients accumulate up to the global batch. */
        public Builder microBatchSize(int value) {
            Checks.atLeast("microBatchSize", value, 1);
            microBatchSize = value;
            return this;
        }

        /** Clip gradients to this global norm; 0 disables clipping. */
        public Builder maxGradNorm(double value) {
            Checks.nonNegative("maxGradNorm", value);
            maxGradNorm = value;
            return this;
        }

        public Builder seed(long value) {
            seed = value;
            return this;
        }

        public Builder shuffle(boolean value) {
            shuffle = value;
            return this;
        }

        public Builder padTokenId(int value) {
            Checks.nonNegative("padTokenId", value);
            padTokenId = value;
            return this;
        }

        public Builder listener(TrainerListener value) {
            listeners.add(java.util.Objects.requireNonNull(value, "listener"));
            return this;
        }

        public Trainer build() {
            if (globalBatchSize % microBatchSize != 0) {
                throw new IllegalArgumentException("globalBatchSize (" + globalBatchSize + ") must be a multiple of "
                        + "microBatchSize (" + microBatchSize + "); e.g. globalBatchSize " + microBatchSize
                        * Math.max(1, globalBatchSize / microBatchSize));
            }
            return new Trainer(this);
        }

        private Builder copy() {
            Builder b = new Builder(model);
            b.parameters = parameters;
            b.optimizer = optimizer;
            b.learningRate = learningRate;
            b.minLearningRate = minLearningRate;
            b.weightDecay = weightDecay;
            b.beta1 = beta1;
            b.beta2 = beta2;
            b.eps = eps;
            b.momentum = momentum;
            b.warmupSteps = warmupSteps;
            b.maxSteps = maxSteps;
            b.epochs = epochs;
            b.globalBatchSize = globalBatchSize;
            b.microBatchSize = microBatchSize;
            b.maxGradNorm = maxGradNorm;
            b.seed = seed;
            b.shuffle = shuffle;
            b.padTokenId = padTokenId;
            b.listeners.addAll(listeners);
            return b;
        }

        String describe() {
            return "(optimizer=" + optimizer + ", learningRate=" + learningRate + ", minLearningRate=" + minLearningRate
                    + ", weightDecay=" + weightDecay + ", warmupSteps=" + warmupSteps + ", maxSteps=" + maxSteps
                    + ", epochs=" + epochs + ", globalBatchSize=" + globalBatchSize + ", microBatchSize=" + microBatchSize
                    + ", maxGradNorm=" + maxGradNorm + ", seed=" + seed + ", shuffle=" + shuffle + ")";
        }

        @Override
        public String toString() {
            return "Trainer.Builder" + describe();
        }
    }
}
