package dev.lora4j.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.SparkException;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real Spark in local[4] mode (one SparkSession for the class): four workers, and resuming a failed run. */
class SparkLoraTrainerLocal4Test {
    private static Path model;
    private static SparkSession spark;

    @TempDir
    Path tmp;

    @BeforeAll
    static void start() {
        model = SparkRuns.model();
        spark = SparkRuns.session("local[4]");
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    @Test
    void fourWorkersEqualOneProcessBitForBit() {
        List<Example> data = SparkRuns.examples(14);
        TrainerSettings settings = SparkRuns.settings(4);
        SparkRuns.Reference one = SparkRuns.single(model, settings, data, tmp.resolve("single"));
        SparkTrainingResult r = SparkLoraTrainer.builder().baseModel(model.toString()).lora(SparkRuns.lora())
                .trainer(settings).workers(4).output(tmp.resolve("run").toString()).build()
                .fitTokens(SparkRuns.tokenRows(spark, data));
        assertEquals(4, r.workers());
        assertArrayEquals(one.losses(), r.lossPerStep(), "4 workers, RANK_ORDER, one micro-batch each: bit-exact");
        assertEquals(one.tokens(), r.tokensSeen());
        assertArrayEquals(one.adapter(), SparkRuns.adapter(Path.of(r.adapterDir())));
    }

    @Test
    void aRerunResumesFromTheLastCheckpointOfAFailedRun() {
        List<Example> data = SparkRuns.examples(14);
        Dataset<Row> rows = SparkRuns.tokenRows(spark, data);
        TrainerSettings base = SparkRuns.settings(4);
        TrainerSettings checkpointed = b -> {
            base.configure(b);
            b.checkpointEvery(1);
        };
        SparkTrainingResult straight = SparkLoraTrainer.builder().baseModel(model.toString()).lora(SparkRuns.lora())
                .trainer(checkpointed).workers(4).output(tmp.resolve("straight").toString()).build().fitTokens(rows);

        SparkLoraTrainer.Builder run = SparkLoraTrainer.builder().baseModel(model.toString()).lora(SparkRuns.lora())
                .trainer(checkpointed).workers(4).output(tmp.resolve("run").toString());
        WorkerHook crashAtStep3 = (rank, workers, lora, trainer) -> {
            if (rank == 2) {
                trainer.listener(TrainerListener.onEachStep(m -> {
                    if (m.step() == 3) {
                        throw new IllegalStateException("worker 2 lost its executor at step 3");
                    }
                }));
            }
        };
        SparkException e = assertThrows(SparkException.class, () -> run.build().toBuilder().workerHook(crashAtStep3).build()
                .fitTokens(rows));
        assertTrue(e.getMessage().contains("worker 2 lost its executor at step 3"), e.getMessage());
        Path checkpoints = tmp.resolve("run").resolve(SparkLoraTrainer.CHECKPOINT_DIR);
        assertTrue(Trainer.latestCheckpoint(checkpoints).isPresent(), "rank 0 checkpointed steps 1 and 2");
        assertFalse(Files.exists(tmp.resolve("run/adapter")));

        // a new run over the same folder without resume refuses to overwrite the checkpoints
        SparkException refused = assertThrows(SparkException.class, () -> run.build().fitTokens(rows));
        assertTrue(refused.getMessage().contains("already holds checkpoint(s)"), refused.getMessage());

        SparkTrainingResult resumed = run.resume(true).build().fitTokens(rows);
        assertTrue(resumed.completed());
        assertArrayEquals(straight.lossPerStep(), resumed.lossPerStep(), "the resumed loss curve is the uninterrupted one");
        assertEquals(straight.tokensSeen(), resumed.tokensSeen());
        assertArrayEquals(SparkRuns.adapter(Path.of(straight.adapterDir())), SparkRuns.adapter(Path.of(resumed.adapterDir())),
                "the resumed adapter is the uninterrupted one");
        assertEquals(SparkRuns.STEPS - 1, straight.stepSeconds().length, "wall time between consecutive steps");
    }
}
