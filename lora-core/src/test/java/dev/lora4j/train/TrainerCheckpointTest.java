package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.data.Example;
import dev.lora4j.eval.LossEvaluator;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints and resume: an interrupted and resumed run equals the uninterrupted one bit for bit
 * (LoRA dropout, shuffling across epoch boundaries, gradient accumulation, warmup + cosine, AdamW
 * and SGD); atomic saves; settings checks; validation; keepLast.
 */
class TrainerCheckpointTest {
    private static final int DATA = 10;
    /** 3 epochs of ceil(10 / 4) steps; steps cross epoch boundaries mid-batch. */
    private static final int TOTAL = 9;

    @TempDir
    Path tmp;

    /** A LoRA model whose B is random too; {@code bSeed} varies the starting point. */
    private static LoraModel lora(long bSeed) {
        LoraModel lora = LoraModel.wrap(TinyModels.model(5),
                LoraConfig.rank(4).alpha(8).dropout(0.2).targets(Target.QUERY, Target.VALUE, Target.MLP));
        long seed = bSeed;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            TinyModels.randomize(e.getValue(), 0.05f, seed++);
        }
        return lora;
    }

    private static List<Example> data(int count, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            data.add(Example.promptMasked(TinyModels.tokens(5 + rng.nextInt(6), 48, seed * 1000 + i), 2));
        }
        return data;
    }

    private static Trainer.Builder settings(LoraModel lora, Trainer.OptimizerKind kind) {
        return Trainer.builder(lora.model()).optimizer(kind).learningRate(kind == Trainer.OptimizerKind.SGD ? 0.05 : 5e-3)
                .warmupSteps(2).minLearningRate(1e-4).epochs(3).globalBatchSize(4).microBatchSize(2).seed(11).shuffle(true);
    }

    private static float[] flat(LoraModel lora) {
        List<Float> values = new ArrayList<>();
        for (Tensor t : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values()) {
            for (float v : t.toFloatArray()) {
                values.add(v);
            }
        }
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }

    private static List<String> folders(Path root) throws IOException {
        try (Stream<Path> s = Files.list(root)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void resumedRunEqualsTheUninterruptedOneBitForBit() throws IOException {
        List<Example> data = data(DATA, 3);
        for (Trainer.OptimizerKind kind : Trainer.OptimizerKind.values()) {
            LoraModel straight = lora(900);
            TrainerListener.TrainingResult full = settings(straight, kind).build().fit(data);
            assertEquals(TOTAL, full.steps());
            assertTrue(full.completed());

            Path root = tmp.resolve(kind.name());
            LoraModel first = lora(900);
            List<Long> saved = new ArrayList<>();
            TrainerListener.TrainingResult part = settings(first, kind).adapterFolders(first).checkpointDir(root)
                    .checkpointEvery(2).stopAfterSteps(5).listener(new TrainerListener() {
                        @Override
                        public void onCheckpoint(Path dir, long step) {
                            assertTrue(Files.isDirectory(dir), "complete before the callback");
                            saved.add(step);
                        }
                    }).build().fit(data);
            assertEquals(5, part.steps());
            assertFalse(part.completed());
            assertEquals(List.of(2L, 4L, 5L), saved, "every 2 steps and where the run stopped");
            assertEquals(List.of("step-000002", "step-000004", "step-000005"), folders(root));
            for (int i = 0; i < 5; i++) {
                assertEquals(full.lossPerStep()[i], part.lossPerStep()[i], kind + " step " + (i + 1));
            }

            // the state of step 4: 16 examples drawn = epoch 1, position 6
            Path step4 = root.resolve("step-000004");
            JsonNode state = new ObjectMapper().readTree(step4.resolve("trainer_state.json").toFile());
            assertEquals(4, state.get("step").asLong());
            assertEquals(TOTAL, state.get("total_steps").asLong());
            assertEquals(1, state.get("epoch").asLong());
            assertEquals(6, state.get("position_in_epoch").asLong());
            assertEquals(DATA, state.get("dataset_size").asInt());
            assertEquals(11, state.get("seed").asLong());
            assertEquals(4, state.get("loss_history").size());
            assertEquals(kind.name(), state.get("settings").get("optimizer").asText());
            // the adapter folder is a PEFT adapter with the trained values of step 4
            LoraModel reloaded = LoraModel.load(TinyModels.model(5), step4.resolve("adapter"));
            try (SafetensorsFile trainable = SafetensorsFile.open(step4.resolve("trainable.safetensors"))) {
                for (Map.Entry<String, Tensor> e : reloaded.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
                    assertArrayEquals(trainable.f32(e.getKey()).toFloatArray(), e.getValue().toFloatArray(), e.getKey());
                }
            }

            // a fresh model with other starting values, resumed from the older checkpoint (mid-epoch)
            LoraModel resumed = lora(5000);
            TrainerListener.TrainingResult rest = settings(resumed, kind).resumeFrom(step4).build().fit(data);
            assertArrayEquals(full.lossPerStep(), rest.lossPerStep(), kind + " loss curve");
            assertEquals(full.tokensSeen(), rest.tokensSeen());
            assertArrayEquals(flat(straight), flat(resumed), kind + " final adapter");

            // and from the checkpointDir (newest: step 5), saving on into the same folder
            LoraModel again = lora(6000);
            Trainer trainer = settings(again, kind).resumeFrom(root).checkpointDir(root).checkpointEvery(2).build();
            TrainerListener.TrainingResult end = trainer.fit(data);
            assertArrayEquals(full.lossPerStep(), end.lossPerStep(), kind + " loss curve from the newest checkpoint");
            assertArrayEquals(flat(straight), flat(again), kind + " final adapter from the newest checkpoint");
            assertEquals(TOTAL, trainer.optimizer().stepCount(), "the optimizer's step count is restored");
            assertEquals(List.of("step-000002", "step-000004", "step-000005", "step-000006", "step-000008", "step-000009"),
                    folders(root));
        }
    }

    @Test
    void crashWhileSavingLeavesThePreviousCheckpointLoadable() throws IOException {
        List<Example> data = data(DATA, 3);
        Path root = tmp.resolve("run");
        LoraModel crashing = lora(900);
        UncheckedIOException crash = assertThrows(UncheckedIOException.class, () -> settings(crashing,
                Trainer.OptimizerKind.ADAMW).checkpointDir(root).checkpointEvery(2).checkpointWriteHook(file -> {
                    if (file.toString().contains("step-000004.tmp") && file.endsWith("optimizer.safetensors")) {
                        throw new IOException("disk full (injected)");
                    }
                }).build().fit(data));
        assertTrue(crash.getMessage().contains("step 4") && crash.getMessage().contains("disk full (injected)")
                && crash.getMessage().contains("earlier checkpoints are untouched"), crash.getMessage());
        assertEquals(List.of("step-000002"), folders(root), "no step-000004, and its temporary folder is removed");

        // a crash just before the rename leaves a complete-looking .tmp folder: it is never picked
        Path leftover = root.resolve("step-000006.tmp");
        Files.createDirectories(leftover);
        try (Stream<Path> files = Files.list(root.resolve("step-000002"))) {
            for (Path f : files.toList()) {
                if (Files.isRegularFile(f)) {
                    Files.copy(f, leftover.resolve(f.getFileName()));
                }
            }
        }
        assertEquals(Optional.of(root.resolve("step-000002")), Trainer.latestCheckpoint(root));

        LoraModel straight = lora(900);
        double[] full = settings(straight, Trainer.OptimizerKind.ADAMW).build().fit(data).lossPerStep();
        LoraModel resumed = lora(77);
        double[] rest = settings(resumed, Trainer.OptimizerKind.ADAMW).resumeFrom(root).build().fit(data).lossPerStep();
        assertArrayEquals(full, rest);
        assertArrayEquals(flat(straight), flat(resumed));

        IllegalArgumentException tmpResume = assertThrows(IllegalArgumentException.class,
                () -> settings(lora(1), Trainer.OptimizerKind.ADAMW).resumeFrom(leftover).build().fit(data));
        assertTrue(tmpResume.getMessage().contains("incomplete checkpoint"), tmpResume.getMessage());
    }

    @Test
    void resumingWithOtherSettingsOrDataFailsNamingTheDifference() {
        List<Example> data = data(DATA, 3);
        Path root = tmp.resolve("run");
        settings(lora(900), Trainer.OptimizerKind.ADAMW).checkpointDir(root).stopAfterSteps(2).build().fit(data);
        Path step2 = root.resolve("step-000002");

        assertResumeFails(b -> b.learningRate(1e-2), data, "learningRate (checkpoint 0.005, now 0.01)");
        assertResumeFails(b -> b.globalBatchSize(2), data, "globalBatchSize (checkpoint 4, now 2)");
        assertResumeFails(b -> b.optimizer(Trainer.OptimizerKind.SGD), data, "optimizer", "ADAMW", "SGD");
        assertResumeFails(b -> b.seed(12), data, "seed (checkpoint 11, now 12)");
        assertResumeFails(b -> b, data.subList(0, 9), "dataset size (checkpoint 10 examples, now 9)");
        List<Example> other = new ArrayList<>(data);
        other.set(3, data(DATA, 4).get(3));
        assertResumeFails(b -> b, other, "dataset content");
        // several differences are all listed
        assertResumeFails(b -> b.learningRate(1e-2).warmupSteps(3), data, "learningRate", "warmupSteps");

        // other LoRA targets: other trainable tensors
        LoraModel otherTargets = LoraModel.wrap(TinyModels.model(5), LoraConfig.rank(4).alpha(8).targets(Target.QUERY));
        IllegalArgumentException targets = assertThrows(IllegalArgumentException.class,
                () -> settings(otherTargets, Trainer.OptimizerKind.ADAMW).resumeFrom(step2).build().fit(data));
        assertTrue(targets.getMessage().contains("trainable tensors differ") && targets.getMessage().contains("v_proj"),
                targets.getMessage());

        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                () -> settings(lora(1), Trainer.OptimizerKind.ADAMW).resumeFrom(tmp).build().fit(data));
        assertTrue(empty.getMessage().contains("holds no complete checkpoint"), empty.getMessage());

        IllegalStateException overwrite = assertThrows(IllegalStateException.class,
                () -> settings(lora(1), Trainer.OptimizerKind.ADAMW).checkpointDir(root).build().fit(data));
        assertTrue(overwrite.getMessage().contains("already holds checkpoint(s) [step-000002]")
                && overwrite.getMessage().contains("resumeFrom"), overwrite.getMessage());
    }

    private void assertResumeFails(UnaryOperator<Trainer.Builder> change, List<Example> data, String... fragments) {
        Trainer.Builder b = change.apply(settings(lora(900), Trainer.OptimizerKind.ADAMW).resumeFrom(tmp.resolve("run")));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.build().fit(data));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + e.getMessage() + "' should mention " + f);
        }
    }

    @Test
    void validationRunsAtItsStepsAndAtTheEndWithLossEvaluatorValues() {
        List<Example> data = data(DATA, 3);
        List<Example> heldOut = data(5, 8);
        LoraModel lora = lora(900);
        List<String> events = new ArrayList<>();
        List<TrainerListener.ValidationMetrics> seen = new ArrayList<>();
        double[] withValidation = Trainer.builder(lora.model()).learningRate(5e-3).warmupSteps(2).maxSteps(5)
                .globalBatchSize(4).microBatchSize(2).seed(11).validation(heldOut, 2).listener(new TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        events.add("step " + m.step());
                    }

                    @Override
                    public void onValidation(ValidationMetrics v) {
                        events.add("validation " + v.step());
                        LossEvaluator.LossResult expected = LossEvaluator.evaluate(lora.model(), heldOut, 2, 0);
                        assertEquals(expected.loss(), v.loss());
                        assertEquals(expected.perplexity(), v.perplexity());
                        assertEquals(expected.tokens(), v.tokens());
                        seen.add(v);
                    }
                }).build().fit(data).lossPerStep();
        assertEquals(List.of("step 1", "step 2", "validation 2", "step 3", "step 4", "validation 4", "step 5",
                "validation 5"), events);
        assertTrue(seen.get(2).loss() < seen.get(0).loss() + 1 && seen.get(0).loss() > 0, seen.toString());
        // validation runs without a graph and dropout, so training is unchanged by it
        double[] without = Trainer.builder(lora(900).model()).learningRate(5e-3).warmupSteps(2).maxSteps(5)
                .globalBatchSize(4).microBatchSize(2).seed(11).build().fit(data).lossPerStep();
        assertArrayEquals(without, withValidation);
    }

    @Test
    void keepLastCheckpointsDeletesOlderOnesOnceTheNewOneIsComplete() throws IOException {
        Path root = tmp.resolve("run");
        List<List<String>> atEachSave = new ArrayList<>();
        Trainer.builder(lora(900).model()).learningRate(5e-3).maxSteps(5).globalBatchSize(2).microBatchSize(2)
                .checkpointDir(root).checkpointEvery(1).keepLastCheckpoints(2).listener(new TrainerListener() {
                    @Override
                    public void onCheckpoint(Path dir, long step) {
                        try {
                            atEachSave.add(folders(root));
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    }
                }).build().fit(data(DATA, 3));
        assertEquals(List.of(List.of("step-000001"), List.of("step-000001", "step-000002"),
                List.of("step-000002", "step-000003"), List.of("step-000003", "step-000004"),
                List.of("step-000004", "step-000005")), atEachSave);
        assertEquals(Optional.of(root.resolve("step-000005")), Trainer.latestCheckpoint(root));
    }

    @Test
    void builderChecksCheckpointOptions() {
        Trainer.Builder b = Trainer.builder(lora(1).model());
        IllegalArgumentException every = assertThrows(IllegalArgumentException.class, () -> b.checkpointEvery(0));
        assertTrue(every.getMessage().contains("checkpointEvery must be >= 1"), every.getMessage());
        IllegalArgumentException noDir = assertThrows(IllegalArgumentException.class,
                () -> Trainer.builder(lora(1).model()).checkpointEvery(10).build());
        assertTrue(noDir.getMessage().contains("needs a checkpointDir"), noDir.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.keepLastCheckpoints(0));
        assertThrows(IllegalArgumentException.class, () -> b.validation(List.of(), 5));
        assertThrows(IllegalArgumentException.class, () -> b.validation(data(2, 1), 0));
        assertThrows(IllegalArgumentException.class, () -> b.stopAfterSteps(0));
        IllegalArgumentException otherModel = assertThrows(IllegalArgumentException.class,
                () -> b.adapterFolders(lora(1)));
        assertTrue(otherModel.getMessage().contains("wraps another model"), otherModel.getMessage());
        String described = Trainer.builder(lora(1).model()).checkpointDir(tmp).checkpointEvery(50).keepLastCheckpoints(3)
                .validation(data(2, 1), 25).toString();
        assertTrue(described.contains("checkpointEvery=50") && described.contains("keepLastCheckpoints=3")
                && described.contains("validation=2 examples every 25 steps"), described);
    }
}
