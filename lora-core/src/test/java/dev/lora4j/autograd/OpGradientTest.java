package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class OpGradientTest {
    private final SplittableRandom rng = new SplittableRandom(42);

    private Tensor rand(int... shape) {
        return Tensor.normal(rng, 0f, 1f, shape);
    }

    private float[] projection(long n) {
        return Tensor.normal(new SplittableRandom(n * 31 + 7), 0f, 1f, (int) n).data();
    }

    private Tensor project(Tensor out) {
        return Elementwise.weightedSum(out, projection(out.numel()));
    }

    @Test
    void matmulAllForms() {
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                Tensor a = ta ? rand(5, 3) : rand(3, 5);
                Tensor b = tb ? rand(4, 5) : rand(5, 4);
                GradCheck.check("matmul ta=" + ta + " tb=" + tb, List.of(a, b),
                        in -> project(MatMul.matmul(in.get(0), ta, in.get(1), tb)));
            }
        }
    }

    @Test
    void matmulMatchesReference() {
        Tensor a = rand(3, 4);
        Tensor b = rand(4, 2);
        Tensor c = MatMul.matmul(a, false, b, false);
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 2; j++) {
                double s = 0;
                for (int p = 0; p < 4; p++) {
                    s += a.get(i, p) * b.get(p, j);
                }
                assertEquals(s, c.get(i, j), 1e-5);
            }
        }
    }

    @Test
    void linearWithBiasAndBatchDims() {
        Tensor x = rand(2, 3, 6);
        Tensor w = rand(5, 6);
        Tensor bias = rand(5);
        GradCheck.check("linear", List.of(x, w, bias), in -> project(MatMul.linear(in.get(0), in.get(1), in.get(2))));
    }

    @Test
    void linearReadsBf16FrozenWeight() {
        Tensor x = rand(3, 8);
        float[] wf = rand(4, 8).data();
        Tensor wBf16 = new Tensor(BufferStorage.of(wf, DType.BF16), 4, 8);
        Tensor wWidened = Tensor.of(wBf16.toFloatArray(), 4, 8);
        assertArrayEquals(MatMul.linear(x, wWidened, null).toFloatArray(), MatMul.linear(x, wBf16, null).toFloatArray(), 1e-5f);
        GradCheck.check("linear over bf16", List.of(x), in -> project(MatMul.linear(in.get(0), wBf16, null)));
    }

    @Test
    void linearRejectsWrongFeatureCount() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MatMul.linear(rand(8, 4095), rand(16, 4096), null));
        assertEquals(true, e.getMessage().contains("x has 4095 features"), e.getMessage());
    }

    @Test
    void pointwise() {
        Tensor a = rand(3, 4);
        Tensor b = rand(3, 4);
        Tensor row = rand(4);
        GradCheck.check("add", List.of(a, b), in -> project(Elementwise.add(in.get(0), in.get(1))));
        GradCheck.check("add broadcast", List.of(a, row), in -> project(Elementwise.add(in.get(0), in.get(1))));
        GradCheck.check("mul", List.of(a, b), in -> project(Elementwise.mul(in.get(0), in.get(1))));
        GradCheck.check("scale", List.of(a), in -> project(Elementwise.scale(in.get(0), -1.7f)));
        GradCheck.check("silu", List.of(a), in -> project(Elementwise.silu(in.get(0))));
        GradCheck.check("swiglu", List.of(a, b), in -> project(Elementwise.swiglu(in.get(0), in.get(1))));
        GradCheck.check("sum", List.of(a), in -> Elementwise.sum(Elementwise.mul(in.get(0), in.get(0))));
        GradCheck.check("dropout", List.of(a),
                in -> project(Elementwise.dropout(in.get(0), 0.3f, new SplittableRandom(5))));
    }

    @Test
    void dropoutKeepsExpectation() {
        Tensor ones = Tensor.full(1f, 100_000);
        float[] d = Elementwise.dropout(ones, 0.25f, new SplittableRandom(1)).data();
        double mean = 0;
        int zeros = 0;
        for (float v : d) {
            mean += v;
            zeros += v == 0f ? 1 : 0;
        }
        assertEquals(1.0, mean / d.length, 0.01);
        assertEquals(0.25, zeros / (double) d.length, 0.01);
        assertThrows(IllegalArgumentException.class, () -> Elementwise.dropout(ones, 1f, new SplittableRandom(1)));
    }

    @Test
    void rmsNorm() {
        Tensor x = rand(4, 8);
        Tensor w = rand(8);
        GradCheck.check("rmsNorm", List.of(x, w), in -> project(RmsNorm.apply(in.get(0), in.get(1), 1e-5f)));
    }

    @Test
    void rope() {
        Tensor x = rand(2, 5, 3, 8);
        double[] inv = Rope.inverseFrequencies(8, 10000, null, 1, 1, 1, 0);
        Rope.Table table = new Rope.Table(8, 16, inv);
        GradCheck.check("rope", List.of(x), in -> project(Rope.apply(in.get(0), table, 3)));
        // position 0 is the identity
        Tensor one = rand(1, 1, 1, 8);
        assertArrayEquals(one.toFloatArray(), Rope.apply(one, table, 0).toFloatArray(), 0f);
    }

    @Test
    void ropeLlama3ScalingKeepsHighFrequencies() {
        double[] plain = Rope.inverseFrequencies(128, 500000, null, 1, 1, 1, 0);
        double[] scaled = Rope.inverseFrequencies(128, 500000, "llama3", 8, 1, 4, 8192);
        assertEquals(plain[0], scaled[0], 0.0);
        assertEquals(plain[63] / 8, scaled[63], 1e-12);
    }

    @Test
    void attentionGroupedQuery() {
        Tensor q = rand(2, 4, 4, 3);
        Tensor k = rand(2, 4, 2, 3);
        Tensor v = rand(2, 4, 2, 3);
        GradCheck.check("attention", List.of(q, k, v), in -> project(Attention.causal(in.get(0), in.get(1), in.get(2), 0)));
        Tensor q2 = rand(1, 2, 2, 4);
        Tensor k2 = rand(1, 5, 1, 4);
        Tensor v2 = rand(1, 5, 1, 4);
        GradCheck.check("attention with offset", List.of(q2, k2, v2),
                in -> project(Attention.causal(in.get(0), in.get(1), in.get(2), 3)));
    }

    @Test
    void attentionFirstTokenSeesOnlyItself() {
        Tensor q = rand(1, 3, 1, 4);
        Tensor k = rand(1, 3, 1, 4);
        Tensor v = rand(1, 3, 1, 4);
        Tensor o = Attention.causal(q, k, v, 0);
        for (int i = 0; i < 4; i++) {
            assertEquals(v.get(0, 0, 0, i), o.get(0, 0, 0, i), 1e-6);
        }
    }

    @Test
    void crossEntropyAndSoftmax() {
        Tensor logits = rand(5, 7);
        int[] labels = {3, -100, 0, 6, -100};
        GradCheck.check("crossEntropy", List.of(logits), in -> Losses.crossEntropy(in.get(0), labels));
        GradCheck.check("softmax", List.of(logits), in -> project(Losses.softmax(in.get(0))));
        // value: mean over the 3 valid rows
        double expected = 0;
        for (int r : new int[] {0, 2, 3}) {
            double lse = 0;
            for (int i = 0; i < 7; i++) {
                lse += Math.exp(logits.get(r, i));
            }
            expected += Math.log(lse) - logits.get(r, labels[r]);
        }
        assertEquals(expected / 3, Losses.crossEntropy(logits, labels).toFloatArray()[0], 1e-5);
        assertThrows(IllegalArgumentException.class, () -> Losses.crossEntropy(logits, new int[] {7, 0, 0, 0, 0}));
    }

    @Test
    void embedding() {
        Tensor table = rand(6, 4);
        int[] ids = {1, 5, 1, 0};
        GradCheck.check("embedding", List.of(table), in -> project(Embedding.lookup(in.get(0), ids)));
        assertThrows(IllegalArgumentException.class, () -> Embedding.lookup(table, new int[] {6}));
    }

    @Test
    void views() {
        Tensor a = rand(3, 4);
        GradCheck.check("reshape", List.of(a), in -> project(Elementwise.silu(in.get(0).reshape(2, -1))));
        GradCheck.check("transpose", List.of(a), in -> project(Elementwise.silu(in.get(0).transpose(0, 1))));
        GradCheck.check("slice", List.of(a), in -> project(Elementwise.silu(in.get(0).slice(1, 1, 3))));
        Tensor t = a.transpose(0, 1);
        assertEquals(a.get(2, 1), t.get(1, 2));
        assertEquals(a.get(1, 2), a.slice(1, 1, 3).get(1, 1));
    }

    @Test
    void leafGradientsAccumulateAcrossBackwardCalls() {
        Tensor w = rand(3).requiresGrad(true);
        Elementwise.sum(w).backward();
        Elementwise.sum(w).backward();
        assertArrayEquals(new float[] {2, 2, 2}, w.grad().toFloatArray());
    }

    @Test
    void noGradRecordsNothing() {
        Tensor w = rand(3).requiresGrad(true);
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            Tensor y = Elementwise.scale(w, 2f);
            assertEquals(false, y.requiresGrad());
        }
        assertEquals(true, Elementwise.scale(w, 2f).requiresGrad());
    }

    @Test
    void graphIsReleasedAfterBackward() {
        Tensor w = rand(3).requiresGrad(true);
        Tensor mid = Elementwise.silu(w);
        Tensor loss = Elementwise.sum(mid);
        loss.backward();
        assertEquals(null, mid.gradFn());
        assertEquals(null, mid.grad());
        assertEquals(null, loss.gradFn());
    }
}
