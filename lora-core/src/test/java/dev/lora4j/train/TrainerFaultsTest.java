package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.common.jimfs.Configuration;
import com.google.common.jimfs.Jimfs;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.data.Example;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.AdapterTensors;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.FileSystem;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** NaN / infinite losses and gradients (onNonFinite STOP and SKIP) and disk-full faults while saving. */
class TrainerFaultsTest {

    @TempDir
    Path tmp;

    private static LoraModel lora() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(5), LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.VALUE));
        long seed = 1;
        for (Tensor t : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values()) {
            TinyModels.randomize(t, 0.05f, seed++);
        }
        return lora;
    }

    /** Five examples in order; the one at {@code masked} has every label masked, which makes its loss NaN. */
    private static List<Example> data(int masked) {
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            int[] ids = TinyModels.tokens(6, 48, 100 + i);
            int[] labels = ids.clone();
            if (i == masked) {
                Arrays.fill(labels, Example.IGNORE);
            }
            data.add(new Example(ids, labels));
        }
        return data;
    }

    private static Trainer.Builder settings(LoraModel lora) {
        return Trainer.builder(lora.model()).learningRate(1e-2).warmupSteps(0).epochs(1).globalBatchSize(1).microBatchSize(1)
                .shuffle(false).seed(3);
    }

    private static float[] flat(LoraModel lora) {
        return AdapterTensors.flat(lora);
    }

    @Test
    void nanLossStopsNamingStepAndTensorWithTheLastCheckpointIntact() throws IOException {
        Path root = tmp.resolve("ckpt");
        NonFiniteException e = assertThrows(NonFiniteException.class,
                () -> settings(lora()).checkpointDir(root).checkpointEvery(1).build().fit(data(2)));
        assertEquals(2, e.step());
        assertEquals("loss", e.tensor());
        Path last = root.resolve("step-000002");
        assertTrue(e.getMessage().startsWith("training stopped: loss is NaN at step 2 (micro-batch 0); a micro-batch with every"
                + " label masked gives NaN"), e.getMessage());
        assertTrue(e.getMessage().contains("the last good checkpoint " + last + " is intact"), e.getMessage());
        assertEquals(List.of(root.resolve("step-000001"), last), TrainingCheckpoints.complete(root).stream()
                .map(TrainingCheckpoints.Saved::dir).toList());
        assertEquals(2, TrainerState.read(last.resolve(TrainingCheckpoints.STATE_FILE)).step());
        try (Stream<Path> files = Files.list(root)) {
            assertEquals(2, files.count(), "nothing of step 3 was written");
        }
    }

    @Test
    void skipLeavesTheWeightsOfANonFiniteStepUnchanged() throws IOException {
        LoraModel lora = lora();
        List<float[]> afterStep = new ArrayList<>();
        afterStep.add(flat(lora));
        Path root = tmp.resolve("skip");
        TrainerListener.TrainingResult result = settings(lora).onNonFinite(OnNonFinite.SKIP).checkpointDir(root)
                .checkpointEvery(1).listener(new TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        afterStep.add(flat(lora));
                    }
                }).build().fit(data(2));
        assertEquals(5, result.steps());
        double[] losses = result.lossPerStep();
        assertTrue(Double.isNaN(losses[2]));
        assertNotEquals(Arrays.toString(afterStep.get(1)), Arrays.toString(afterStep.get(2)), "step 1 trains");
        assertArrayEquals(afterStep.get(2), afterStep.get(3), "step 2 (NaN loss) is skipped");
        assertNotEquals(Arrays.toString(afterStep.get(3)), Arrays.toString(afterStep.get(4)), "step 3 trains again");
        for (float v : afterStep.get(5)) {
            assertTrue(Float.isFinite(v));
        }
        double[] saved = TrainerState.read(root.resolve("step-000005").resolve(TrainingCheckpoints.STATE_FILE)).lossHistory();
        assertTrue(Double.isNaN(saved[2]), "the skipped step's NaN loss is saved and read back");
    }

    @Test
    void nonFiniteGradientNamesTheTensor() {
        Tensor fine = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
        Tensor bad = Tensor.of(new float[] {1, 2, 3}, 3).requiresGrad(true);
        Autograd.accumulate(fine, Tensor.of(new float[] {0.5f, 0.25f}, 2));
        assertNull(NonFiniteGuard.gradients(List.of(fine, bad), () -> List.of("a", "b"), 7));
        Autograd.accumulate(bad, Tensor.of(new float[] {0, Float.POSITIVE_INFINITY, Float.NaN}, 3));
        NonFiniteGuard.Problem p = NonFiniteGuard.gradients(List.of(fine, bad), () -> List.of("a", "b"), 7);
        assertEquals("b", p.tensor());
        assertEquals("the gradient of b is Infinity at element 1 at step 7 (the loss was finite); lower the learning rate or"
                + " set maxGradNorm", p.description());
        NonFiniteException e = assertThrows(NonFiniteException.class, () -> new NonFiniteGuard(OnNonFinite.STOP, null).handle(p, 7));
        assertEquals("training stopped: " + p.description() + "; no checkpoint was being written (no checkpointDir)"
                + " (Trainer.builder().onNonFinite(OnNonFinite.SKIP) skips such steps instead)", e.getMessage());
        NonFiniteGuard skip = new NonFiniteGuard(OnNonFinite.SKIP, null);
        skip.handle(p, 7);
        assertEquals(1, skip.skipped());
    }

    // ---------------------------------------------------------------- disk full

    /** Writes a file that takes all but {@code leave} bytes of the in-memory disk. */
    private static void fill(FileSystem fs, long leave) throws IOException {
        FileStore store = fs.getFileStores().iterator().next();
        long free = store.getUnallocatedSpace() - leave;
        try (OutputStream out = Files.newOutputStream(fs.getPath("/filler"))) {
            byte[] block = new byte[8192];
            for (long n = 0; n + block.length <= free; n += block.length) {
                out.write(block);
            }
        }
    }

    @Test
    void diskFullWhileCheckpointingKeepsThePreviousCheckpointAndSaysSo() throws IOException {
        try (FileSystem fs = Jimfs.newFileSystem(Configuration.unix().toBuilder().setMaxSize(64L << 20).build())) {
            Path root = fs.getPath("/run/ckpt");
            LoraModel lora = lora();
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> settings(lora).checkpointDir(root)
                    .checkpointEvery(1).listener(new TrainerListener() {
                        @Override
                        public void onCheckpoint(Path dir, long step) {
                            try {
                                fill(fs, 0); // the disk is full from now on
                            } catch (IOException ex) {
                                throw new UncheckedIOException(ex);
                            }
                        }
                    }).build().fit(data(-1)));
            assertTrue(e.getMessage().contains("saving the checkpoint of step 2 into " + root + " failed: ")
                    && e.getMessage().contains("earlier checkpoints are untouched"), e.getMessage());
            assertTrue(e.getMessage().contains("out of disk space"), e.getMessage());
            assertEquals(List.of(root.resolve("step-000001")), TrainingCheckpoints.complete(root).stream()
                    .map(TrainingCheckpoints.Saved::dir).toList());
            try (Stream<Path> files = Files.list(root)) {
                assertEquals(1, files.count(), "the half-written step-000002.tmp was removed");
            }
            // the surviving checkpoint is complete: copied to a real disk, it loads
            Path copy = copyTree(root.resolve("step-000001"), tmp.resolve("step-000001"));
            assertEquals(1, TrainerState.read(copy.resolve(TrainingCheckpoints.STATE_FILE)).step());
            try (SafetensorsFile f = SafetensorsFile.open(copy.resolve(TrainingCheckpoints.TRAINABLE_FILE))) {
                assertEquals(lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).size(), f.size());
            }
        }
    }

    @Test
    void diskFullWhileSavingAnAdapterKeepsThePreviousOne() throws IOException {
        try (FileSystem fs = Jimfs.newFileSystem(Configuration.unix().toBuilder().setMaxSize(64L << 20).build())) {
            Path dir = fs.getPath("/adapter");
            LoraModel first = lora();
            first.saveAdapter(dir);
            byte[] weights = Files.readAllBytes(dir.resolve("adapter_model.safetensors"));
            byte[] config = Files.readAllBytes(dir.resolve("adapter_config.json"));
            LoraModel second = LoraModel.wrap(TinyModels.model(5), LoraConfig.rank(2).alpha(4).targets(Target.QUERY));
            fill(fs, 0);
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> second.saveAdapter(dir));
            assertTrue(e.getMessage().startsWith("writing adapter folder " + dir + " failed: ")
                    && e.getMessage().endsWith("; the adapter that was there before, if any, is untouched"), e.getMessage());
            assertArrayEquals(weights, Files.readAllBytes(dir.resolve("adapter_model.safetensors")));
            assertArrayEquals(config, Files.readAllBytes(dir.resolve("adapter_config.json")));
            try (Stream<Path> files = Files.list(dir)) {
                assertEquals(2, files.count(), "no temporary file is left");
            }
            Path copy = copyTree(dir, tmp.resolve("adapter"));
            LoraModel loaded = LoraModel.load(TinyModels.model(5), copy);
            assertArrayEquals(flat(first), flat(loaded), "the earlier adapter loads");
        }
    }

    private static Path copyTree(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (Files.isDirectory(f)) {
                    copyTree(f, to.resolve(f.getFileName().toString()));
                } else {
                    Files.write(to.resolve(f.getFileName().toString()), Files.readAllBytes(f));
                }
            }
        }
        return to;
    }
}
