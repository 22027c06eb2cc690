package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.backend.Backends;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.Quantizer;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Whole LoRA and QLoRA training steps of the golden-tiny-llama fixture (GQA Llama, a PEFT adapter on
 * every projection and lm_head) through the unchanged {@link Trainer} on the CUDA device (the host
 * emulation of the kernels, a long-lived child process holding every buffer) against the same run on
 * the CPU backend: per-step losses and the trained adapter agree within float tolerance, the base
 * weights keep their storage on the device (NF4 stays 4-bit), and during training nothing larger than
 * a scalar is downloaded; the adapter is read back only when it is saved. The LoRA run on the device
 * uses activation checkpointing (each block recomputed in backward), the CPU run does not: on the
 * CPU the two give the same gradients bit for bit.
 */
class CudaTrainingStepTest {
    static CudaBackend gpu;
    static Path root;

    @BeforeAll
    static void setUp() {
        String fixtures = System.getProperty("lora4j.fixtures", "../../shared/fixtures");
        root = Path.of(fixtures).resolve("golden-tiny-llama").normalize();
        Assumptions.assumeTrue(Files.exists(root), "shared fixture " + root + " is absent; skipping");
        HostEmulation.driver();
        gpu = EmulatedCudaProvider.shared();
        assertSame(gpu, Backends.forDevice(Device.CUDA), "Tensor.to(Device.CUDA) reaches the emulated device");
    }

    /** Two short sequences of the fixture's vocabulary (96), prompt-masked so that ignored labels occur. */
    private static List<Example> data() {
        List<Example> out = new ArrayList<>();
        for (int s = 0; s < 4; s++) {
            int[] ids = new int[6 + s];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (7 * i + 13 * s + 3) % 96;
            }
            out.add(Example.promptMasked(ids, 2));
        }
        return out;
    }

    private static Trainer trainer(LoraModel lora, boolean checkpointing) {
        return Trainer.builder(lora.model()).activationCheckpointing(checkpointing).learningRate(1e-2).weightDecay(0.01).maxSteps(2).globalBatchSize(1)
                .microBatchSize(1).maxGradNorm(1.0).seed(5).shuffle(false).warmupSteps(0).progressLogging(false).build();
    }

    private static LoraModel load(boolean nf4) {
        LlamaModel base = LlamaModel.load(root.resolve("model"));
        if (nf4) {
            Quantizer.quantize(base, QuantConfig.NF4_DQ);
        }
        return LoraModel.load(base, root.resolve("adapter"));
    }

    private void trainOnBothAndCompare(boolean nf4, Path dir) throws Exception {
        LoraModel cpu = load(nf4);
        LoraModel dev = load(nf4).to(Device.CUDA);
        assertSame(Device.CUDA, dev.model().embedTokens().device());
        Tensor q = dev.model().linears().get("model.layers.0.self_attn.q_proj").weight();
        assertSame(Device.CUDA, q.device());
        assertEquals(nf4 ? DType.U8 : DType.F32, q.dtype(), "the frozen weight keeps its form on the device");
        for (Tensor t : dev.peftTensors("default", t -> t).values()) {
            assertSame(Device.CUDA, t.device(), t.name());
            assertTrue(t.requiresGrad(), t.name());
        }

        TrainerListener.TrainingResult want = trainer(cpu, false).fit(data());
        gpu.resetTransfers();
        // the LoRA run recomputes each block in backward on the device (same gradients as keeping activations)
        TrainerListener.TrainingResult got = trainer(dev, !nf4).fit(data());
        CudaBackend.Transfers during = gpu.transfers();
        System.out.printf("%s step on the emulated device: losses %s vs CPU %s; transfers %s%n", nf4 ? "QLoRA" : "LoRA",
                java.util.Arrays.toString(got.lossPerStep()), java.util.Arrays.toString(want.lossPerStep()), during);
        for (int s = 0; s < want.lossPerStep().length; s++) {
            assertEquals(want.lossPerStep()[s], got.lossPerStep()[s], 2e-5 * Math.abs(want.lossPerStep()[s]), "loss of step " + s);
        }
        // (c) no activation-sized buffer came back during training: only scalars (losses, norms)
        assertTrue(during.largestDownload() <= 8, "largest download during training: " + during);

        Map<String, Tensor> expected = cpu.peftTensors("default", t -> t);
        gpu.resetTransfers();
        Map<String, Tensor> actual = dev.peftTensors("default", t -> t);
        long adapterBytes = 0;
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            float[] a = actual.get(e.getKey()).toFloatArray();
            // AdamW divides by √v: a gradient component near 0 turns float noise into up to a step of lr (1e-2)
            // in the update, so a trained value may differ by a small fraction of lr (1e-4 is 1 %)
            Compare.close(e.getKey(), e.getValue().toFloatArray(), a, 1e-4, 2e-4);
            adapterBytes += 4L * a.length;
        }
        assertEquals(adapterBytes, gpu.transfers().downloadBytes(), "reading the adapter back downloads exactly its bytes");
        // saving reads the adapter from the device; the file loads back on the CPU with the same values
        dev.saveAdapter(dir);
        LoraModel reloaded = LoraModel.load(LlamaModel.load(root.resolve("model")), dir);
        for (Map.Entry<String, Tensor> e : expected.entrySet()) {
            Compare.close("saved " + e.getKey(), actual.get(e.getKey()).toFloatArray(),
                    reloaded.peftTensors("default", t -> t).get(e.getKey()).toFloatArray(), 0, 0);
        }
    }

    @Test
    void greedyGenerationWithAKvCacheOnTheDeviceEqualsTheCpu() {
        LoraModel cpu = load(false);
        LoraModel dev = load(false).to(Device.CUDA);
        int[] prompt = {1, 17, 42, 5};
        int[] want = new dev.lora4j.model.Generator(cpu.model()).temperature(0).maxNewTokens(5).generate(prompt);
        int[] got = new dev.lora4j.model.Generator(dev.model()).temperature(0).maxNewTokens(5).generate(prompt);
        assertEquals(java.util.Arrays.toString(want), java.util.Arrays.toString(got));
        // the cache lives on the device: a forward with it compares logits too
        dev.lora4j.nn.KvCache cache = dev.model().newCache(1, 16);
        assertSame(Device.CUDA, cache.keysOf(0).device());
        Tensor first = dev.model().forward(prompt, 1, cache);
        Tensor next = dev.model().forward(new int[] {want[0]}, 1, cache);
        int[] all = {1, 17, 42, 5, want[0]};
        float[] full = cpu.model().forward(all, 1).toFloatArray();
        float[] last = java.util.Arrays.copyOfRange(full, 4 * 96, 5 * 96);
        Compare.close("cached logits", last, next.toFloatArray(), 1e-5, 1e-4);
        assertEquals(4 * 96, first.numel());
    }

    @Test
    void loraStepOnTheDeviceEqualsTheCpuStep(@TempDir Path dir) throws Exception {
        trainOnBothAndCompare(false, dir);
    }

    @Test
    void qloraNf4StepOnTheDeviceEqualsTheCpuStep(@TempDir Path dir) throws Exception {
        trainOnBothAndCompare(true, dir);
    }
}
