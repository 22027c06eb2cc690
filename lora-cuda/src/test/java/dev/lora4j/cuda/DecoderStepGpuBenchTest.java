package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The benchmark command for a GPU: one device-resident training step ({@link DecoderStep}) of
 * SmolLM2-135M and of a Llama-2-7B-shaped model with random weights, LoRA (BF16 base) and QLoRA
 * (NF4 base), 512 tokens, r = 8 on all linear layers: prints tokens/s (mean of 3 steps after one
 * warm-up, wall time including launch overhead) and the allocator's peak device memory. Asserts
 * only that the loss stays finite; the numbers go into the module README.
 */
@Tag("gpu")
class DecoderStepGpuBenchTest {

    @Test
    void smolLm2AndLlama2Steps() {
        for (DecoderStep.Shape shape : new DecoderStep.Shape[] {DecoderStep.Shape.smolLm2(false), DecoderStep.Shape.smolLm2(true),
            DecoderStep.Shape.llama2_7b(false), DecoderStep.Shape.llama2_7b(true)}) {
            CudaTestDevice dev = CudaTestDevice.open();
            CachingAllocator alloc = dev.context().allocator();
            alloc.resetHighWaterMark();
            SplittableRandom rng = new SplittableRandom(50);
            int[] ids = new int[shape.tokens()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = rng.nextInt(shape.vocab());
            }
            DecoderStep step = new DecoderStep(shape, dev, ids);
            dev.launchAll(step.initLaunches());
            dev.launchAll(step.stepLaunches(1e-4, 1));
            dev.run();
            long start = System.nanoTime();
            int steps = 3;
            for (int t = 2; t < 2 + steps; t++) {
                dev.launchAll(step.stepLaunches(1e-4, t));
            }
            dev.run();
            double seconds = (System.nanoTime() - start) / 1e9 / steps;
            float loss = ((TestDevice.Buf) step.loss()).floats()[0];
            System.out.printf("%s %s: %.1f ms/step, %.0f tokens/s, peak %.2f GiB, loss %.4f, %d LoRA parameters%n", shape.name(),
                    shape.quantized() ? "QLoRA NF4" : "LoRA BF16", seconds * 1e3, shape.tokens() / seconds,
                    alloc.stats().highWaterMark() / (double) (1L << 30), loss, step.trainableParameters());
            assertTrue(Float.isFinite(loss), shape.name() + ": loss " + loss);
            dev.release();
            alloc.trim();
        }
    }
}
