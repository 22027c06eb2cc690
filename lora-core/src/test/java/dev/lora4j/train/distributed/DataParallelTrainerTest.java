package dev.lora4j.train.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.AdapterTensors;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * N workers (threads, each with its own copy of a tiny LoRA model) against one process with the
 * same global batch, seed and data order: loss curves and adapters, for both summation orders,
 * with gradient accumulation, LoRA dropout and clipping; resume; failures.
 */
class DataParallelTrainerTest {
    private static final int STEPS = 4;

    @TempDir
    Path tmp;

    /** Result of one worker: its loss curve, tokens and final trained tensors. */
    record Run(double[] losses, long tokens, float[] adapter) {
    }

    private static LoraModel lora() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(5),
                LoraConfig.rank(4).alpha(8).dropout(0.1).targets(Target.QUERY, Target.VALUE, Target.MLP));
        long seed = 900;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            TinyModels.randomize(e.getValue(), 0.05f, seed++);
        }
        return lora;
    }

    private static List<Example> data() {
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            data.add(Example.promptMasked(TinyModels.tokens(5 + rng.nextInt(6), 48, 3000 + i), 2));
        }
        return data;
    }

    /** A global batch of 8 in micro-batches of 2: 4 micro-batches per step, across epoch boundaries. */
    private static Trainer.Builder settings(LoraModel lora) {
        return Trainer.builder(lora.model()).learningRate(5e-3).warmupSteps(2).maxSteps(STEPS).globalBatchSize(8)
                .microBatchSize(2).maxGradNorm(1.0).seed(11).progressLogging(false);
    }

    private static float[] flat(LoraModel lora) {
        return AdapterTensors.flat(lora);
    }

    private static Run single() {
        LoraModel lora = lora();
        TrainerListener.TrainingResult r = settings(lora).build().fit(data());
        return new Run(r.lossPerStep(), r.tokensSeen(), flat(lora));
    }

    private static List<Run> parallel(int workers, TcpRingReducer.Order order) throws InterruptedException {
        return Workers.values(Workers.run(workers, Workers.fast(order), red -> {
            LoraModel lora = lora();
            TrainerListener.TrainingResult r = settings(lora).gradientReducer(red).checksumEvery(1).build().fit(data());
            return new Run(r.lossPerStep(), r.tokensSeen(), flat(lora));
        }));
    }

    private static double maxRelDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]) / Math.abs(a[i]));
        }
        return m;
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        return TinyModels.maxAbsDiff(a, b);
    }

    @Test
    void workersEqualOneProcess() throws InterruptedException {
        Run one = single();
        for (int workers : new int[] {2, 4}) {
            for (TcpRingReducer.Order order : workers == 2 ? TcpRingReducer.Order.values()
                    : new TcpRingReducer.Order[] {TcpRingReducer.Order.RANK_ORDER}) {
                List<Run> runs = parallel(workers, order);
                String what = workers + " workers, " + order;
                for (Run r : runs) {
                    assertArrayEquals(runs.get(0).adapter(), r.adapter(), what + ": the workers stay bit-identical");
                    assertArrayEquals(runs.get(0).losses(), r.losses(), what);
                    assertEquals(one.tokens(), r.tokens(), what + ": tokens are summed over the workers");
                }
                Run r = runs.get(0);
                assertEquals(one.losses()[0], r.losses()[0], what + ": step 1 runs on the same parameters");
                double lossDiff = maxRelDiff(one.losses(), r.losses());
                double adapterDiff = maxAbsDiff(one.adapter(), r.adapter());
                System.out.printf("%s: max relative loss difference %.3g, max adapter difference %.3g%n", what, lossDiff,
                        adapterDiff);
                if (order == TcpRingReducer.Order.RANK_ORDER && workers == 4) {
                    // one micro-batch per worker: ((g0 + g1) + g2) + g3 is the order one process accumulates in
                    assertArrayEquals(one.losses(), r.losses(), what + ": bit-exact loss curve");
                    assertArrayEquals(one.adapter(), r.adapter(), what + ": bit-exact adapter");
                } else {
                    assertTrue(lossDiff < 1e-5, what + ": loss curve within float32 summation noise, was " + lossDiff);
                    assertTrue(adapterDiff < 1e-5, what + ": adapter within float32 summation noise, was " + adapterDiff);
                }
            }
        }
    }

    @Test
    void onlyRankZeroSavesCheckpointsAndAllWorkersResumeFromThem() throws InterruptedException {
        List<Run> straight = parallel(2, TcpRingReducer.Order.RING);
        Path dir = tmp.resolve("ckpt");
        AtomicInteger savedByOthers = new AtomicInteger();
        Workers.values(Workers.run(2, Workers.fast(TcpRingReducer.Order.RING), red -> {
            LoraModel lora = lora();
            return settings(lora).gradientReducer(red).adapterFolders(lora).checkpointDir(dir).checkpointEvery(2)
                    .stopAfterSteps(3).listener(new TrainerListener() {
                        @Override
                        public void onCheckpoint(Path saved, long step) {
                            if (red.rank() != 0) {
                                savedByOthers.incrementAndGet();
                            }
                        }
                    }).build().fit(data()).steps();
        }));
        assertEquals(0, savedByOthers.get());
        assertTrue(Files.isDirectory(dir.resolve("step-000002")) && Files.isDirectory(dir.resolve("step-000003")));
        List<Run> resumed = Workers.values(Workers.run(2, Workers.fast(TcpRingReducer.Order.RING), red -> {
            LoraModel lora = lora();
            TrainerListener.TrainingResult r = settings(lora).gradientReducer(red).checksumEvery(1).resumeFrom(dir)
                    .build().fit(data());
            return new Run(r.lossPerStep(), r.tokensSeen(), flat(lora));
        }));
        for (Run r : resumed) {
            assertArrayEquals(straight.get(0).losses(), r.losses(), "the resumed loss curve is the uninterrupted one");
            assertEquals(straight.get(0).tokens(), r.tokens());
            assertArrayEquals(straight.get(0).adapter(), r.adapter(), "the resumed adapter is the uninterrupted one");
        }
        // the checkpoint holds no worker count: one process continues the 2-worker run
        LoraModel alone = lora();
        TrainerListener.TrainingResult r = settings(alone).resumeFrom(dir).build().fit(data());
        assertEquals(straight.get(0).tokens(), r.tokensSeen());
        for (int i = 0; i < 3; i++) {
            assertEquals(straight.get(0).losses()[i], r.lossPerStep()[i], "restored loss history, step " + (i + 1));
        }
        assertTrue(maxRelDiff(straight.get(0).losses(), r.lossPerStep()) < 1e-5);
        assertTrue(maxAbsDiff(straight.get(0).adapter(), flat(alone)) < 1e-5);
    }

    @Test
    void aWorkerThatDiesMidRunFailsTheOthersNamingIt() throws InterruptedException {
        TcpRingReducer.Options options = Workers.fast(TcpRingReducer.Order.RANK_ORDER).ioTimeout(Duration.ofSeconds(2));
        List<Workers.Outcome<Long>> out = Workers.run(3, options, red -> {
            LoraModel lora = lora();
            Trainer.Builder b = settings(lora).globalBatchSize(6).gradientReducer(red);
            if (red.rank() == 1) {
                b.listener(TrainerListener.onEachStep(m -> {
                    if (m.step() == 2) {
                        throw new IllegalStateException("worker 1 crashes after step 2");
                    }
                }));
            }
            return b.build().fit(data()).steps();
        });
        assertEquals("worker 1 crashes after step 2", out.get(1).error().getMessage());
        for (int r : new int[] {0, 2}) {
            UncheckedIOException e = assertInstanceOf(UncheckedIOException.class, out.get(r).error(), "rank " + r);
            assertTrue(e.getMessage().startsWith("rank " + r + ": "), e.getMessage());
        }
        // the first survivor to notice names rank 1; the other may name the survivor that stopped
        String m0 = out.get(0).error().getMessage();
        String m2 = out.get(2).error().getMessage();
        assertTrue(m0.contains("rank 1 (/127.0.0.1:") || m2.contains("rank 1 (/127.0.0.1:"), m0 + " / " + m2);
    }

    @Test
    void divergingWorkersAreStoppedNamingTheStepAndRanks() throws InterruptedException {
        List<Workers.Outcome<Long>> out = Workers.run(2, Workers.fast(TcpRingReducer.Order.RING), red -> {
            LoraModel lora = lora();
            Trainer.Builder b = settings(lora).gradientReducer(red).checksumEvery(2);
            if (red.rank() == 1) {
                Tensor a = lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values().iterator().next();
                b.listener(TrainerListener.onEachStep(m -> {
                    if (m.step() == 1) {
                        a.data()[a.intOffset()] += 1e-3f; // a silent corruption on one worker
                    }
                }));
            }
            return b.build().fit(data()).steps();
        });
        for (int r = 0; r < 2; r++) {
            IllegalStateException e = assertInstanceOf(IllegalStateException.class, out.get(r).error(), "rank " + r);
            assertTrue(e.getMessage().startsWith("the workers' trained tensors diverged at step 2 (checksums ranks [0]: "),
                    e.getMessage());
            assertTrue(e.getMessage().contains("; ranks [1]: "), e.getMessage());
        }
    }

    @Test
    void theGlobalBatchMustSplitEvenly() throws InterruptedException {
        List<Workers.Outcome<Long>> out = Workers.run(3, Workers.fast(TcpRingReducer.Order.RING), red -> {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> settings(lora()).gradientReducer(red).build());
            assertEquals("globalBatchSize / microBatchSize (8 / 2 = 4 micro-batches) must be a multiple of the 3 workers "
                    + "of the gradientReducer, so that each takes the same share; e.g. globalBatchSize 6", e.getMessage());
            return 0L;
        });
        Workers.values(out);
    }
}
