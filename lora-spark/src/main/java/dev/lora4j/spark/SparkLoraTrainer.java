package dev.lora4j.spark;

import dev.lora4j.lora.LoraConfig;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.distributed.GradientReducer;
import dev.lora4j.train.distributed.TcpRingReducer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

/**
 * Data-parallel LoRA / QLoRA training on Apache Spark, with the result of one process.
 *
 * <p>{@link #fitTokens} (a Dataset of token rows) or {@link #fitInstructions} (a Dataset of
 * instruction rows) runs one barrier stage of N tasks. The tasks exchange their ring addresses with
 * {@code BarrierTaskContext.allGather}, join a {@link TcpRingReducer}, and pass every row round the
 * ring, so that each worker holds the whole training set in the Dataset's order (rows numbered by
 * {@code zipWithIndex}). Each worker then loads the base model from {@link Builder#baseModel} (a
 * path every executor can read; 4-bit with {@link Builder#quantize}), wraps it with the same
 * {@link LoraConfig}, applies the same {@link TrainerSettings} and calls {@link Trainer#fit}: worker
 * r of N computes micro-batches r·A/N to (r+1)·A/N − 1 of each global batch of A micro-batches,
 * the ring sums the adapter gradients once per step, and every worker takes the same optimizer
 * step. Rank 0 writes the checkpoints ({@code output/checkpoints}) and, when the run completes,
 * the adapter as a PEFT folder ({@code output/adapter}).
 *
 * <pre>{@code
 * SparkTrainingResult r = SparkLoraTrainer.builder()
 *     .baseModel("/mnt/models/SmolLM2-135M")          // the same path on every executor
 *     .lora(LoraConfig.rank(8).alpha(16).targets(Target.ALL))
 *     .trainer(b -> b.learningRate(2e-4).globalBatchSize(16).microBatchSize(2).epochs(1).checkpointEvery(100))
 *     .workers(4)
 *     .output("/mnt/runs/smollm2-alpaca")             // shared: checkpoints, adapter
 *     .resume(true)                                    // continue from the newest checkpoint, if any
 *     .build()
 *     .fitInstructions(spark.read().json("/mnt/data/alpaca.jsonl"));
 * }</pre>
 *
 * <p>Equal results: the data order, dropout masks and optimizer steps are those of one process
 * with the same settings; only the summation order of the gradients differs, and with
 * {@link TcpRingReducer.Order#RANK_ORDER} (the default) and one micro-batch per worker per step
 * the run equals one process bit for bit. A task that fails fails the barrier stage (and the job)
 * with that task's error; a re-run with {@code resume(true)} continues from the last checkpoint.
 * Every {@code checksumEvery} steps (a Trainer setting, default 100) the workers compare a checksum
 * of their adapters and stop on a mismatch.
 *
 * <p>The stage needs N free task slots at once (Spark's barrier scheduling), e.g. {@code local[4]}
 * or 4 executors with one task slot each. On a cluster Spark retries a failed barrier stage
 * ({@code spark.task.maxFailures}); with {@code resume(true)} each retry continues from the newest
 * checkpoint, without it a retry fails at once, pointing to the first attempt's error.
 */
public final class SparkLoraTrainer {
    /** Where rank 0 writes checkpoints, under {@link Builder#output}. */
    public static final String CHECKPOINT_DIR = "checkpoints";
    /** Where rank 0 saves the trained adapter (a PEFT folder), under {@link Builder#output}. */
    public static final String ADAPTER_DIR = "adapter";

    private final Builder config;

