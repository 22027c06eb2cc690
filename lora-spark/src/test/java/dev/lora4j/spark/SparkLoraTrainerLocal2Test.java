package dev.lora4j.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.train.TrainerListener;
import dev.lora4j.train.distributed.TcpRingReducer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkException;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real Spark in local[2] mode (one SparkSession for the class): two workers against one process,
 * instruction rows, a failing task, diverging workers and bad input.
 */
class SparkLoraTrainerLocal2Test {
    private static Path model;
    private static SparkSession spark;

    @TempDir
    Path tmp;

    @BeforeAll
    static void start() {
        model = SparkRuns.model();
        spark = SparkRuns.session("local[2]");
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private SparkLoraTrainer.Builder trainer(String output, TrainerSettings settings) {
        return SparkLoraTrainer.builder().baseModel(model.toString()).lora(SparkRuns.lora()).trainer(settings).workers(2)
                .output(tmp.resolve(output).toString());
    }

    @Test
    void twoWorkersEqualOneProcessBitForBitInRankOrderAndWithinTheBoundInRingOrder() {
        List<Example> data = SparkRuns.examples(12);
        Dataset<Row> rows = SparkRuns.tokenRows(spark, data);

        // one micro-batch per worker per step (A = N = 2), rank order: the same additions as one process
        TrainerSettings two = SparkRuns.settings(2);
        SparkRuns.Reference one = SparkRuns.single(model, two, data, tmp.resolve("single"));
        SparkTrainingResult r = trainer("rank-order", two).build().fitTokens(rows);
        assertEquals(2, r.workers());
        assertEquals(data.size(), r.examples());
        assertTrue(r.completed(), r.toString());
        assertArrayEquals(one.losses(), r.lossPerStep(), "2 workers, RANK_ORDER: bit-exact loss curve");
        assertEquals(one.tokens(), r.tokensSeen(), "tokens are summed over the workers");
        assertEquals(tmp.resolve("rank-order/adapter").toString(), r.adapterDir());
        assertArrayEquals(one.adapter(), SparkRuns.adapter(Path.of(r.adapterDir())), "2 workers, RANK_ORDER: bit-exact adapter");

        // two micro-batches per worker, ring order: each worker's partial sum re-associates the float32 additions
        TrainerSettings four = SparkRuns.settings(4);
        SparkRuns.Reference one4 = SparkRuns.single(model, four, data, tmp.resolve("single4"));
        SparkTrainingResult ring = trainer("ring", four).ringOrder(TcpRingReducer.Order.RING).build().fitTokens(rows);
        double lossDiff = SparkRuns.maxRelDiff(one4.losses(), ring.lossPerStep());
        double adapterDiff = SparkRuns.maxAbsDiff(one4.adapter(), SparkRuns.adapter(Path.of(ring.adapterDir())));
        System.out.printf("local[2], 2 workers, RING, 2 micro-batches each: max relative loss difference %.3g, "
                + "max adapter difference %.3g%n", lossDiff, adapterDiff);
        assertEquals(one4.losses()[0], ring.lossPerStep()[0], "step 1 runs on the same parameters");
        assertTrue(lossDiff < 1e-5, "loss curve within float32 summation noise, was " + lossDiff);
        assertTrue(adapterDiff < 1e-5, "adapter within float32 summation noise, was " + adapterDiff);
    }

    @Test
    void qloraWorkersQuantizeTheBaseAsOneProcessDoes() {
        List<Example> data = SparkRuns.examples(8);
        TrainerSettings settings = SparkRuns.settings(2);
        SparkRuns.Reference one = SparkRuns.single(model, "nf4", settings, data, tmp.resolve("single"));
        SparkTrainingResult r = trainer("qlora", settings).quantize("nf4").build().fitTokens(SparkRuns.tokenRows(spark, data));
        assertArrayEquals(one.losses(), r.lossPerStep(), "QLoRA, 2 workers: bit-exact loss curve");
        assertArrayEquals(one.adapter(), SparkRuns.adapter(Path.of(r.adapterDir())), "QLoRA, 2 workers: bit-exact adapter");
        SparkRuns.Reference full = SparkRuns.single(model, settings, data, tmp.resolve("full"));
        assertTrue(full.losses()[0] != r.lossPerStep()[0], "the 4-bit base gives another loss than the F32 one");
    }

    @Test
    void instructionRowsAreTokenizedOnTheWorkersAsOneProcessDoes() throws Exception {
        List<InstructionRecord> records = new ArrayList<>();
        String[] words = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named", "Lily"};
        for (int i = 0; i < 8; i++) {
            records.add(new InstructionRecord("Tell a story about " + words[i], i % 3 == 0 ? "" : words[i + 1] + " " + words[i + 2],
                    String.join(" ", words).substring(0, 10 + 3 * i) + "."));
        }
        StructType schema = new StructType().add("instruction", DataTypes.StringType).add("input", DataTypes.StringType)
                .add("output", DataTypes.StringType);
        List<Row> rows = new ArrayList<>();
        for (InstructionRecord rec : records) {
            rows.add(RowFactory.create(rec.instruction(), rec.input().isEmpty() ? null : rec.input(), rec.output()));
        }
        InstructionSettings tokenization = b -> b.maxLength(48);
        InstructionDataset.Builder local = InstructionDataset.builder(HfTokenizer.load(model));
        tokenization.configure(local);
        List<Example> encoded = local.build().encode(records).examples();

        TrainerSettings settings = SparkRuns.settings(2);
        SparkRuns.Reference one = SparkRuns.single(model, settings, encoded, tmp.resolve("single"));
        SparkTrainingResult r = trainer("instructions", settings).instructions(tokenization).build()
                .fitInstructions(spark.createDataFrame(rows, schema));
        assertEquals(records.size(), r.examples());
        assertArrayEquals(one.losses(), r.lossPerStep());
        assertArrayEquals(one.adapter(), SparkRuns.adapter(Path.of(r.adapterDir())));
    }

    @Test
    void sparkFinetuneTrainsFromAJsonLinesFile() throws Exception {
        Path data = tmp.resolve("alpaca.jsonl");
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < 6; i++) {
            lines.append("{\"instruction\": \"Tell story ").append(i).append("\", \"input\": \"\", \"output\": \"Once upon a time ")
                    .append("there was a cat number ").append(i).append(".\"}\n");
        }
        Files.writeString(data, lines);
        Path out = tmp.resolve("cli");
        SparkTrainingResult r = SparkFinetune.run(spark, new String[] {"--model", model.toString(), "--data", data.toString(),
                "--output", out.toString(), "--workers", "2", "--rank", "4", "--targets", "q_proj,v_proj", "--global-batch", "2",
                "--micro-batch", "1", "--max-steps", "2", "--lr", "1e-3", "--max-length", "48"});
        assertTrue(r.completed(), r.toString());
        assertEquals(6, r.examples());
        assertTrue(Files.isRegularFile(out.resolve("adapter/adapter_config.json")));
        assertTrue(Files.readString(out.resolve("adapter/adapter_config.json")).contains("\"r\": 4"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SparkFinetune.run(spark, new String[] {"--model", model.toString(), "--ouput", "x"}));
        assertTrue(e.getMessage().startsWith("unknown option --ouput; options: [--model, --data, --output"), e.getMessage());
    }

    @Test
    void aFailingTaskFailsTheStageWithTheWorkersError() {
        List<Example> data = new ArrayList<>(SparkRuns.examples(8));
        // a bad record: token id 9999 in a 512-token vocabulary
        Dataset<Row> bad = SparkRuns.tokenRows(spark, data).union(spark.createDataFrame(
                List.of(RowFactory.create(new int[] {1, 9999, 3}, null, "bad")), SparkRuns.tokenSchema()));
        SparkException e = assertThrows(SparkException.class, () -> trainer("bad", SparkRuns.settings(2)).build().fitTokens(bad));
        assertTrue(e.getMessage().contains("row 8 of the training Dataset holds token id 9999 in input_ids at position 1, "
                + "outside the model's vocabulary of 512"), e.getMessage());
        assertTrue(e.getMessage().contains("barrier"), "the barrier stage failed: " + e.getMessage());

        // a worker that crashes mid-run: the stage fails with its message, not with its peer's ring error
        WorkerHook crash = (rank, workers, lora, trainer) -> {
            if (rank == 1) {
                trainer.listener(TrainerListener.onEachStep(m -> {
                    if (m.step() == 2) {
                        throw new IllegalStateException("worker 1 crashes after step 2");
                    }
                }));
            }
        };
        SparkException crashed = assertThrows(SparkException.class, () -> trainer("crash", SparkRuns.settings(2))
                .workerHook(crash).build().fitTokens(SparkRuns.tokenRows(spark, data)));
        assertTrue(crashed.getMessage().contains("worker 1 crashes after step 2"), crashed.getMessage());
        assertFalse(Files.exists(tmp.resolve("crash/adapter")), "no adapter from a failed run");
    }

    @Test
    void divergingWorkersAreStoppedByTheAdapterChecksum() {
        // rank 1 starts from another adapter, as a worker with a different LoRA seed would
        WorkerHook perturb = (rank, workers, lora, trainer) -> {
            if (rank == 1) {
                Map.Entry<String, Tensor> first = lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet().iterator().next();
                Tensor t = first.getValue();
                float[] v = t.toFloatArray();
                v[0] += 1e-3f;
                t.copyFrom(Tensor.of(v, t.shape()));
            }
        };
        SparkException e = assertThrows(SparkException.class, () -> trainer("diverged", SparkRuns.settings(2))
                .workerHook(perturb).build().fitTokens(SparkRuns.tokenRows(spark, SparkRuns.examples(8))));
        assertTrue(e.getMessage().contains("the workers' trained tensors diverged at step 1"), e.getMessage());
    }

    @Test
    void badInputFailsOnTheDriverBeforeAnyTaskStarts() {
        Dataset<Row> noIds = spark.createDataFrame(List.of(RowFactory.create("x")),
                new StructType().add("text", DataTypes.StringType));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> trainer("x", SparkRuns.settings(2)).build().fitTokens(noIds));
        assertTrue(e.getMessage().startsWith("the training Dataset has no column 'input_ids' (array<int>)"), e.getMessage());

        Dataset<Row> longs = spark.createDataFrame(List.of(RowFactory.create(new long[] {1L, 2L})),
                new StructType().add("input_ids", DataTypes.createArrayType(DataTypes.LongType)));
        e = assertThrows(IllegalArgumentException.class, () -> trainer("x", SparkRuns.settings(2)).build().fitTokens(longs));
        assertTrue(e.getMessage().contains("column 'input_ids' of the training Dataset must be array<int>, was array<bigint>"),
                e.getMessage());

        // three micro-batches cannot be shared by two workers
        e = assertThrows(IllegalArgumentException.class, () -> trainer("x", SparkRuns.settings(3)).build());
        assertTrue(e.getMessage().contains("must be a multiple of the 2 workers"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SparkLoraTrainer.builder().workers(0));
        assertEquals("workers must be >= 1, was 0; e.g. the number of executors", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SparkLoraTrainer.builder().output("/x").build());
        assertTrue(e.getMessage().startsWith("baseModel is not set"), e.getMessage());
    }
}
