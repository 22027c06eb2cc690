package dev.lora4j.train;

import dev.lora4j.autograd.Elementwise;
import dev.lora4j.backend.Arena;
import dev.lora4j.data.Example;
import dev.lora4j.eval.LossEvaluator;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.lora.LoraAdapter;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MemoryPlan;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.distributed.GradientReducer;
import dev.lora4j.train.distributed.LocalGradientReducer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
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
 *
 * // checkpoints every 200 steps, validation every 100; after a crash, the same code with
 * // .resumeFrom(dir) continues from the newest complete checkpoint
 * Trainer.builder(lora.model()).adapterFolders(lora).checkpointDir(dir).checkpointEvery(200).keepLastCheckpoints(3)
 *     .validation(heldOut, 100).build().fit(examples);
 * }</pre>
 *
 * <p>Progress is logged through SLF4J by default ({@link ProgressLogger}: step, loss, learning
 * rate, tokens/s and ETA, at most every 10 s); see {@link Builder#progressLogging(boolean)}.
 *
 * <p>Thread safety: a Trainer is not thread-safe. {@link #fit} runs on the calling thread (the
 * compute backend may use a thread pool inside each operation) and changes the model's trainable
 * tensors and the optimizer state in place; listeners are called on that thread. Do not use the
 * model from other threads while it trains.
 */
public final class Trainer {
    private static final Logger LOG = LoggerFactory.getLogger(Trainer.class);

    /** Which optimizer {@link Builder#build()} creates. */
    public enum OptimizerKind {
        ADAMW,
        SGD
    }

    /** Domain tags that keep the random streams derived from one seed apart. */
    private static final long DATA_ORDER_STREAM = 0x6461746120L;
    private static final long DROPOUT_STREAM = 0x64726f70L;

    private final Builder config;
    private final LlamaModel model;
    private final List<Tensor> parameters;
    private final Optimizer optimizer;

    private Trainer(Builder b) {
        this.config = b.copy();
        if (b.progressLogger != null) {
            config.listeners.add(0, b.progressLogger.fresh()); // first, so that its line precedes what other listeners print
        }
        this.model = b.model;
        this.parameters = b.parameters != null ? List.copyOf(b.parameters) : trainableParameters(model);
        if (parameters.isEmpty()) {
            throw new IllegalStateException("Trainer: the model has no trainable parameter; wrap it with LoRA "
                    + "(LoraModel.wrap) or call setBaseTrainable(true) for full training");
        }
        this.optimizer = b.optimizer == OptimizerKind.ADAMW
                ? new AdamW(parameters, b.learningRate, b.beta1, b.beta2, b.eps, b.weightDecay)
                : new Sgd(parameters, b.learningRate, b.momentum, 0, b.weightDecay, false);
    }

    public static Builder builder(LlamaModel model) {
        return new Builder(model);
    }

    /**
     * The newest complete checkpoint folder under {@code checkpointDir}; folders of interrupted
     * saves ({@code *.tmp}) are logged and ignored.
     */
    public static Optional<Path> latestCheckpoint(Path checkpointDir) {
        return TrainingCheckpoints.latest(checkpointDir);
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

    /**
     * The stable name of each of {@link #parameters()}, used as keys in checkpoints: a base tensor's
     * key in {@link LlamaModel#allTensors()} (e.g. {@code model.norm.weight}); a LoRA matrix's PEFT
     * key ({@code base_model.model.<module>.lora_A.weight} for the "default" adapter, as in
     * adapter_model.safetensors, and {@code base_model.model.<module>.lora_A.<adapter>.weight} for
     * others, as in PEFT's state_dict); otherwise the tensor's own {@link Tensor#name()}.
     *
     * @throws IllegalStateException if a parameter has no name or two share one
     */
    public List<String> parameterNames() {
        Map<Tensor, String> known = new IdentityHashMap<>();
        model.allTensors().forEach((name, t) -> known.putIfAbsent(t, name));
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                for (Map.Entry<String, LoraAdapter> e : ll.adapters().entrySet()) {
                    String infix = e.getKey().equals(LoraModel.DEFAULT_ADAPTER) ? "" : "." + e.getKey();
                    known.putIfAbsent(e.getValue().a(), "base_model.model." + lin.name() + ".lora_A" + infix + ".weight");
                    known.putIfAbsent(e.getValue().b(), "base_model.model." + lin.name() + ".lora_B" + infix + ".weight");
                }
            }
        }
        List<String> names = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < parameters.size(); i++) {
            Tensor p = parameters.get(i);
            String name = known.getOrDefault(p, p.name());
            if (name == null || name.isEmpty() || !seen.add(name)) {
                throw new IllegalStateException("checkpoints need a unique name for every trainable tensor, but parameter "
                        + i + " (" + p + ") " + (name == null || name.isEmpty() ? "has none" : "shares the name '" + name
                        + "'") + "; name it with Tensor.name(...)");
            }
            names.add(name);
        }
        return names;
    }

    /** Number of optimizer steps {@link #fit} will run on a dataset of this size. */
    public long totalSteps(int datasetSize) {
        if (config.maxSteps > 0) {
            return config.maxSteps;
        }
        return (long) config.epochs * ((datasetSize + config.globalBatchSize - 1) / config.globalBatchSize);
    }

    /**
     * Trains on {@code data}; returns when the step budget (maxSteps, or epochs) is used, or at
     * {@link Builder#stopAfterSteps}. With {@link Builder#resumeFrom} it first restores a
     * checkpoint made with the same settings and data, and continues from its step.
     *
     * @throws IllegalArgumentException if the data is unusable, or a resumed checkpoint was made
     *     with other settings or data (the message names each difference)
     * @throws UncheckedIOException if a checkpoint cannot be read or written
     */
    public TrainerListener.TrainingResult fit(List<Example> data) {
        if (data.isEmpty()) {
            throw new IllegalArgumentException("Trainer.fit: the training set is empty");
        }
        checkLengths("example", data);
        if (config.validationData != null) {
            checkLengths("validation example", config.validationData);
        }
        if (config.memoryCheck) {
            checkMemory(data);
        }
        long total = totalSteps(data.size());
        LearningRateSchedule schedule = LearningRateSchedule.warmupCosine(config.learningRate, config.warmupSteps, total,
                config.minLearningRate);
        int accumulation = config.globalBatchSize / config.microBatchSize;
        String dataHash = datasetHash(data);
        List<String> names = config.checkpointDir != null || config.resumeFrom != null ? parameterNames() : List.of();
        Progress run = new Progress(total);
        if (config.resumeFrom != null) {
            restore(run, names, data.size(), dataHash, total);
        }
        if (config.checkpointDir != null) {
            refuseToOverwrite(run.step);
        }
        List<LoraLinear> dropoutLayers = new ArrayList<>();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                dropoutLayers.add(ll);
            }
        }
        IndexStream order = new IndexStream(data.size(), config.seed, config.shuffle);
        order.skip(run.step * config.globalBatchSize);
        long stopAt = config.stopAfterSteps > 0 ? Math.min(total, config.stopAfterSteps) : total;
        long start = System.nanoTime();
        LOG.info("training {} parameters ({} tensors) for {} steps{}: {} micro-batches of {} per step, {}",
                count(parameters), parameters.size(), total, run.step > 0 ? " from step " + run.step : "", accumulation,
                config.microBatchSize, optimizer);
        model.activationCheckpointing(config.activationCheckpointing);
        NonFiniteGuard guard = new NonFiniteGuard(config.onNonFinite, config.checkpointDir);
        GradientReducer reducer = config.reducer;
        int world = reducer.worldSize();
        // worker r of N takes micro-batches [r·A/N, (r+1)·A/N) of each global batch (A = accumulation)
        int myMicros = accumulation / world;
        int firstMicro = reducer.rank() * myMicros;
        float[] microLosses = new float[myMicros];
        for (long step = run.step; step < stopAt; step++) {
            double lr = schedule.at(step);
            optimizer.setLearningRate(lr);
            for (LoraLinear ll : dropoutLayers) {
                ll.seedDropout(derive(config.seed, DROPOUT_STREAM, step, ll.name().hashCode()));
            }
            double stepLoss = 0;
            NonFiniteGuard.Problem problem = null;
            long stepTokens = 0;
            for (int micro = 0; micro < accumulation; micro++) {
                List<Example> examples = new ArrayList<>(config.microBatchSize);
                for (int i = 0; i < config.microBatchSize; i++) {
                    examples.add(data.get(order.next()));
                }
                if (micro < firstMicro || micro >= firstMicro + myMicros) {
                    if (micro < firstMicro) {
                        for (LoraLinear ll : dropoutLayers) {
                            ll.skipDropout(1); // keep this worker's masks those of one process
                        }
                    }
                    continue; // another worker's share
                }
                CausalLmLoss.Batch batch = CausalLmLoss.collate(examples, config.padTokenId);
                // activations and their gradients come from a per-micro-batch arena, reused from the last one
                try (Arena arena = model.embedTokens().backend().openArena()) {
                    Tensor loss = CausalLmLoss.loss(model, batch);
                    microLosses[micro - firstMicro] = loss.toFloatArray()[0];
                    Elementwise.scale(loss, 1f / accumulation).backward();
                }
                stepTokens += batch.realTokens();
            }
            float[] losses = microLosses;
            if (world > 1) {
                // every worker sees all A losses and sums them in micro-batch order, as one process does
                losses = new float[accumulation];
                stepTokens = gatherLosses(reducer, microLosses, stepTokens, losses);
                reduceGradients(reducer);
            }
            run.tokens += stepTokens;
            for (int micro = 0; micro < accumulation; micro++) {
                float value = losses[micro];
                if (problem == null) {
                    problem = NonFiniteGuard.loss(value, step, micro);
                }
                stepLoss += value / accumulation;
            }
            if (problem == null && !Double.isFinite(GradientClipping.globalNorm(parameters))) {
                problem = NonFiniteGuard.gradients(parameters, this::parameterNames, step);
            }
            double norm = Double.NaN;
            if (problem != null) {
                guard.handle(problem, step); // throws for STOP; for SKIP the gradients are dropped below
            } else {
                norm = config.maxGradNorm > 0 ? GradientClipping.clip(parameters, config.maxGradNorm)
                        : GradientClipping.globalNorm(parameters);
                optimizer.step();
            }
            optimizer.zeroGrad();
            run.losses[(int) step] = stepLoss;
            run.step = step + 1;
            if (world > 1 && config.checksumEvery > 0 && run.step % config.checksumEvery == 0) {
                compareChecksums(reducer, run.step);
            }
            run.learningRate = lr;
            double elapsed = run.elapsedBefore + (System.nanoTime() - start) / 1e9;
            TrainerListener.StepMetrics m = new TrainerListener.StepMetrics(run.step, total, stepLoss, lr, norm, run.tokens,
                    run.tokens / Math.max(elapsed, 1e-9), elapsed);
            for (TrainerListener l : config.listeners) {
                l.onStep(m);
            }
            if (config.validationData != null && (run.step % config.validationEvery == 0 || run.step == total)) {
                validate(run);
            }
            if (config.checkpointDir != null && reducer.rank() == 0
                    && ((config.checkpointEvery > 0 && run.step % config.checkpointEvery == 0) || run.step == stopAt)) {
                run.elapsedBefore += (System.nanoTime() - start) / 1e9;
                start = System.nanoTime();
                saveCheckpoint(run, names, data.size(), dataHash);
            }
        }
        if (run.step < total) {
            LOG.info("stopped after step {} of {} (stopAfterSteps {}); resume to continue", run.step, total,
                    config.stopAfterSteps);
        }
        double seconds = run.elapsedBefore + (System.nanoTime() - start) / 1e9;
        TrainerListener.TrainingResult result = new TrainerListener.TrainingResult(run.step,
                run.step == 0 ? Double.NaN : run.losses[(int) run.step - 1], run.tokens, seconds,
                Arrays.copyOf(run.losses, (int) run.step), total);
        for (TrainerListener l : config.listeners) {
            l.onEnd(result);
        }
        return result;
    }

    // ---------------------------------------------------------------- data parallelism

    /** Fills {@code all} with every worker's micro-batch losses in global order; returns the summed token count. */
    private static long gatherLosses(GradientReducer reducer, float[] mine, long tokens, float[] all) {
        ByteBuffer out = ByteBuffer.allocate(8 + 4 * mine.length).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(tokens);
        for (float v : mine) {
            out.putFloat(v);
        }
        byte[][] gathered = reducer.allGather(out.array());
        long total = 0;
        for (int r = 0; r < gathered.length; r++) {
            ByteBuffer in = ByteBuffer.wrap(gathered[r]).order(ByteOrder.LITTLE_ENDIAN);
            total += in.getLong();
            for (int i = 0; i < mine.length; i++) {
                all[r * mine.length + i] = in.getFloat();
            }
        }
        return total;
    }

    /**
     * Sums the trainable gradients over the workers. One flag per tensor travels along, so that a
     * tensor without a gradient on every worker keeps none (as in one process) while one with a
     * gradient somewhere gets the sum.
     */
    private void reduceGradients(GradientReducer reducer) {
        long n = count(parameters);
        float[] flat = new float[Math.toIntExact(n + parameters.size())];
        int at = 0;
        for (int i = 0; i < parameters.size(); i++) {
            Tensor p = parameters.get(i);
            if (p.grad() != null) {
                float[] g = p.grad().toFloatArray();
                System.arraycopy(g, 0, flat, at, g.length);
                flat[(int) n + i] = 1f;
            }
            at += (int) p.numel();
        }
        reducer.sum(flat);
        at = 0;
        for (int i = 0; i < parameters.size(); i++) {
            Tensor p = parameters.get(i);
            int size = (int) p.numel();
            if (flat[(int) n + i] > 0) {
                Tensor buffer = p.gradBuffer();
                buffer.copyFrom(buffer.backend().fromHost(Arrays.copyOfRange(flat, at, at + size), p.shape()));
            }
            at += size;
        }
    }

    /** Stops the run when the trained tensors differ between workers (they must stay bit-identical). */
    private void compareChecksums(GradientReducer reducer, long step) {
        long h = 0xcbf29ce484222325L;
        for (Tensor p : parameters) {
            for (float v : p.toFloatArray()) {
                h = fnv(h, Float.floatToRawIntBits(v));
            }
        }
        byte[][] all = reducer.allGather(ByteBuffer.allocate(8).putLong(h).array());
        Map<Long, List<Integer>> ranksBySum = new LinkedHashMap<>();
        for (int r = 0; r < all.length; r++) {
            ranksBySum.computeIfAbsent(ByteBuffer.wrap(all[r]).getLong(), k -> new ArrayList<>()).add(r);
        }
        if (ranksBySum.size() > 1) {
            StringBuilder groups = new StringBuilder();
            ranksBySum.forEach((sum, ranks) -> groups.append(groups.length() == 0 ? "" : "; ").append("ranks ").append(ranks)
                    .append(": ").append(String.format("%016x", sum)));
            throw new IllegalStateException("the workers' trained tensors diverged at step " + step + " (checksums "
                    + groups + "); every worker must start from the same model, adapter initialisation and settings; "
                    + "resume all workers from the last checkpoint");
        }
    }

    /** What a run has done so far; restored from a checkpoint when resuming. */
    private static final class Progress {
        long step;
        long tokens;
        double learningRate = Double.NaN;
        double elapsedBefore;
        final double[] losses;
        final List<TrainerListener.ValidationMetrics> validations = new ArrayList<>();

        Progress(long total) {
            losses = new double[Math.toIntExact(total)];
        }
    }

    /**
     * The memory plan of a step of this trainer at the given sequence length (the longest example
     * of a micro-batch): the model's tensors, the micro-batch size, optimizer, activation
     * checkpointing and thread count as configured.
     */
    public MemoryPlan memoryPlan(int sequenceLength) {
        MemoryPlan.Optimizer kind = config.optimizer == OptimizerKind.ADAMW ? MemoryPlan.Optimizer.ADAMW
                : config.momentum > 0 ? MemoryPlan.Optimizer.SGD_MOMENTUM : MemoryPlan.Optimizer.SGD;
        return MemoryPlan.of(model, new MemoryPlan.Shape(config.microBatchSize, sequenceLength, kind,
                config.activationCheckpointing, dev.lora4j.backend.Parallel.parallelism()));
    }

    /** Refuses to start a run whose predicted peak does not fit the heap or the machine (see {@link MemoryPlan}). */
    private void checkMemory(List<Example> data) {
        if (model.embedTokens().device() != dev.lora4j.tensor.Device.CPU) {
            return; // the plan describes the CPU backends' memory
        }
        int longest = 1;
        for (Example e : data) {
            longest = Math.max(longest, e.length());
        }
        MemoryPlan plan = memoryPlan(longest);
        long maxHeap = config.maxHeapBytes != 0 ? config.maxHeapBytes : Runtime.getRuntime().maxMemory();
        long machine = config.machineBytes != 0 ? config.machineBytes : MemoryPlan.physicalMemory().orElse(-1);
        plan.check(maxHeap == Long.MAX_VALUE ? -1 : maxHeap, machine);
        LOG.debug("{}", plan);
    }

    private void checkLengths(String what, List<Example> examples) {
        int maxLen = model.config().maxPositionEmbeddings();
        for (int i = 0; i < examples.size(); i++) {
            if (examples.get(i).length() > maxLen) {
                throw new IllegalArgumentException("Trainer.fit: " + what + " " + i + " has " + examples.get(i).length()
                        + " tokens, more than max_position_embeddings " + maxLen + "; truncate it when building the dataset");
            }
        }
    }

    private void validate(Progress run) {
        LossEvaluator.LossResult r = LossEvaluator.evaluate(model, config.validationData, config.microBatchSize,
                config.padTokenId);
        TrainerListener.ValidationMetrics v = new TrainerListener.ValidationMetrics(run.step, r.loss(), r.perplexity(),
                r.tokens());
        run.validations.add(v);
        LOG.info("step {}: validation loss {} (perplexity {}) over {} tokens", run.step, r.loss(), r.perplexity(),
                r.tokens());
        for (TrainerListener l : config.listeners) {
            l.onValidation(v);
        }
    }

    // ---------------------------------------------------------------- checkpoints

    private void saveCheckpoint(Progress run, List<String> names, int datasetSize, String dataHash) {
        TrainerState state = new TrainerState(run.step, run.losses.length, run.step * config.globalBatchSize, datasetSize,
                dataHash, config.seed, run.learningRate, run.tokens, run.elapsedBefore, config.settings(), names,
                Arrays.copyOf(run.losses, (int) run.step), List.copyOf(run.validations));
        Path dir;
        try {
            dir = TrainingCheckpoints.commit(config.checkpointDir, run.step, tmp -> {
                SafetensorsWriter tensors = new SafetensorsWriter().metadata("format", "pt");
                for (int i = 0; i < parameters.size(); i++) {
                    tensors.add(names.get(i), parameters.get(i));
                }
                tensors.write(tmp.resolve(TrainingCheckpoints.TRAINABLE_FILE));
                if (config.lora != null) {
                    saveAdapters(tmp.resolve(TrainingCheckpoints.ADAPTER_DIR));
                }
                optimizer.saveState(tmp.resolve(TrainingCheckpoints.OPTIMIZER_FILE), names);
                state.write(tmp.resolve(TrainingCheckpoints.STATE_FILE)); // last: its presence marks a complete folder
            }, config.checkpointHook);
            if (config.keepLastCheckpoints > 0) {
                TrainingCheckpoints.prune(config.checkpointDir, config.keepLastCheckpoints);
            }
        } catch (IOException | UncheckedIOException e) {
            throw new UncheckedIOException(new IOException("saving the checkpoint of step " + run.step + " into "
                    + config.checkpointDir + " failed: " + e.getMessage() + "; earlier checkpoints are untouched", e));
        }
        LOG.info("saved checkpoint {}", dir);
        for (TrainerListener l : config.listeners) {
            l.onCheckpoint(dir, run.step);
        }
    }

    /** Every adapter with a tensor among the trained ones, as PEFT's save_pretrained lays them out. */
    private void saveAdapters(Path dir) {
        Set<Tensor> trained = Collections.newSetFromMap(new IdentityHashMap<>());
        trained.addAll(parameters);
        for (String name : config.lora.adapterNames()) {
            boolean isTrained = config.lora.peftTensors(name, t -> t).values().stream().anyMatch(trained::contains);
            if (isTrained) {
                config.lora.saveAdapter(name, name.equals(LoraModel.DEFAULT_ADAPTER) ? dir : dir.resolve(name));
            }
        }
    }

    /** A fresh run must not mix its checkpoints with another run's, nor overwrite any. */
    private void refuseToOverwrite(long fromStep) {
        List<String> later = new ArrayList<>();
        for (TrainingCheckpoints.Saved c : TrainingCheckpoints.complete(config.checkpointDir)) {
            if (c.step() > fromStep) {
                later.add(c.dir().getFileName().toString());
            }
        }
        if (!later.isEmpty()) {
            throw new IllegalStateException("checkpointDir " + config.checkpointDir + " already holds checkpoint(s) "
                    + later + " past step " + fromStep + " of this run; resume from them with resumeFrom("
                    + config.checkpointDir + "), delete them, or choose another checkpointDir");
        }
    }

    private void restore(Progress run, List<String> names, int datasetSize, String dataHash, long total) {
        Path dir = TrainingCheckpoints.resolve(config.resumeFrom);
        try {
            TrainerState state = TrainerState.read(dir.resolve(TrainingCheckpoints.STATE_FILE));
            List<String> differences = new ArrayList<>();
            Map<String, Object> settings = config.settings();
            for (Map.Entry<String, Object> e : settings.entrySet()) {
                Object saved = state.settings().get(e.getKey());
                if (saved == null || !TrainerState.sameSetting(e.getValue(), saved)) {
                    differences.add(e.getKey() + " (checkpoint " + saved + ", now " + e.getValue() + ")");
                }
            }
            if (state.datasetSize() != datasetSize) {
                differences.add("dataset size (checkpoint " + state.datasetSize() + " examples, now " + datasetSize + ")");
            } else if (!state.datasetHash().equals(dataHash)) {
                differences.add("dataset content (same size " + datasetSize + ", different tokens or labels: hash "
                        + state.datasetHash() + " vs " + dataHash + ")");
            }
            if (!differences.isEmpty()) {
                throw new IllegalArgumentException("resumeFrom " + dir + ": the run differs from the checkpoint's in "
                        + String.join(", ", differences) + "; resume with the checkpoint's settings and data, or start a "
                        + "new run in another checkpointDir");
            }
            if (state.totalSteps() != total || state.step() > total) {
                throw new IllegalArgumentException("resumeFrom " + dir + ": the checkpoint is at step " + state.step() + " of "
                        + state.totalSteps() + " but this run has " + total + " steps");
            }
            Set<String> saved = new LinkedHashSet<>(state.trainableTensors());
            if (!saved.equals(new LinkedHashSet<>(names))) {
                Set<String> missing = new LinkedHashSet<>(names);
                missing.removeAll(saved);
                Set<String> extra = new LinkedHashSet<>(saved);
                extra.removeAll(names);
                throw new IllegalArgumentException("resumeFrom " + dir + ": the trainable tensors differ: " + missing.size()
                        + " trained now but not in the checkpoint" + (missing.isEmpty() ? "" : " (e.g. " + missing.iterator().next()
                        + ")") + ", " + extra.size() + " in the checkpoint but not trained now" + (extra.isEmpty() ? ""
                        : " (e.g. " + extra.iterator().next() + ")") + "; use the same LoRA targets, rank and adapters");
            }
            restoreTensors(dir.resolve(TrainingCheckpoints.TRAINABLE_FILE), names);
            optimizer.loadState(dir.resolve(TrainingCheckpoints.OPTIMIZER_FILE), names);
            run.step = state.step();
            run.tokens = state.tokensSeen();
            run.learningRate = state.learningRate();
            run.elapsedBefore = state.elapsedSeconds();
            System.arraycopy(state.lossHistory(), 0, run.losses, 0, state.lossHistory().length);
            run.validations.addAll(state.validations());
            LOG.info("resumed from {} at step {} of {} ({} tokens seen)", dir, run.step, total, run.tokens);
        } catch (IOException e) {
            throw new UncheckedIOException("resumeFrom " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Copies the saved values into the trained tensors, after checking every shape. */
    private void restoreTensors(Path file, List<String> names) throws IOException {
        try (SafetensorsFile in = SafetensorsFile.open(file)) {
            List<float[]> values = new ArrayList<>();
            for (int i = 0; i < parameters.size(); i++) {
                Tensor p = parameters.get(i);
                int[] shape = in.info(names.get(i)).shape();
                if (!Arrays.equals(shape, p.shape())) {
                    throw new IllegalArgumentException(file + ": '" + names.get(i) + "' has shape " + Arrays.toString(shape)
                            + " but the trained tensor is " + Arrays.toString(p.shape()) + "; use the same model and LoRA rank");
                }
                values.add(in.f32(names.get(i)).data());
            }
            for (int i = 0; i < parameters.size(); i++) {
                Tensor p = parameters.get(i);
                if (!p.isContiguous()) {
                    throw new IllegalStateException("cannot restore '" + names.get(i) + "' in place: it is not contiguous");
                }
                System.arraycopy(values.get(i), 0, p.data(), p.intOffset(), values.get(i).length);
            }
        }
    }

    /** A fingerprint of the examples' tokens and labels (FNV-1a, 64 bits), to detect resuming on other data. */
    static String datasetHash(List<Example> data) {
        long h = 0xcbf29ce484222325L;
        for (Example e : data) {
            h = fnv(h, e.inputIds().length);
            for (int id : e.inputIds()) {
                h = fnv(h, id);
            }
            for (int label : e.labels()) {
                h = fnv(h, label);
            }
        }
        return String.format("%016x", h);
    }

    private static long fnv(long h, int value) {
        for (int shift = 0; shift < 32; shift += 8) {
            h = (h ^ ((value >>> shift) & 0xff)) * 0x100000001b3L;
        }
        return h;
    }

    /** A seed for one random stream, from the run's seed and the stream's coordinates (SplitMix64 mixing). */
    static long derive(long seed, long stream, long a, long b) {
        long z = seed;
        for (long part : new long[] {stream, a, b}) {
            z = mix64(z + 0x9E3779B97F4A7C15L + mix64(part));
        }
        return z;
    }

    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
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

    /**
     * Endless example order: per epoch a permutation seeded from (seed, epoch), so that any
     * position can be reached again from the count of examples drawn.
     */
    private static final class IndexStream {
        private final int n;
        private final long seed;
        private final boolean shuffle;
        private int[] perm;
        private long epoch = -1;
        private int pos;

        IndexStream(int n, long seed, boolean shuffle) {
            this.n = n;
            this.seed = seed;
            this.shuffle = shuffle;
            this.pos = n;
        }

        /** Moves to where the stream is after {@code drawn} calls of {@link #next()}. */
        void skip(long drawn) {
            if (drawn == 0) {
                return;
            }
            startEpoch((drawn - 1) / n);
            pos = (int) ((drawn - 1) % n) + 1;
        }

        int next() {
            if (pos == n) {
                startEpoch(epoch + 1);
            }
            return perm[pos++];
        }

        private void startEpoch(long e) {
            epoch = e;
            perm = new int[n];
            for (int i = 0; i < n; i++) {
                perm[i] = i;
            }
            if (shuffle) {
                SplittableRandom rng = new SplittableRandom(derive(seed, DATA_ORDER_STREAM, e, 0));
                for (int i = n - 1; i > 0; i--) {
                    int j = rng.nextInt(i + 1);
                    int tmp = perm[i];
                    perm[i] = perm[j];
                    perm[j] = tmp;
                }
            }
            pos = 0;
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
        private boolean activationCheckpointing;
        private final List<TrainerListener> listeners = new ArrayList<>();
        private ProgressLogger progressLogger = ProgressLogger.defaults();
        private LoraModel lora;
        private Path checkpointDir;
        private long checkpointEvery;
        private int keepLastCheckpoints;
        private List<Example> validationData;
        private long validationEvery;
        private Path resumeFrom;
        private long stopAfterSteps;
        private TrainingCheckpoints.WriteHook checkpointHook = TrainingCheckpoints.WriteHook.NONE;
        private OnNonFinite onNonFinite = OnNonFinite.STOP;
        private GradientReducer reducer = LocalGradientReducer.INSTANCE;
        private long checksumEvery = 100;
        private boolean memoryCheck = true;
        private long maxHeapBytes;
        private long machineBytes;

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

        /**
         * Recompute each decoder block in backward instead of keeping its activations
         * ({@link dev.lora4j.autograd.Checkpoint}): less memory, about one more forward pass of
         * time, the same gradients. Off by default. {@link Trainer#fit} sets it on the model.
         */
        public Builder activationCheckpointing(boolean value) {
            activationCheckpointing = value;
            return this;
        }

        /**
         * Whether {@link Trainer#fit} first checks the run's {@link MemoryPlan} against the JVM's
         * maximum heap and the machine's memory and refuses to start, naming the settings to change,
         * when it does not fit (on by default). Turn it off if you know better than the plan, e.g.
         * for a heap tuned close to the live set.
         */
        public Builder memoryCheck(boolean value) {
            memoryCheck = value;
            return this;
        }

        /**
         * The limits the memory check compares with, instead of {@code Runtime.maxMemory()} and the
         * machine's physical memory (e.g. a container's share); 0 keeps the JVM's figure, -1 skips
         * that comparison.
         */
        public Builder memoryLimits(long maxHeapBytes, long machineBytes) {
            if (maxHeapBytes < -1 || machineBytes < -1) {
                throw new IllegalArgumentException("memoryLimits must be bytes > 0, 0 (the JVM's figure) or -1 (unchecked), was "
                        + maxHeapBytes + " and " + machineBytes);
            }
            this.maxHeapBytes = maxHeapBytes;
            this.machineBytes = machineBytes;
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

        /**
         * Progress lines through SLF4J (on by default: {@link ProgressLogger#defaults()}, every 10 s);
         * false turns them off, e.g. when a listener of your own shows progress.
         */
        public Builder progressLogging(boolean on) {
            progressLogger = on ? ProgressLogger.defaults() : null;
            return this;
        }

        /** Progress lines from this logger instead of the default one, e.g. {@code ProgressLogger.everySteps(50)}. */
        public Builder progressLogging(ProgressLogger value) {
            progressLogger = Objects.requireNonNull(value, "progressLogging");
            return this;
        }

        /**
         * Saves checkpoints into this folder (created if needed): every {@link #checkpointEvery}
         * steps, after the last step, and where {@link #stopAfterSteps} stops. The folder must not
         * already hold checkpoints past the step the run starts from.
         */
        public Builder checkpointDir(Path value) {
            checkpointDir = Objects.requireNonNull(value, "checkpointDir");
            return this;
        }

        /** Steps between checkpoints (default 0: only after the last step); needs {@link #checkpointDir}. */
        public Builder checkpointEvery(long steps) {
            Checks.atLeast("checkpointEvery", steps, 1);
            checkpointEvery = steps;
            return this;
        }

        /** Keeps only the newest {@code count} checkpoints, deleting older ones once a new one is complete (default: all). */
        public Builder keepLastCheckpoints(int count) {
            Checks.atLeast("keepLastCheckpoints", count, 1);
            keepLastCheckpoints = count;
            return this;
        }

        /**
         * Computes the validation loss and perplexity ({@link LossEvaluator}, in micro-batches of
         * {@link #microBatchSize}, without dropout) every {@code everySteps} steps and after the
         * last one, reported to {@link TrainerListener#onValidation}.
         */
        public Builder validation(List<Example> data, long everySteps) {
            if (data == null || data.isEmpty()) {
                throw new IllegalArgumentException("validation data must not be empty");
            }
            Checks.atLeast("validation everySteps", everySteps, 1);
            validationData = List.copyOf(data);
            validationEvery = everySteps;
            return this;
        }

        /**
         * Continues a run from a checkpoint: a {@code step-NNNNNN} folder, or a checkpointDir (its
         * newest complete checkpoint). {@link Trainer#fit} restores the trained tensors, the optimizer
         * state, the schedule and data position and the loss history, after checking that the
         * settings and data are the checkpoint's, and runs on to the same total steps.
         */
        public Builder resumeFrom(Path checkpointOrDir) {
            resumeFrom = Objects.requireNonNull(checkpointOrDir, "resumeFrom");
            return this;
        }

        /**
         * Returns from {@link Trainer#fit} after this optimizer step (counted from the start of the
         * run, not of this fit), as an interrupted run would, saving a checkpoint there when a
         * {@link #checkpointDir} is set. The schedule still spans the full run.
         */
        public Builder stopAfterSteps(long step) {
            Checks.atLeast("stopAfterSteps", step, 1);
            stopAfterSteps = step;
            return this;
        }

        /**
         * Also writes the trained adapters of {@code value} (which must wrap this builder's model)
         * into each checkpoint as PEFT folders: {@code adapter/} for "default", {@code adapter/<name>/}
         * for others, ready for {@code PeftModel.from_pretrained} or {@link LoraModel#load}.
         */
        public Builder adapterFolders(LoraModel value) {
            Objects.requireNonNull(value, "adapterFolders");
            if (value.model() != model) {
                throw new IllegalArgumentException("adapterFolders: the LoraModel wraps another model than the one this "
                        + "builder trains; pass the LoraModel whose model() is given to Trainer.builder");
            }
            lora = value;
            return this;
        }

        /** Test hook: runs after each file of a checkpoint is flushed, before the folder is renamed. */
        /**
         * What a NaN or infinite loss or gradient does: {@link OnNonFinite#STOP} (the default)
         * ends the run with a {@link NonFiniteException} naming the step and the tensor, the last
         * checkpoint intact; {@link OnNonFinite#SKIP} drops that step's update and goes on.
         */
        public Builder onNonFinite(OnNonFinite value) {
            onNonFinite = Objects.requireNonNull(value, "onNonFinite must be STOP or SKIP");
            return this;
        }

        /**
         * Data-parallel training: this worker is {@code reducer.rank()} of {@code reducer.worldSize()}
         * (the reducer carries both). Each worker runs the same Trainer settings on the same data and
         * computes micro-batches {@code [r·A/N, (r+1)·A/N)} of every global batch, where
         * {@code A = globalBatchSize / microBatchSize} must be a multiple of N; the reducer sums the
         * gradients once per optimizer step, before the non-finite check and clipping. Losses and
         * token counts are those of the whole global batch on every worker; only rank 0 writes
         * checkpoints, and every worker resumes from the same one. Default: one process
         * ({@link LocalGradientReducer}). The caller closes the reducer.
         */
        public Builder gradientReducer(GradientReducer value) {
            reducer = Objects.requireNonNull(value, "gradientReducer");
            return this;
        }

        /**
         * With several workers, compares a checksum of the trained tensors across them every
         * {@code steps} optimizer steps (default 100; 0 turns it off) and stops on a mismatch.
         */
        public Builder checksumEvery(long steps) {
            Checks.nonNegative("checksumEvery", steps);
            checksumEvery = steps;
            return this;
        }

        Builder checkpointWriteHook(TrainingCheckpoints.WriteHook hook) {
            checkpointHook = Objects.requireNonNull(hook, "hook");
            return this;
        }

        public Trainer build() {
            if (globalBatchSize % microBatchSize != 0) {
                throw new IllegalArgumentException("globalBatchSize (" + globalBatchSize + ") must be a multiple of "
                        + "microBatchSize (" + microBatchSize + "); e.g. globalBatchSize " + microBatchSize
                        * Math.max(1, globalBatchSize / microBatchSize));
            }
            int accumulation = globalBatchSize / microBatchSize;
            if (accumulation % reducer.worldSize() != 0) {
                throw new IllegalArgumentException("globalBatchSize / microBatchSize (" + globalBatchSize + " / "
                        + microBatchSize + " = " + accumulation + " micro-batches) must be a multiple of the "
                        + reducer.worldSize() + " workers of the gradientReducer, so that each takes the same share; e.g. "
                        + "globalBatchSize " + microBatchSize * reducer.worldSize() * Math.max(1, accumulation
                        / reducer.worldSize()));
            }
            if (checkpointEvery > 0 && checkpointDir == null) {
                throw new IllegalArgumentException("checkpointEvery (" + checkpointEvery + ") needs a checkpointDir to "
                        + "write into; set checkpointDir(path)");
            }
            if (keepLastCheckpoints > 0 && checkpointDir == null) {
                throw new IllegalArgumentException("keepLastCheckpoints (" + keepLastCheckpoints + ") needs a checkpointDir; "
                        + "set checkpointDir(path)");
            }
            return new Trainer(this);
        }

        /**
         * The settings a resumed run must share with its checkpoint, by builder method name: those
         * that change the loss curve (not listeners, validation or checkpoint options).
         */
        Map<String, Object> settings() {
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("optimizer", optimizer.name());
            s.put("learningRate", learningRate);
            s.put("minLearningRate", minLearningRate);
            s.put("weightDecay", weightDecay);
            if (optimizer == OptimizerKind.ADAMW) {
                s.put("beta1", beta1);
                s.put("beta2", beta2);
                s.put("eps", eps);
            } else {
                s.put("momentum", momentum);
            }
            s.put("warmupSteps", warmupSteps);
            s.put("maxSteps", maxSteps);
            s.put("epochs", epochs);
            s.put("globalBatchSize", globalBatchSize);
            s.put("microBatchSize", microBatchSize);
            s.put("maxGradNorm", maxGradNorm);
            s.put("seed", seed);
            s.put("shuffle", shuffle);
            s.put("padTokenId", padTokenId);
            return s;
        }

        private Builder copy() {
            Builder b = new Builder(model);
            b.lora = lora;
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
            b.activationCheckpointing = activationCheckpointing;
            b.listeners.addAll(listeners);
            b.checkpointDir = checkpointDir;
            b.checkpointEvery = checkpointEvery;
            b.keepLastCheckpoints = keepLastCheckpoints;
            b.validationData = validationData;
            b.validationEvery = validationEvery;
            b.resumeFrom = resumeFrom;
            b.stopAfterSteps = stopAfterSteps;
            b.checkpointHook = checkpointHook;
            b.onNonFinite = onNonFinite;
            b.reducer = reducer;
            b.checksumEvery = checksumEvery;
            b.memoryCheck = memoryCheck;
            b.maxHeapBytes = maxHeapBytes;
            b.machineBytes = machineBytes;
            return b;
        }

        String describe() {
            return "(optimizer=" + optimizer + ", learningRate=" + learningRate + ", minLearningRate=" + minLearningRate
                    + ", weightDecay=" + weightDecay + ", warmupSteps=" + warmupSteps + ", maxSteps=" + maxSteps
                    + ", epochs=" + epochs + ", globalBatchSize=" + globalBatchSize + ", microBatchSize=" + microBatchSize
                    + ", maxGradNorm=" + maxGradNorm + ", seed=" + seed + ", shuffle=" + shuffle
                    + ", activationCheckpointing=" + activationCheckpointing + ", memoryCheck=" + memoryCheck
                    + ", checkpointDir=" + checkpointDir + ", checkpointEvery=" + checkpointEvery + ", keepLastCheckpoints="
                    + (keepLastCheckpoints == 0 ? "all" : keepLastCheckpoints) + ", adapterFolders=" + (lora != null)
                    + ", validation=" + (validationData == null ? "none" : validationData.size() + " examples every "
                    + validationEvery + " steps") + ", resumeFrom=" + resumeFrom + ", stopAfterSteps="
                    + (stopAfterSteps == 0 ? "none" : stopAfterSteps) + (reducer.worldSize() > 1 ? ", gradientReducer="
                    + reducer + ", checksumEvery=" + checksumEvery : "") + ")";
        }

        @Override
        public String toString() {
            return "Trainer.Builder" + describe();
        }
    }
}
