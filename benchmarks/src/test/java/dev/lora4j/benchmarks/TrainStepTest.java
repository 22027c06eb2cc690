package dev.lora4j.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import java.util.List;
import org.junit.jupiter.api.Test;

class TrainStepTest {

    /**
     * The anchor ({@code torch_lora_bench.py}, PyTorch 1.13) prints {@code trainable=182784} for tiny
     * and {@code trainable=2442240} for smollm2-135m: the same modules are adapted at the same shapes.
     */
    @Test
    void trainableParameterCountsEqualTheAnchors() {
        assertEquals(182_784L, count(TrainShape.of("tiny")));
        assertEquals(2_442_240L, count(TrainShape.of("smollm2-135m")));
    }

    private static long count(TrainShape shape) {
        return LoraModel.count(shape.config(), LoraConfig.rank(8).alpha(16).targets(shape.targets())).trainable();
    }

    @Test
    void tiedHeadGetsNoAdapter() {
        assertTrue(List.of(TrainShape.of("tiny").targets()).contains(Target.HEAD));
        assertFalse(List.of(TrainShape.of("smollm2-135m").targets()).contains(Target.HEAD));
    }

    @Test
    void stepsTrainTheModelOnItsBatch() {
        TrainStep step = new TrainStep(TrainShape.of("micro").withBatch(2, 16), 8, 1);
        assertEquals(count(step.shape()), step.trainableParameters());
        float first = step.step();
        // random weights of std 0.02 give nearly uniform logits: the first loss is close to ln(vocab)
        assertEquals(Math.log(1024), first, 0.3, "first loss");
        float last = first;
        for (int i = 0; i < 3; i++) {
            last = step.step();
        }
        assertTrue(last < first - 0.01, "four AdamW steps on one batch lower the loss: " + first + " -> " + last);
    }

    @Test
    void badOptionsNameTheRule() {
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> TrainStepBenchmark.main(new String[] {"--shape", "llama-7b"}));
        assertTrue(shape.getMessage().contains("unknown shape 'llama-7b'") && shape.getMessage().contains("tiny"),
                shape.getMessage());
        IllegalArgumentException steps = assertThrows(IllegalArgumentException.class,
                () -> TrainStepBenchmark.main(new String[] {"--steps", "0"}));
        assertEquals("--steps must be >= 1, was 0", steps.getMessage());
        IllegalArgumentException batch = assertThrows(IllegalArgumentException.class,
                () -> TrainShape.of("tiny").withBatch(0, 8));
        assertEquals("batch must be >= 1, was 0", batch.getMessage());
    }
}
