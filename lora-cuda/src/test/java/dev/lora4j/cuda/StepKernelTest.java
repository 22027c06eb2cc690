package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.autograd.Attention;
import dev.lora4j.autograd.Elementwise;
import dev.lora4j.autograd.Embedding;
import dev.lora4j.autograd.Losses;
import dev.lora4j.autograd.Rope;
import dev.lora4j.autograd.RmsNorm;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The kernels of the rest of a training step in the host emulation against lora4j's CPU autograd
 * ops (forward values and gradients, the gradient of Σ out ⊙ w for a random w) and its AdamW.
 * Tolerances: 1e-5 + 1e-5·|want| for element-wise kernels (RoPE, SwiGLU, embedding: the same float
 * operations up to exp/sin implementations), 2e-5 + 2e-5·|want| for reductions (RMSNorm,
 * cross-entropy, whose CPU versions sum in double), 5e-5 + 5e-5·|want| for attention (online
 * softmax rescaling against an exact two-pass softmax), 1e-6 relative for AdamW.
 */
class StepKernelTest {
    /** Extra tolerance of the device under test (0 in the emulation). */
    double slack;

    /** The device the launches run on; the GPU subclasses override it. */
    TestDevice device() {
        TestDevice d = new HostDevice();
        slack = d.slack();
        return d;
    }


