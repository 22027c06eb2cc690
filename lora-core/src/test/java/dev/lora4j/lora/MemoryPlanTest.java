package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Elementwise;
import dev.lora4j.backend.Arena;
import dev.lora4j.backend.CpuBackend;
import dev.lora4j.data.Example;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.CausalLmLoss;
import dev.lora4j.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * The plan against what a training step really holds: the activation row against the step
 * arena's high-water mark (deterministic: it counts buffers, not time), and the weight, adapter
 * and optimizer rows against the loaded tensors' bytes.
 */
class MemoryPlanTest {

    private static LlamaConfig config(int vocab, int hidden, int layers, int heads, int kvHeads, int ffn, boolean tied) {
        return LlamaConfig.builder().modelType("llama").vocabSize(vocab).hiddenSize(hidden).intermediateSize(ffn)
                .numHiddenLayers(layers).numAttentionHeads(heads).numKeyValueHeads(kvHeads).maxPositionEmbeddings(256)
                .rmsNormEps(1e-5).tieWordEmbeddings(tied).build();
    }

    private static CausalLmLoss.Batch batch(int vocab, int b, int t) {
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> ex = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            int[] ids = new int[t];
            for (int j = 0; j < t; j++) {
                ids[j] = rng.nextInt(vocab);
            }
            ex.add(Example.unmasked(ids));
        }
        return CausalLmLoss.collate(ex, 0);
    }

    /** The most bytes the step arena held during one forward and backward of this batch. */
    private static long measuredArenaPeak(LlamaModel model, CausalLmLoss.Batch batch) {
        CpuBackend.resetArenaPeak();
        try (Arena arena = model.embedTokens().backend().openArena()) {
            Tensor loss = CausalLmLoss.loss(model, batch);
            Elementwise.scale(loss, 1f).backward();
        }
        return CpuBackend.arenaPeakBytes();
    }

    @ParameterizedTest(name = "vocab {0}, hidden {1}, {2} layers, ffn {5}, tied {6}, {7}x{8}, dropout {9}, checkpointing {10}")
    @CsvSource({
        "512, 64, 2, 4, 2, 172, false, 2, 32, 0.0, false",
        "512, 64, 2, 4, 2, 172, false, 2, 32, 0.05, false",
        "512, 64, 2, 4, 2, 172, false, 2, 32, 0.0, true",
        "512, 64, 2, 4, 2, 172, false, 2, 32, 0.1, true",
        "1024, 128, 2, 4, 2, 344, true, 2, 64, 0.0, false",
        "1024, 128, 2, 4, 2, 344, true, 3, 50, 0.1, true",
        "256, 96, 3, 6, 6, 256, true, 1, 41, 0.0, false",
    })
    void activationRowIsTheArenaHighWaterMark(int vocab, int hidden, int layers, int heads, int kv, int ffn, boolean tied,
                                              int b, int t, double dropout, boolean checkpointing) {
        LlamaModel model = LlamaModel.initialize(config(vocab, hidden, layers, heads, kv, ffn, tied), 1);
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(4).alpha(8).dropout(dropout).targets(Target.ALL));
        model.activationCheckpointing(checkpointing);
        long measured = measuredArenaPeak(model, batch(vocab, b, t));
        long predicted = lora.memoryPlan(MemoryPlan.Shape.of(b, t).activationCheckpointing(checkpointing)).activationBytes();
        // op by op the count is exact up to the few-float loss scalars; allow 0.5 % for the head's LoRA scratch order
        assertEquals(measured, predicted, measured * 0.005, "predicted " + predicted + " vs the arena's " + measured);
        // a second step reuses the pooled buffers and reaches the same mark
        assertEquals(measured, measuredArenaPeak(model, batch(vocab, b, t)));
    }

    @Test
    void weightAdapterAndOptimizerRowsAreTheTensorsBytes() {
        LlamaConfig c = config(512, 64, 2, 4, 2, 172, false);
        LlamaModel model = LlamaModel.initialize(c, 1);
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.VALUE));
        MemoryPlan plan = lora.memoryPlan(MemoryPlan.Shape.of(1, 16));
        long weights = 0;
        for (Tensor t : model.allTensors().values()) {
            weights += 4 * t.numel();
        }
        assertEquals(weights, plan.row("base weights (heap)").orElseThrow().bytes());
        long adapters = 4 * lora.trainableParameterCount();
        assertEquals(adapters, plan.row("LoRA adapters").orElseThrow().bytes());
        assertEquals(adapters, plan.row("LoRA gradients").orElseThrow().bytes());
        assertEquals(2 * adapters, plan.row("optimizer state").orElseThrow().bytes());
        assertEquals(adapters, MemoryPlan.of(lora, MemoryPlan.Shape.of(1, 16).optimizer(MemoryPlan.Optimizer.SGD_MOMENTUM))
                .row("optimizer state").orElseThrow().bytes());
        // the same plan from the config alone, nothing loaded
        MemoryPlan fromConfig = MemoryPlan.of(c, LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.VALUE),
                MemoryPlan.Weights.F32, MemoryPlan.Shape.of(1, 16));
        assertEquals(plan.predictedPeakHeap(), fromConfig.predictedPeakHeap());
        assertEquals(plan.activationBytes(), fromConfig.activationBytes());
    }

    @Test
    void fourBitAndMappedWeightsFromTheConfig() {
        LlamaConfig c = config(1024, 256, 2, 4, 4, 512, false);
        long linear = 2L * (4 * 256 * 256 + 3 * 256 * 512); // per layer q, k, v, o and gate, up, down
        long matrices = 2L * 1024 * 256; // embedding, lm_head
        long norms = 5L * 256;
        long other = matrices + norms;
        MemoryPlan mapped = MemoryPlan.of(c, LoraConfig.rank(8), MemoryPlan.Weights.BF16_MAPPED, MemoryPlan.Shape.of(1, 64));
        assertEquals(2 * (linear + matrices), mapped.row("base weights (mapped)").orElseThrow().bytes());
        assertEquals(4 * norms, mapped.row("base weights (heap)").orElseThrow().bytes()); // copied to F32 by the loader
        MemoryPlan nf4 = MemoryPlan.of(c, LoraConfig.rank(8), MemoryPlan.Weights.nf4(64, true), MemoryPlan.Shape.of(1, 64));
        // 4 bits per value, one 8-bit code per block of 64, an F32 per 256 blocks (+ the offset) per tensor
        long q4 = 0;
        for (long n : new long[] {256 * 256, 256 * 256, 256 * 256, 256 * 256, 256 * 512, 256 * 512, 256 * 512}) {
            long blocks = n / 64;
            q4 += 2 * (n / 2 + blocks + 4 * ((blocks + 255) / 256) + 4);
        }
        assertEquals(q4 + 4 * other, nf4.row("base weights (heap)").orElseThrow().bytes());
    }

    @Test
    void refusesWhenTheHeapIsTooSmallAndSaysWhatToChange() {
        LlamaConfig c = config(512, 64, 2, 4, 2, 172, false);
        MemoryPlan plan = MemoryPlan.of(c, LoraConfig.rank(4), MemoryPlan.Weights.F32, MemoryPlan.Shape.of(4, 512));
        MemoryPlan.DoesNotFitException e = assertThrows(MemoryPlan.DoesNotFitException.class,
                () -> plan.check(plan.predictedPeakHeap() - 1, -1));
        assertTrue(e.getMessage().contains("exceeds the JVM's maximum heap"), e.getMessage());
        assertTrue(e.getMessage().contains("activation checkpointing"), e.getMessage());
        assertTrue(e.getMessage().contains("micro-batch size 1"), e.getMessage());
        assertTrue(e.getMessage().contains("-Xmx"), e.getMessage());
        plan.check(plan.predictedPeakHeap(), plan.predictedRss()); // exactly at the limits: fits
        MemoryPlan.DoesNotFitException rss = assertThrows(MemoryPlan.DoesNotFitException.class,
                () -> plan.check(-1, plan.predictedRss() - 1));
        assertTrue(rss.getMessage().contains("exceeds the machine's memory"), rss.getMessage());
        // checkpointing helps: its plan is smaller
        assertTrue(MemoryPlan.of(c, LoraConfig.rank(4), MemoryPlan.Weights.F32, MemoryPlan.Shape.of(4, 512)
                .activationCheckpointing(true)).activationBytes() < plan.activationBytes());
    }

    @Test
    void trainerRefusesToStartOverTheInjectedLimitUnlessTheCheckIsOff() {
        LlamaConfig c = config(512, 64, 2, 4, 2, 172, false);
        LlamaModel model = LlamaModel.initialize(c, 1);
        LoraModel.wrap(model, LoraConfig.rank(4).alpha(8).targets(Target.ALL));
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            data.add(Example.unmasked(new int[] {1, 2, 3, 4, 5, 6, 7, 8}));
        }
        Trainer.Builder b = Trainer.builder(model).microBatchSize(2).globalBatchSize(2).maxSteps(1).warmupSteps(0)
                .progressLogging(false);
        long need = b.build().memoryPlan(8).predictedPeakHeap();
        MemoryPlan.DoesNotFitException e = assertThrows(MemoryPlan.DoesNotFitException.class,
                () -> b.memoryLimits(need / 2, -1).build().fit(data));
        assertTrue(e.getMessage().contains(MemoryPlan.size(need)), e.getMessage());
        assertTrue(e.getMessage().contains("memoryCheck(false)"), e.getMessage());
        assertEquals(1, b.memoryCheck(false).build().fit(data).steps());
        assertEquals(1, Trainer.builder(model).microBatchSize(2).globalBatchSize(2).maxSteps(1).warmupSteps(0)
                .progressLogging(false).memoryLimits(need, -1).build().fit(data).steps());
    }

    @Test
    void formatsATable() {
        MemoryPlan plan = MemoryPlan.of(config(512, 64, 2, 4, 2, 172, false), LoraConfig.rank(4), MemoryPlan.Weights.F32,
                MemoryPlan.Shape.of(2, 128).threads(2));
        String table = plan.format();
        for (String row : List.of("base weights (heap)", "LoRA adapters", "LoRA gradients", "optimizer state",
                "activations + grads", "compute workspace", "JVM baseline", "predicted peak heap", "predicted peak RSS",
                "micro-batch 2 x 128 tokens", "MiB")) {
            assertTrue(table.contains(row), row + " missing from\n" + table);
        }
        assertEquals(plan.predictedPeakHeap() + plan.predictedPeakHeap() * MemoryPlan.RSS_HEADROOM_PERCENT / 100 + plan.offHeapBytes(),
                plan.predictedRss());
        assertEquals("12.00 GiB", MemoryPlan.size(12L << 30));
        assertEquals("1023.0 MiB", MemoryPlan.size(1023L << 20));
        assertThrows(IllegalArgumentException.class, () -> MemoryPlan.Shape.of(0, 10));
    }
}
