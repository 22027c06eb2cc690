package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Recomputing decoder blocks in backward changes memory, not results: the gradients of one step
 * (with LoRA dropout, so the recomputation must replay the masks) and a whole training run are
 * bit-identical with and without checkpointing.
 */
class ActivationCheckpointingTest {

    private static LoraModel lora() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(5),
                LoraConfig.rank(4).alpha(8).dropout(0.2).targets(Target.ALL));
        long seed = 3;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            TinyModels.randomize(e.getValue(), 0.05f, seed++);
        }
        return lora;
    }

    private static List<float[]> gradientsOfOneStep(boolean checkpointing) {
        LoraModel lora = lora();
        lora.model().activationCheckpointing(checkpointing);
        for (var ll : lora.model().linears().values()) {
            if (ll instanceof dev.lora4j.lora.LoraLinear l) {
                l.seedDropout(l.name().hashCode());
            }
        }
        int[] tokens = TinyModels.tokens(2 * 9, 48, 7);
        int[] labels = tokens.clone();
        Tensor loss = CausalLmLoss.loss(lora.model().forward(tokens, 2), labels, 2, 9);
        loss.backward();
        List<float[]> grads = new ArrayList<>();
        for (Tensor p : Trainer.trainableParameters(lora.model())) {
            grads.add(p.grad().toFloatArray());
        }
        return grads;
    }

    @Test
    void gradientsAreBitIdentical() {
        List<float[]> plain = gradientsOfOneStep(false);
        List<float[]> recomputed = gradientsOfOneStep(true);
        assertEquals(plain.size(), recomputed.size());
        boolean anyNonZero = false;
        for (int i = 0; i < plain.size(); i++) {
            assertArrayEquals(plain.get(i), recomputed.get(i), 0f, "gradient of parameter " + i);
            for (float v : plain.get(i)) {
                anyNonZero |= v != 0f;
            }
        }
        assertTrue(anyNonZero, "the step produced gradients");
    }

    @Test
    void aTrainingRunIsBitIdentical() {
        List<Example> data = new ArrayList<>();
        SplittableRandom rng = new SplittableRandom(9);
        for (int i = 0; i < 8; i++) {
            data.add(Example.promptMasked(TinyModels.tokens(5 + rng.nextInt(6), 48, 100 + i), 2));
        }
        double[] losses = new double[2];
        float[][] adapters = new float[2][];
        for (int run = 0; run < 2; run++) {
            LoraModel lora = lora();
            TrainerListener.TrainingResult r = Trainer.builder(lora.model()).learningRate(5e-3).warmupSteps(1).epochs(2)
                    .globalBatchSize(4).microBatchSize(2).seed(11).activationCheckpointing(run == 1).build().fit(data);
            losses[run] = r.finalLoss();
            List<Float> all = new ArrayList<>();
            for (Tensor t : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values()) {
                for (float v : t.toFloatArray()) {
                    all.add(v);
                }
            }
            adapters[run] = new float[all.size()];
            for (int i = 0; i < all.size(); i++) {
                adapters[run][i] = all.get(i);
            }
        }
        assertEquals(losses[0], losses[1], 0.0);
        assertArrayEquals(adapters[0], adapters[1], 0f);
    }
}