    @Test
    void rmsNormForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(30);
        for (int[] s : new int[][] {{1, 1}, {7, 31}, {65, 207}, {3, 702}}) {
            int rows = s[0];
            int c = s[1];
            float[] x = Compare.uniform(rng, rows * c, 2f);
            float[] w = Compare.uniform(rng, c, 1.5f);
            float[] dyw = Compare.uniform(rng, rows * c, 1f);
            float[] dx0 = Compare.uniform(rng, rows * c, 1f);
            TestDevice dev = device();
            TestDevice.Buf xb = dev.floats(x);
            TestDevice.Buf wb = dev.floats(w);
            TestDevice.Buf y = dev.zeros(rows * c);
            TestDevice.Buf rstd = dev.zeros(rows);
            TestDevice.Buf dx = dev.floats(dx0);
            TestDevice.Buf dw = dev.zeros(c);
            dev.launch(Kernels.rmsNormForward(y, rstd, xb, wb, rows, c, 1e-5f));
            dev.launchAll(Kernels.rmsNormBackward(dx, dw, dev.floats(dyw), xb, wb, rstd, rows, c));
            dev.run();
            Tensor xt = Tensor.of(x, rows, c).requiresGrad(true);
            Tensor wt = Tensor.of(w, c).requiresGrad(true);
            xt.setGrad(Tensor.of(dx0.clone(), rows, c));
            Tensor yt = RmsNorm.apply(xt, wt, 1e-5f);
            Elementwise.weightedSum(yt, dyw).backward();
            String what = "rmsnorm " + rows + "x" + c;
            Compare.close(slack, what + " y", yt.toFloatArray(), y.floats(), 2e-5, 2e-5);
            Compare.close(slack, what + " dx", xt.grad().toFloatArray(), dx.floats(), 2e-5, 2e-5);
            Compare.close(slack, what + " dw", wt.grad().toFloatArray(), dw.floats(), 2e-5, 2e-5);
        }
    }

    /** cos/sin [positions, d/2] as Rope.Table builds them: the angle in float32, then cos and sin. */
    private static float[][] ropeTables(int d, int positions, double[] inv) {
        int half = d / 2;
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * (float) inv[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }

    @Test
    void ropeForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(31);
        for (int[] s : new int[][] {{1, 1, 1, 2}, {2, 7, 3, 8}, {1, 65, 2, 64}, {1, 31, 1, 702}}) {
            int b = s[0];
            int t = s[1];
            int h = s[2];
            int d = s[3];
            int n = b * t * h * d;
            double[] inv = Rope.inverseFrequencies(d, 10000.0, null, 1, 1, 1, 0);
            Rope.Table table = new Rope.Table(d, t + 3, inv);
            float[][] cs = ropeTables(d, t + 3, inv);
            float[] x = Compare.uniform(rng, n, 1f);
            float[] dyw = Compare.uniform(rng, n, 1f);
            TestDevice dev = device();
            TestDevice.Buf cos = dev.floats(cs[0]);
            TestDevice.Buf sin = dev.floats(cs[1]);
            TestDevice.Buf y = dev.zeros(n);
            TestDevice.Buf dx = dev.zeros(n);
            dev.launch(Kernels.rope(y, dev.floats(x), cos, sin, b, t, h, d, 3, false));
            dev.launch(Kernels.rope(dx, dev.floats(dyw), cos, sin, b, t, h, d, 3, true));
            dev.run();
            Tensor xt = Tensor.of(x, b, t, h, d).requiresGrad(true);
            Tensor yt = Rope.apply(xt, table, 3);
            Elementwise.weightedSum(yt, dyw).backward();
            String what = "rope " + b + "x" + t + "x" + h + "x" + d;
            Compare.close(slack, what + " y", yt.toFloatArray(), y.floats(), 1e-5, 1e-5);
            Compare.close(slack, what + " dx", xt.grad().toFloatArray(), dx.floats(), 1e-5, 1e-5);
        }
    }

    @Test
    void swigluForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(32);
        for (int n : new int[] {1, 7, 702, 65 * 207}) {
            float[] g = Compare.uniform(rng, n, 6f);
            float[] u = Compare.uniform(rng, n, 2f);
            float[] dyw = Compare.uniform(rng, n, 1f);
            TestDevice dev = device();
            TestDevice.Buf gb = dev.floats(g);
            TestDevice.Buf ub = dev.floats(u);
            TestDevice.Buf h = dev.zeros(n);
            TestDevice.Buf dg = dev.zeros(n);
            TestDevice.Buf du = dev.zeros(n);
            dev.launch(Kernels.swigluForward(h, gb, ub, n));
            dev.launch(Kernels.swigluBackward(dg, du, dev.floats(dyw), gb, ub, n));
            dev.run();
            Tensor gt = Tensor.of(g, n).requiresGrad(true);
            Tensor ut = Tensor.of(u, n).requiresGrad(true);
            Tensor ht = Elementwise.swiglu(gt, ut);
            Elementwise.weightedSum(ht, dyw).backward();
            Compare.close(slack, "swiglu " + n + " h", ht.toFloatArray(), h.floats(), 1e-5, 1e-5);
            Compare.close(slack, "swiglu " + n + " dgate", gt.grad().toFloatArray(), dg.floats(), 1e-5, 1e-5);
            Compare.close(slack, "swiglu " + n + " dup", ut.grad().toFloatArray(), du.floats(), 1e-5, 1e-5);
        }
    }

    @Test
    void embeddingGatherAndScatterAdd() {
        SplittableRandom rng = new SplittableRandom(33);
        for (int[] s : new int[][] {{1, 1, 1}, {31, 7, 65}, {207, 702, 7}}) {
            int vocab = s[0];
            int c = s[1];
            int n = s[2];
            int[] ids = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = rng.nextInt(vocab); // repeats: the scatter must add them all
            }
            Kernels.checkIds(ids, vocab);
            float[] table = Compare.uniform(rng, vocab * c, 1f);
            float[] dyw = Compare.uniform(rng, n * c, 1f);
            TestDevice dev = device();
            TestDevice.Buf idb = dev.ints(ids);
            TestDevice.Buf out = dev.zeros(n * c);
            TestDevice.Buf outBf16 = dev.zeros(n * c);
            TestDevice.Buf dtable = dev.zeros(vocab * c);
            dev.launch(Kernels.embedding(out, dev.floats(table), false, idb, n, c, vocab));
            dev.launch(Kernels.embedding(outBf16, dev.bf16(table), true, idb, n, c, vocab));
            dev.launch(Kernels.embeddingBackward(dtable, dev.floats(dyw), idb, n, c, vocab));
            dev.run();
            Tensor tt = Tensor.of(table, vocab, c).requiresGrad(true);
            Tensor yt = Embedding.lookup(tt, ids);
            Elementwise.weightedSum(yt, dyw).backward();
            Tensor bf = new Tensor(BufferStorage.of(table, DType.BF16), vocab, c);
            String what = "embedding V" + vocab + " C" + c + " n" + n;
            Compare.close(slack, what, yt.toFloatArray(), out.floats(), 0, 0);
            Compare.close(slack, what + " bf16", Embedding.lookup(bf, ids).toFloatArray(), outBf16.floats(), 0, 0);
            Compare.close(slack, what + " dtable", tt.grad().toFloatArray(), dtable.floats(), 1e-5, 1e-5);
        }
    }

    @Test
    void crossEntropyForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(34);
        for (int[] s : new int[][] {{1, 1}, {7, 31}, {65, 702}, {5, 4097}}) {
            int rows = s[0];
            int vocab = s[1];
            float[] z = Compare.uniform(rng, rows * vocab, 8f);
            int[] labels = new int[rows];
            for (int r = 0; r < rows; r++) {
                labels[r] = r % 3 == 2 ? Kernels.IGNORE_INDEX : rng.nextInt(vocab);
            }
            TestDevice dev = device();
            TestDevice.Buf zb = dev.floats(z);
            TestDevice.Buf lb = dev.ints(labels);
            TestDevice.Buf loss = dev.zeros(1);
            TestDevice.Buf count = dev.zeros(1);
            TestDevice.Buf lse = dev.zeros(rows);
            TestDevice.Buf dz = dev.zeros(rows * vocab);
            dev.launchAll(Kernels.crossEntropyForward(loss, count, dev.zeros(rows), lse, zb, lb, rows, vocab));
            dev.launch(Kernels.crossEntropyBackward(dz, zb, lse, lb, count, dev.floats(new float[] {1.5f}), rows, vocab));
            dev.run();
            Tensor zt = Tensor.of(z, rows, vocab).requiresGrad(true);
            Tensor lt = Losses.crossEntropy(zt, labels);
            Elementwise.scale(lt, 1.5f).backward();
            String what = "cross_entropy " + rows + "x" + vocab;
            Compare.close(slack, what + " loss", lt.toFloatArray(), loss.floats(), 2e-5, 2e-5);
            Compare.close(slack, what + " dz", zt.grad().toFloatArray(), dz.floats(), 2e-5, 2e-5);
        }
    }

    @Test
    void crossEntropyOfOnlyIgnoredRowsIsNaNAsInPyTorch() {
        TestDevice dev = device();
        TestDevice.Buf loss = dev.zeros(1);
        TestDevice.Buf count = dev.zeros(1);
        dev.launchAll(Kernels.crossEntropyForward(loss, count, dev.zeros(2), dev.zeros(2), dev.floats(new float[6]),
                dev.ints(new int[] {Kernels.IGNORE_INDEX, Kernels.IGNORE_INDEX}), 2, 3));
        dev.run();
        assertEquals(Float.NaN, loss.floats()[0]);
        assertEquals(0f, count.floats()[0]);
    }

    @Test
    void adamWMatchesTheCpuOptimizerOverThreeSteps() {
        SplittableRandom rng = new SplittableRandom(35);
        int n = 702;
        float[] p0 = Compare.uniform(rng, n, 1f);
        Tensor param = Tensor.of(p0.clone(), n).requiresGrad(true);
        AdamW cpu = new AdamW(List.of(param), 3e-3, 0.9, 0.999, 1e-8, 0.01);
        TestDevice dev = device();
        TestDevice.Buf p = dev.floats(p0);
        TestDevice.Buf m = dev.zeros(n);
        TestDevice.Buf v = dev.zeros(n);
        for (int step = 1; step <= 3; step++) {
            float[] g = Compare.uniform(rng, n, step);
            param.setGrad(Tensor.of(g.clone(), n));
            cpu.step();
            dev.launch(Kernels.adamW(p, m, v, dev.floats(g), n, 3e-3, 0.9, 0.999, 1e-8, 0.01, step));
        }
        dev.run();
        Compare.close(slack, "adamw 702 x 3 steps p", param.toFloatArray(), p.floats(), 0, 1e-6);
        Compare.close(slack, "adamw 702 x 3 steps m", cpu.moments(0)[0], m.floats(), 0, 1e-6);
        Compare.close(slack, "adamw 702 x 3 steps v", cpu.moments(0)[1], v.floats(), 0, 1e-6);
    }

    @Test
    void attentionForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(36);
        // b, t, h, g, d, queryOffset
        for (int[] s : new int[][] {{1, 1, 1, 1, 1, 0}, {1, 7, 4, 2, 8, 0}, {2, 31, 2, 1, 65, 0}, {1, 65, 3, 3, 16, 0},
            {1, 7, 2, 1, 128, 5}}) {
            int b = s[0];
            int t = s[1];
            int h = s[2];
            int g = s[3];
            int d = s[4];
            int off = s[5];
            int sk = off + t;
            float[] q = Compare.uniform(rng, b * t * h * d, 1.5f);
            float[] k = Compare.uniform(rng, b * sk * g * d, 1.5f);
            float[] v = Compare.uniform(rng, b * sk * g * d, 1f);
            float[] dyw = Compare.uniform(rng, b * t * h * d, 1f);
            TestDevice dev = device();
            TestDevice.Buf qb = dev.floats(q);
            TestDevice.Buf kb = dev.floats(k);
            TestDevice.Buf vb = dev.floats(v);
            TestDevice.Buf out = dev.zeros(b * t * h * d);
            TestDevice.Buf lse = dev.zeros(b * h * t);
            TestDevice.Buf dq = dev.zeros(b * t * h * d);
            TestDevice.Buf dk = dev.zeros(b * sk * g * d);
            TestDevice.Buf dv = dev.zeros(b * sk * g * d);
            dev.launch(Kernels.attentionForward(out, lse, qb, kb, vb, b, t, h, g, d, off));
            dev.launchAll(Kernels.attentionBackward(dq, dk, dv, dev.zeros(b * h * t), qb, kb, vb, out, dev.floats(dyw), lse, b, t,
                    h, g, d, off));
            dev.run();
            Tensor qt = Tensor.of(q, b, t, h, d).requiresGrad(true);
            Tensor kt = Tensor.of(k, b, sk, g, d).requiresGrad(true);
            Tensor vt = Tensor.of(v, b, sk, g, d).requiresGrad(true);
            Tensor ot = Attention.causal(qt, kt, vt, off);
            Elementwise.weightedSum(ot, dyw).backward();
            String what = "attention b" + b + " t" + t + " h" + h + " g" + g + " d" + d + (off > 0 ? " offset " + off : "");
            Compare.close(slack, what + " out", ot.toFloatArray(), out.floats(), 5e-5, 5e-5);
            Compare.close(slack, what + " dq", qt.grad().toFloatArray(), dq.floats(), 5e-5, 5e-5);
            Compare.close(slack, what + " dk", kt.grad().toFloatArray(), dk.floats(), 5e-5, 5e-5);
            Compare.close(slack, what + " dv", vt.grad().toFloatArray(), dv.floats(), 5e-5, 5e-5);
        }
    }
}
