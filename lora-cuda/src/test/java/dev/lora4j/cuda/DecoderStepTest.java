package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A whole device-resident training step of a small random decoder (2 layers, grouped-query
 * attention, LoRA on all seven linear layers, NF4 or BF16 base), run through the kernels,
 * three times on one batch: the first loss is the one of a random model (near ln V) and AdamW on the
 * LoRA parameters lowers it at every step. A wrong sign or a missing term anywhere in the chain of
 * backward launches stops the descent.
 */
class DecoderStepTest {
    /** Extra tolerance of the device under test (unused here; kept for the GPU subclass). */
    double slack;

    TestDevice device() {
        return new HostDevice();
    }

    static DecoderStep.Shape tiny(boolean quantized) {
        // hidden 32 in 4 heads of 8 over 2 kv heads, 48 MLP, 53 tokens in the vocabulary, 20 positions, chunks of 8 rows
        return new DecoderStep.Shape("tiny", 32, 48, 2, 4, 2, 53, 20, 4, 8, quantized, 8);
    }

    /** The QLoRA case in the emulation (the BF16 base runs in {@link DecoderStepGpuTest}, to keep the build fast). */
    @Test
    void qloraStepsLowerTheLoss() {
        descend(tiny(true));
    }

    void descend(DecoderStep.Shape shape) {
        SplittableRandom rng = new SplittableRandom(40);
        int[] ids = new int[shape.tokens()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rng.nextInt(shape.vocab());
        }
        TestDevice dev = device();
        DecoderStep step = new DecoderStep(shape, dev, ids);
        dev.launchAll(step.initLaunches());
        int steps = 3;
        TestDevice.Buf history = dev.zeros(steps);
        TestDevice.Buf zero = dev.zeros(1);
        for (int t = 1; t <= steps; t++) {
            dev.launchAll(step.stepLaunches(2e-2, t));
            dev.launch(Kernels.add(BufferSlice.floats(history, t - 1, 1), step.loss(), zero, 1)); // keep each step's loss
        }
        dev.run();
        float[] losses = history.floats();
        System.out.println("device step " + shape.name() + (shape.quantized() ? " NF4" : " BF16") + " losses "
                + java.util.Arrays.toString(losses));
        double lnV = Math.log(shape.vocab());
        assertTrue(Math.abs(losses[0] - lnV) < 1.5, "first loss " + losses[0] + " should be near ln V = " + lnV);
        for (int i = 1; i < losses.length; i++) {
            assertTrue(losses[i] < losses[i - 1], "loss must fall at every step: " + java.util.Arrays.toString(losses));
        }
    }
}
