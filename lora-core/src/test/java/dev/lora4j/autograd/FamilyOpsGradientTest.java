package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.backend.Gelu;
import dev.lora4j.tensor.Tensor;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Finite-difference gradient checks and reference values of the operations the non-Llama families
 * add: LayerNorm with bias, the two GELUs, GeGLU, soft-capping and partial rotary embeddings.
 */
class FamilyOpsGradientTest {
    private final SplittableRandom rng = new SplittableRandom(11);

    private Tensor rand(int... shape) {
        return Tensor.normal(rng, 0f, 1f, shape);
    }

    private Tensor project(Tensor out) {
        float[] w = Tensor.normal(new SplittableRandom(out.numel() * 31 + 7), 0f, 1f, (int) out.numel()).data();
        return Elementwise.weightedSum(out, w);
    }

    @Test
    void layerNormWithBias() {
        GradCheck.check("layerNorm", List.of(rand(2, 3, 7), rand(7), rand(7)),
                in -> project(LayerNorm.apply(in.get(0), in.get(1), in.get(2), 1e-5f)));
    }

    @Test
    void layerNormMatchesDefinition() {
        Tensor x = Tensor.of(new float[] {1, 2, 3, 6}, 1, 4);
        Tensor y = LayerNorm.apply(x, Tensor.of(new float[] {1, 2, 1, 1}, 4), Tensor.of(new float[] {0, 0, 0.5f, 0}, 4), 0f);
        // mean 3, variance (4 + 1 + 0 + 9) / 4 = 3.5
        double r = 1 / Math.sqrt(3.5);
        assertEquals(-2 * r, y.get(0, 0), 1e-6);
        assertEquals(-2 * r, y.get(0, 1), 1e-6);
        assertEquals(0.5, y.get(0, 2), 1e-6);
        assertEquals(3 * r, y.get(0, 3), 1e-6);
        GradCheck.check("layerNorm without bias", List.of(rand(3, 5), rand(5)),
                in -> project(LayerNorm.apply(in.get(0), in.get(1), null, 1e-5f)));
    }

    @Test
    void geluBothForms() {
        for (Gelu kind : Gelu.values()) {
            GradCheck.check("gelu " + kind, List.of(rand(4, 9)), in -> project(Activations.gelu(in.get(0), kind)));
        }
        // torch.nn.functional.gelu(x) and gelu(x, approximate="tanh") at x = 1 and -0.5
        Tensor x = Tensor.of(new float[] {1f, -0.5f}, 2);
        float[] erf = Activations.gelu(x, Gelu.ERF).toFloatArray();
        float[] tanh = Activations.gelu(x, Gelu.TANH).toFloatArray();
        assertEquals(0.8413447, erf[0], 1e-6);
        assertEquals(-0.1542688, erf[1], 1e-6);
        assertEquals(0.8411920, tanh[0], 1e-6);
        assertEquals(-0.1542859, tanh[1], 1e-6);
    }

    @Test
    void geglu() {
        for (Gelu kind : Gelu.values()) {
            GradCheck.check("geglu " + kind, List.of(rand(3, 6), rand(3, 6)),
                    in -> project(Activations.geglu(in.get(0), in.get(1), kind)));
        }
    }

    @Test
    void rmsNormWithTheOnePlusWeightOfGemma() {
        // trainable w: the offset is inside the kernel, so the gradient reaches w itself
        GradCheck.check("rmsNorm (1 + w)", List.of(rand(2, 3, 7), rand(7)),
                in -> project(RmsNorm.apply(in.get(0), in.get(1), 1f, 1e-6f)));
        Tensor x = rand(4, 9);
        Tensor w = rand(9);
        float[] onePlus = w.toFloatArray();
        for (int i = 0; i < onePlus.length; i++) {
            onePlus[i] += 1f;
        }
        assertArrayEquals(RmsNorm.apply(x, Tensor.of(onePlus, 9), 1e-6f).toFloatArray(),
                RmsNorm.apply(x, w, 1f, 1e-6f).toFloatArray(), 0f, "x·r·(1 + w) equals x·r·w' with w' = 1 + w formed first");
    }

    @Test
    void softCap() {
        Tensor x = Tensor.of(new float[] {0f, 3f, -100f}, 3);
        float[] y = SoftCap.apply(x, 30f).toFloatArray();
        assertEquals(0f, y[0]);
        assertEquals(30 * Math.tanh(0.1), y[1], 1e-6);
        assertEquals(-30 * Math.tanh(100.0 / 30), y[2], 1e-5);
        GradCheck.check("softCap", List.of(Tensor.normal(rng, 0f, 3f, 4, 5)), in -> project(SoftCap.apply(in.get(0), 2f)));
    }

    @Test
    void partialRotaryPassesTheTailThrough() {
        int d = 8;
        int rot = 4;
        Rope.Table table = new Rope.Table(d, rot, 16, Rope.inverseFrequencies(rot, 10000, null, 1, 1, 1, 0));
        Tensor x = rand(1, 3, 2, d);
        Tensor y = Rope.apply(x, table, 5);
        for (int t = 0; t < 3; t++) {
            for (int h = 0; h < 2; h++) {
                for (int i = rot; i < d; i++) {
                    assertEquals(x.get(0, t, h, i), y.get(0, t, h, i));
                }
                // pair (0, 2) rotated by (5 + t)·inv_freq[0] = 5 + t radians
                double a = 5 + t;
                assertEquals(x.get(0, t, h, 0) * Math.cos(a) - x.get(0, t, h, 2) * Math.sin(a), y.get(0, t, h, 0), 1e-5);
            }
        }
        GradCheck.check("partial rope", List.of(rand(2, 3, 2, d)), in -> project(Rope.apply(in.get(0), table, 1)));
    }
}
