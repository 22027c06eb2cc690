package dev.lora4j.spark;

import dev.lora4j.benchmarks.TrainShape;
import dev.lora4j.benchmarks.TrainStep;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Tokens/s of {@link SparkLoraTrainer} with 1, 2 and 4 local workers ({@code local[4]}, one JVM) on
 * the benchmark shapes of {@link TrainShape} (random F32 weights, LoRA r=8 alpha 16 dropout 0.05 on
 * TrainShape's targets, AdamW lr 3e-4, weight decay 0.01, random token ids, as TrainStepBenchmark).
 * A global batch of 4 sequences in micro-batches of 1, so that 1, 2 and 4 workers compute the same
 * step. Worker counts are interleaved within each round; each figure is the median over rounds of
 * the median time between consecutive timed steps.
 *
 * <pre>
 * java -Xmx10g --add-modules jdk.incubator.vector [Spark's --add-opens] -cp ... dev.lora4j.spark.SparkThroughputBenchmark \
 *     --shape tiny --workers 1,2,4 --warmup 2 --steps 6 --rounds 3
 * </pre>
 */
public final class SparkThroughputBenchmark {
    private SparkThroughputBenchmark() {
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> o = new LinkedHashMap<>(Map.of("--shape", "tiny", "--workers", "1,2,4", "--warmup", "2",
                "--steps", "6", "--rounds", "3", "--global", "4"));
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!o.containsKey(args[i])) {
                throw new IllegalArgumentException("unknown option " + args[i] + "; options: " + o.keySet());
            }
            o.put(args[i], args[i + 1]);
        }
        TrainShape shape = TrainShape.of(o.get("--shape"));
        int[] workers = Arrays.stream(o.get("--workers").split(",")).mapToInt(Integer::parseInt).toArray();
        int warmup = Integer.parseInt(o.get("--warmup"));
        int steps = Integer.parseInt(o.get("--steps"));
        int rounds = Integer.parseInt(o.get("--rounds"));
        int global = Integer.parseInt(o.get("--global"));
        int maxWorkers = Arrays.stream(workers).max().orElse(1);

        Path dir = Files.createTempDirectory("lora4j-spark-bench");
        Path model = dir.resolve("model");
        ModelLoader.save(LlamaModel.initialize(shape.config(), 1), model, DType.F32);
        SplittableRandom rng = new SplittableRandom(7);
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < global * (warmup + steps + 1); i++) {
            rows.add(RowFactory.create(Example.unmasked(rng.ints(shape.seq(), 0, shape.config().vocabSize()).toArray())
                    .inputIds()));
        }
        SparkSession spark = SparkSession.builder().master("local[" + maxWorkers + "]").appName("lora4j-spark-bench")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
        spark.sparkContext().setLogLevel("WARN");
        Dataset<Row> data = spark.createDataFrame(rows, new StructType().add("input_ids",
                DataTypes.createArrayType(DataTypes.IntegerType)));
        LoraConfig lora = LoraConfig.rank(8).alpha(16).dropout(TrainStep.DROPOUT).seed(1).targets(shape.targets());
        long totalSteps = warmup + steps + 1L;
        TrainerSettings settings = b -> b.learningRate(TrainStep.LEARNING_RATE).weightDecay(TrainStep.WEIGHT_DECAY)
                .warmupSteps(0).maxSteps(totalSteps).globalBatchSize(global).microBatchSize(1).seed(1)
                .progressLogging(false);
        System.out.printf(Locale.ROOT, "%s; %d cores, global batch %d x %d in micro-batches of 1, %d warm-up + %d timed "
                + "steps, %d rounds%n", shape, Runtime.getRuntime().availableProcessors(), global, shape.seq(), warmup + 1,
                steps, rounds);
        Map<Integer, List<Double>> perRound = new LinkedHashMap<>();
        for (int round = 0; round < rounds; round++) {
            for (int n : workers) {
                SparkTrainingResult r = SparkLoraTrainer.builder().baseModel(model.toString()).lora(lora).trainer(settings)
                        .workers(n).output(dir.resolve("run-" + round + "-" + n).toString()).build().fitTokens(data);
                double[] timed = Arrays.copyOfRange(r.stepSeconds(), warmup, r.stepSeconds().length);
                double tokensPerS = (double) global * shape.seq() / median(timed);
                perRound.computeIfAbsent(n, k -> new ArrayList<>()).add(tokensPerS);
                System.out.printf(Locale.ROOT, "round %d, %d worker(s): %.1f tokens/s (median step %.3f s, final loss %.4f)%n",
                        round + 1, n, tokensPerS, median(timed), r.finalLoss());
            }
        }
        double base = Double.NaN;
        for (Map.Entry<Integer, List<Double>> e : perRound.entrySet()) {
            double m = median(e.getValue().stream().mapToDouble(Double::doubleValue).toArray());
            base = Double.isNaN(base) ? m : base;
            System.out.printf(Locale.ROOT, "shape=%s workers=%d tokens_per_s=%.1f (rounds %s) speedup=%.2f%n", shape.name(),
                    e.getKey(), m, e.getValue().stream().map(v -> String.format(Locale.ROOT, "%.1f", v)).toList(), m / base);
        }
        spark.stop();
    }

    private static double median(double[] values) {
        double[] s = values.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