    private SparkLoraTrainer(Builder b) {
        this.config = b.copy();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding these settings. */
    public Builder toBuilder() {
        return config.copy();
    }

    /**
     * Trains on token rows: {@code input_ids} array&lt;int&gt; and an optional {@code labels}
     * array&lt;int&gt; aligned with it (-100 for unscored tokens; without the column every token is
     * scored), in Hugging Face's causal-LM convention. Other columns are ignored.
     *
     * @throws IllegalArgumentException if a column is missing or has another type (before any job runs)
     * @throws org.apache.spark.SparkException if a worker fails; its message carries the worker's error
     */
    public SparkTrainingResult fitTokens(Dataset<Row> rows) {
        return fit(rows, Records.Kind.TOKENS);
    }

    /**
     * Trains on instruction rows: string columns {@code instruction}, {@code output} and an
     * optional {@code input} (Stanford Alpaca's shape), tokenized on every worker with the base
     * model's tokenizer and {@link Builder#instructions} settings, as {@code
     * InstructionDataset.encode} does in one process.
     *
     * @throws IllegalArgumentException if a column is missing or has another type (before any job runs)
     * @throws org.apache.spark.SparkException if a worker fails; its message carries the worker's error
     */
    public SparkTrainingResult fitInstructions(Dataset<Row> rows) {
        return fit(rows, Records.Kind.INSTRUCTIONS);
    }

    private SparkTrainingResult fit(Dataset<Row> rows, Records.Kind kind) {
        Objects.requireNonNull(rows, "rows");
        List<String> columns = Records.columns(rows.schema(), kind);
        SparkSession spark = rows.sparkSession();
        int workers = config.workers > 0 ? config.workers : spark.sparkContext().defaultParallelism();
        config.checkTrainerSettings(workers);
        BarrierWorker.Job job = new BarrierWorker.Job(config.baseModel, config.quantize == null ? null
                : config.quantize.toString(), config.lora, config.settings, kind, config.instructions, config.hook,
                config.output, config.resume, config.connectTimeout.toMillis(), config.ioTimeout.toMillis(),
                config.chunkBytes, config.order);
        JavaRDD<Records.Indexed> indexed = index(rows.select(columns.stream().map(functions::col).toArray(Column[]::new)),
                kind);
        ClassTag<SparkTrainingResult> tag = ClassTag$.MODULE$.apply(SparkTrainingResult.class);
        RDD<SparkTrainingResult> stage = indexed.repartition(workers).rdd().barrier()
                .mapPartitions(new BarrierWorker(job), false, tag);
        spark.sparkContext().setJobDescription("lora4j: LoRA training on " + workers + " workers into " + config.output);
        List<SparkTrainingResult> results;
        try {
            results = new JavaRDD<>(stage, tag).collect();
        } finally {
            spark.sparkContext().setJobDescription(null);
        }
        SparkTrainingResult first = results.get(0);
        for (int r = 1; r < results.size(); r++) {
            if (!Arrays.equals(first.lossPerStep(), results.get(r).lossPerStep())) {
                throw new IllegalStateException("worker " + r + " reports another loss curve than worker 0 ("
                        + Arrays.toString(results.get(r).lossPerStep()) + " vs " + Arrays.toString(first.lossPerStep())
                        + "); the workers diverged: resume from the last checkpoint");
            }
        }
        return first;
    }

    /** Rows numbered in the Dataset's order and encoded; static, so that the closure holds no trainer. */
    private static JavaRDD<Records.Indexed> index(Dataset<Row> selected, Records.Kind kind) {
        return selected.javaRDD().zipWithIndex().map(t -> new Records.Indexed(t._2(), Records.encode(t._1(), kind, t._2())));
    }

    @Override
    public String toString() {
        return "SparkLoraTrainer(" + config.describe() + ")";
    }

    /** Settings of a run; every setter checks its value at once. */
    public static final class Builder {
        private String baseModel;
        private QuantConfig quantize;
        private LoraConfig lora = LoraConfig.defaults();
        private TrainerSettings settings = TrainerSettings.defaults();
        private InstructionSettings instructions = InstructionSettings.defaults();
        private WorkerHook hook;
        private int workers;
        private String output;
        private boolean resume;
        private Duration connectTimeout = TcpRingReducer.Options.defaults().connectTimeout();
        private Duration ioTimeout = TcpRingReducer.Options.defaults().ioTimeout();
        private int chunkBytes = TcpRingReducer.Options.defaults().chunkBytes();
        private TcpRingReducer.Order order = TcpRingReducer.Options.defaults().order();

        private Builder() {
        }

        /**
         * The base model folder (Hugging Face safetensors, or a 4-bit folder of lora-quant), at a
         * path every executor can read: a shared file system, or the name of a folder shipped with
         * {@code SparkContext.addFile(folder, true)}. Required.
         */
        public Builder baseModel(String path) {
            if (path == null || path.isBlank()) {
                throw new IllegalArgumentException("baseModel must be a folder path, was " + (path == null ? "null" : "\""
                        + path + "\"") + "; e.g. /mnt/models/SmolLM2-135M");
            }
            baseModel = path;
            return this;
        }

        /** QLoRA: quantize the frozen base to 4 bits when each worker loads it, e.g. "nf4-dq" or "nf4@128". */
        public Builder quantize(String type) {
            quantize = QuantConfig.parse(Objects.requireNonNull(type, "quantize"));
            return this;
        }

        /** The LoRA adapter to train (default {@link LoraConfig#defaults()}); its seed makes every worker's initialisation the same. */
        public Builder lora(LoraConfig value) {
            lora = Objects.requireNonNull(value, "lora");
            return this;
        }

        /**
         * The Trainer settings, applied on every worker as in one process (default: the Trainer's
         * defaults). The worker sets the gradient reducer, the adapter folders and the checkpoint
         * folder ({@code output/checkpoints}) after them; {@code checkpointEvery} and the rest are yours.
         */
        public Builder trainer(TrainerSettings value) {
            settings = Objects.requireNonNull(value, "trainer");
            return this;
        }

        /** How {@link #fitInstructions} tokenizes (prompt style, maximum length, ...); default: InstructionDataset's defaults. */
        public Builder instructions(InstructionSettings value) {
            instructions = Objects.requireNonNull(value, "instructions");
            return this;
        }

        /** Called on every worker just before training (e.g. to add a listener on rank 0); default none. */
        public Builder workerHook(WorkerHook value) {
            hook = Objects.requireNonNull(value, "workerHook");
            return this;
        }

        /**
         * Number of workers (barrier tasks), each holding a whole copy of the model; default: the
         * SparkContext's default parallelism. globalBatchSize / microBatchSize must be a multiple of it.
         */
        public Builder workers(int value) {
            if (value < 1) {
                throw new IllegalArgumentException("workers must be >= 1, was " + value + "; e.g. the number of executors");
            }
            workers = value;
            return this;
        }

        /** The run's folder, writable by every executor: rank 0 writes checkpoints/ and adapter/ into it. Required. */
        public Builder output(String path) {
            if (path == null || path.isBlank()) {
                throw new IllegalArgumentException("output must be a folder path, was " + (path == null ? "null" : "\""
                        + path + "\"") + "; e.g. /mnt/runs/run1 on a file system every executor shares");
            }
            output = path;
            return this;
        }

        /** Continue from the newest complete checkpoint in output/checkpoints, if there is one (default false). */
        public Builder resume(boolean value) {
            resume = value;
            return this;
        }

        /** How the ring sums gradients (default {@link TcpRingReducer.Order#RANK_ORDER}, reproducible). */
        public Builder ringOrder(TcpRingReducer.Order value) {
            order = Objects.requireNonNull(value, "ringOrder");
            return this;
        }

        /** How long a worker tries to reach its ring neighbours (default 60 s). */
        public Builder connectTimeout(Duration value) {
            connectTimeout = ringOptions().connectTimeout(value).connectTimeout();
            return this;
        }

        /** How long a ring operation waits for a silent peer before failing (default 120 s). */
        public Builder ioTimeout(Duration value) {
            ioTimeout = ringOptions().ioTimeout(value).ioTimeout();
            return this;
        }

        /** Largest frame on the ring, a multiple of 4 (default 1 MiB). */
        public Builder chunkBytes(int value) {
            chunkBytes = ringOptions().chunkBytes(value).chunkBytes();
            return this;
        }

        private TcpRingReducer.Options ringOptions() {
            return new TcpRingReducer.Options(connectTimeout, ioTimeout, chunkBytes, order);
        }

        /**
         * @throws IllegalArgumentException if baseModel or output is missing, or the Trainer
         *     settings are invalid (for the given number of workers, when set)
         */
        public SparkLoraTrainer build() {
            if (baseModel == null) {
                throw new IllegalArgumentException("baseModel is not set; call baseModel(path) with a folder every "
                        + "executor can read");
            }
            if (output == null) {
                throw new IllegalArgumentException("output is not set; call output(path) with a folder every executor "
                        + "can write (checkpoints and the adapter go there)");
            }
            checkTrainerSettings(Math.max(1, workers));
            return new SparkLoraTrainer(this);
        }

        /**
         * Applies the Trainer settings to a builder over a shape-only model and builds it, so that
         * a bad setting (or a global batch that N workers cannot share) fails on the driver
         * before any task starts.
         */
        void checkTrainerSettings(int n) {
            LlamaConfig shape = LlamaConfig.builder().modelType("llama").vocabSize(8).hiddenSize(8).intermediateSize(8)
                    .numHiddenLayers(1).numAttentionHeads(1).numKeyValueHeads(1).maxPositionEmbeddings(8).rmsNormEps(1e-5)
                    .ropeTheta(10000).build();
            Trainer.Builder probe = Trainer.builder(LlamaModel.meta(shape))
                    .parameters(List.of(Tensor.zeros(1).requiresGrad(true)));
            settings.configure(probe);
            probe.gradientReducer(new WorldOf(n)).checkpointDir(Path.of(output == null ? "." : output, CHECKPOINT_DIR))
                    .progressLogging(false).build();
        }

        Builder copy() {
            Builder b = new Builder();
            b.baseModel = baseModel;
            b.quantize = quantize;
            b.lora = lora;
            b.settings = settings;
            b.instructions = instructions;
            b.hook = hook;
            b.workers = workers;
            b.output = output;
            b.resume = resume;
            b.connectTimeout = connectTimeout;
            b.ioTimeout = ioTimeout;
            b.chunkBytes = chunkBytes;
            b.order = order;
            return b;
        }

        String describe() {
            return "baseModel=" + baseModel + ", quantize=" + (quantize == null ? "none" : quantize) + ", lora=" + lora
                    + ", workers=" + (workers == 0 ? "defaultParallelism" : workers) + ", output=" + output + ", resume="
                    + resume + ", ring=" + ringOptions() + (hook == null ? "" : ", workerHook=" + hook);
        }

        @Override
        public String toString() {
            return "SparkLoraTrainer.Builder(" + describe() + ")";
        }
    }

    /** World size only, for checking Trainer settings on the driver; never reduces anything. */
    private record WorldOf(int worldSize) implements GradientReducer {
        @Override
        public int rank() {
            return 0;
        }

        @Override
        public void sum(float[] values) {
            throw new IllegalStateException("WorldOf only checks Trainer settings on the driver");
        }

        @Override
        public byte[][] allGather(byte[] mine) {
            throw new IllegalStateException("WorldOf only checks Trainer settings on the driver");
        }

        @Override
        public void close() {
        }
    }
}
