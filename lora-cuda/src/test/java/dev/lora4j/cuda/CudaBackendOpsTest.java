package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.backend.AdamWStep;
import dev.lora4j.backend.Arena;
import dev.lora4j.backend.AttentionMask;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Gelu;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantizedStorage;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every operation of the device-resident {@link CudaBackend} against the CPU reference
 * ({@code Backends.scalar()}) on random inputs at awkward sizes, with the device being the host
 * emulation of the kernels ({@link EmulatedRuntime}): operands are uploaded once, the operation runs
 * as launches on device buffers, and only the result is read back for the comparison.
 */
class CudaBackendOpsTest {
    static CudaBackend gpu;
    private static final Backend CPU = Backends.scalar();
    private final SplittableRandom rng = new SplittableRandom(11);

    @BeforeAll
    static void device() {
        HostEmulation.driver();
        gpu = EmulatedCudaProvider.shared();
    }

    private Tensor host(int... shape) {
        return Tensor.uniform(rng, -1f, 1f, shape);
    }

    private Tensor dev(Tensor h) {
        return gpu.fromHost(h.toFloatArray(), h.shape());
    }

    private static void close(String what, Tensor expected, Tensor actualOnDevice, double tol) {
        float[] e = expected.toFloatArray();
        float[] a = new float[e.length];
        gpu.toHost(a, 0, actualOnDevice);
        for (int i = 0; i < e.length; i++) {
            if (Float.isInfinite(e[i]) && e[i] == a[i]) { // lse −∞ of a row that sees no key, on both sides
                e[i] = 0f;
                a[i] = 0f;
            }
        }
        Compare.close(what, e, a, tol, tol);
    }

    @Test
    void storageRoundTripsAndDeviceIsCuda() {
        for (int n : new int[] {1, 7, 65}) {
            Tensor h = host(n, 3);
            Tensor d = dev(h);
            assertSame(Device.CUDA, d.device());
            assertTrue(d.storage() instanceof CudaStorage);
            close("round trip", h, d, 0);
            // a transposed view materialized on the device, then a slice written into
            Tensor hc = h.transpose(0, 1).contiguous();
            Tensor dc = gpu.empty(3, n);
            gpu.copy(dc, new Tensor(d.storage(), new int[] {3, n}, new int[] {1, 3}, 0));
            close("transpose copy", hc, dc, 0);
            gpu.fill(new Tensor(dc.storage(), new int[] {3, 1}, new int[] {n, 1}, 0), 5f);
            float[] back = dc.toFloatArray();
            for (int r = 0; r < 3; r++) {
                assertEquals(5f, back[r * n]);
            }
        }
    }

    @Test
    void gemmAllTransposesAndOffsets() {
        for (int[] s : new int[][] {{1, 1, 1}, {7, 31, 5}, {65, 7, 33}}) {
            int m = s[0], n = s[1], k = s[2];
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    Tensor a = host(2 + m * k);
                    Tensor b = host(m * 0 + n * k);
                    Tensor c = host(m * n);
                    Tensor dc = dev(c);
                    CPU.gemm(ta, tb, m, n, k, 0.5f, a.storage(), 2, ta ? m : k, b.storage(), 0, tb ? k : n, 0.25f, c.storage(), 0,
                            n);
                    gpu.gemm(ta, tb, m, n, k, 0.5f, dev(a).storage(), 2, ta ? m : k, dev(b).storage(), 0, tb ? k : n, 0.25f,
                            dc.storage(), 0, n);
                    close("gemm " + m + "x" + n + "x" + k + " " + ta + tb, c, dc, 2e-5);
                }
            }
        }
    }

    @Test
    void linearWithF32Bf16AndNf4Weights() {
        int rows = 7, in = 65, out = 31;
        Tensor x = host(rows, in);
        Tensor wf = host(out, in);
        Tensor bias = host(out);
        Tensor wb = new Tensor(BufferStorage.of(wf.toFloatArray(), DType.BF16), out, in);
        Tensor wq = new Tensor(QuantizedStorage.quantize("w", wf.storage(), 0, new int[] {out, in}, QuantConfig.NF4_DQ, DType.F32), out, in);
        for (Tensor w : new Tensor[] {wf, wb, wq}) {
            Tensor dw = gpu.toDevice(w);
            assertEquals(w.dtype(), dw.dtype(), "toDevice keeps the storage kind");
            Tensor y = Tensor.zeros(rows, out);
            CPU.linear(y, x, w, bias);
            Tensor dy = gpu.empty(rows, out);
            gpu.linear(dy, dev(x), dw, dev(bias));
            close("linear " + w.dtype(), y, dy, 2e-5);
            Tensor g = host(rows, out);
            Tensor dx = host(rows, in);
            Tensor ddx = dev(dx);
            CPU.linearBackwardInput(dx, g, w);
            gpu.linearBackwardInput(ddx, dev(g), dw);
            close("linearBackwardInput " + w.dtype(), dx, ddx, 2e-5);
        }
        Tensor g = host(rows, out);
        Tensor dW = host(out, in);
        Tensor dB = host(out);
        Tensor ddW = dev(dW);
        Tensor ddB = dev(dB);
        CPU.linearBackwardWeight(dW, dB, g, x);
        gpu.linearBackwardWeight(ddW, ddB, dev(g), dev(x));
        close("linearBackwardWeight dW", dW, ddW, 2e-5);
        close("linearBackwardWeight dB", dB, ddB, 2e-5);
    }

    @Test
    void loraForwardAndBackward() {
        int rows = 7, in = 33, out = 31, r = 4;
        float s = 2f;
        Tensor xd = host(rows, in), a = host(r, in), b = host(out, r), y = host(rows, out);
        Tensor dy = dev(y);
        Tensor xa = Tensor.zeros(rows, r), dxa = gpu.empty(rows, r);
        CPU.loraForward(y, xa, xd, a, b, s);
        gpu.loraForward(dy, dxa, dev(xd), dev(a), dev(b), s);
        close("lora y", y, dy, 2e-5);
        close("lora xa", xa, dxa, 2e-5);
        Tensor g = host(rows, out), dXd = host(rows, in), dA = host(r, in), dB = host(out, r);
        Tensor gdXd = dev(dXd), gdA = dev(dA), gdB = dev(dB);
        CPU.loraBackward(dXd, dA, dB, Tensor.zeros(rows, r), g, xd, xa, a, b, s);
        gpu.loraBackward(gdXd, gdA, gdB, gpu.empty(rows, r), dev(g), dev(xd), dxa, dev(a), dev(b), s);
        close("lora dXd", dXd, gdXd, 2e-5);
        close("lora dA", dA, gdA, 2e-5);
        close("lora dB", dB, gdB, 2e-5);
    }

    @Test
    void elementwiseOps() {
        for (int n : new int[] {1, 7, 31, 65}) {
            Tensor a = host(n), b = host(n), c = host(n);
            check2("add", n, a, b, (be, o, x, y) -> be.add(o, x, y));
            check2("mul", n, a, b, (be, o, x, y) -> be.mul(o, x, y));
            check2("swiglu", n, a, b, (be, o, x, y) -> be.swiglu(o, x, y));
            check2("geglu tanh", n, a, b, (be, o, x, y) -> be.geglu(o, x, y, Gelu.TANH));
            check2("geglu erf", n, a, b, (be, o, x, y) -> be.geglu(o, x, y, Gelu.ERF));
            check2("silu", n, a, b, (be, o, x, y) -> be.silu(o, x));
            check2("scale", n, a, b, (be, o, x, y) -> be.scale(o, x, -1.5f));
            check2("gelu tanh", n, a, b, (be, o, x, y) -> be.gelu(o, x, Gelu.TANH));
            check2("gelu erf", n, a, b, (be, o, x, y) -> be.gelu(o, x, Gelu.ERF));
            check2("softCap", n, a, b, (be, o, x, y) -> be.softCap(o, x, 0.7f));
            check2("dropout", n, a, b, (be, o, x, y) -> be.dropout(o, x, 0.3f, 1234L));
            // accumulating ops: the output starts as c
            check2acc("addScaled", c, a, b, (be, o, x, y) -> be.addScaled(o, x, 0.75f));
            check2acc("addProduct", c, a, b, (be, o, x, y) -> be.addProduct(o, x, y));
            check2acc("siluBackward", c, a, b, (be, o, x, y) -> be.siluBackward(o, y, x));
            check2acc("geluBackward tanh", c, a, b, (be, o, x, y) -> be.geluBackward(o, y, x, Gelu.TANH));
            check2acc("geluBackward erf", c, a, b, (be, o, x, y) -> be.geluBackward(o, y, x, Gelu.ERF));
            check2acc("softCapBackward", c, a, b, (be, o, x, y) -> be.softCapBackward(o, x, y, 0.7f));
            Tensor dg = host(n), du = host(n), gdg = dev(dg), gdu = dev(du);
            CPU.swigluBackward(dg, du, c, a, b);
            gpu.swigluBackward(gdg, gdu, dev(c), dev(a), dev(b));
            close("swigluBackward dGate", dg, gdg, 1e-6);
            close("swigluBackward dUp", du, gdu, 1e-6);
            gpu.swigluBackward(null, gdu, dev(c), dev(a), dev(b));
            CPU.swigluBackward(null, du, c, a, b);
            close("swigluBackward dUp only", du, gdu, 1e-6);
            CPU.gegluBackward(dg, du, c, a, b, Gelu.ERF);
            gpu.gegluBackward(gdg, gdu, dev(c), dev(a), dev(b), Gelu.ERF);
            close("gegluBackward dGate", dg, gdg, 2e-6);
            close("gegluBackward dUp", du, gdu, 2e-6);
            assertEquals(CPU.sum(a), gpu.sum(dev(a)), 1e-5);
            assertEquals(CPU.sumOfSquares(a), gpu.sumOfSquares(dev(a)), 1e-5);
            float[] w = host(n).toFloatArray();
            assertEquals(CPU.weightedSum(a, w), gpu.weightedSum(dev(a), w), 1e-5);
        }
        Tensor big = host(70000);
        assertEquals(CPU.sumOfSquares(big), gpu.sumOfSquares(dev(big)), 1e-6 * CPU.sumOfSquares(big));
    }

    interface Op2 {
        void run(Backend be, Tensor out, Tensor a, Tensor b);
    }

    private void check2(String name, int n, Tensor a, Tensor b, Op2 op) {
        Tensor o = Tensor.zeros(n);
        Tensor d = gpu.empty(n);
        op.run(CPU, o, a, b);
        op.run(gpu, d, dev(a), dev(b));
        close(name, o, d, 2e-6);
    }

    private void check2acc(String name, Tensor c, Tensor a, Tensor b, Op2 op) {
        Tensor o = c.copy();
        Tensor d = dev(c);
        op.run(CPU, o, a, b);
        op.run(gpu, d, dev(a), dev(b));
        close(name, o, d, 2e-6);
    }

    @Test
    void rowOpsNormsAndSoftmax() {
        for (int[] s : new int[][] {{1, 1}, {7, 31}, {3, 65}}) {
            int rows = s[0], c = s[1];
            Tensor x = host(rows, c), w = host(c), bias = host(c), dy = host(rows, c);
            Tensor o = Tensor.zeros(rows, c), d = gpu.empty(rows, c);
            CPU.addRowVector(o, x, bias);
            gpu.addRowVector(d, dev(x), dev(bias));
            close("addRowVector", o, d, 0);
            Tensor sr = host(c), dsr = dev(sr);
            CPU.sumRows(sr, x);
            gpu.sumRows(dsr, dev(x));
            close("sumRows", sr, dsr, 1e-6);
            for (float off : new float[] {0f, 1f}) {
                Tensor rstd = Tensor.zeros(rows), drstd = gpu.empty(rows);
                CPU.rmsNorm(o, rstd, x, w, off, 1e-5f);
                gpu.rmsNorm(d, drstd, dev(x), dev(w), off, 1e-5f);
                close("rmsNorm " + off, o, d, 2e-6);
                close("rmsNorm rstd", rstd, drstd, 2e-6);
                Tensor dx = host(rows, c), dw = host(c), gdx = dev(dx), gdw = dev(dw);
                CPU.rmsNormBackward(dx, dw, dy, x, w, off, rstd);
                gpu.rmsNormBackward(gdx, gdw, dev(dy), dev(x), dev(w), off, drstd);
                close("rmsNormBackward dx", dx, gdx, 1e-5);
                close("rmsNormBackward dw", dw, gdw, 1e-5);
            }
            Tensor mean = Tensor.zeros(rows), rstd = Tensor.zeros(rows), dmean = gpu.empty(rows), drstd = gpu.empty(rows);
            CPU.layerNorm(o, mean, rstd, x, w, bias, 1e-5f);
            gpu.layerNorm(d, dmean, drstd, dev(x), dev(w), dev(bias), 1e-5f);
            close("layerNorm", o, d, 1e-5);
            Tensor dx = host(rows, c), dw = host(c), db = host(c), gdx = dev(dx), gdw = dev(dw), gdb = dev(db);
            CPU.layerNormBackward(dx, dw, db, dy, x, w, mean, rstd);
            gpu.layerNormBackward(gdx, gdw, gdb, dev(dy), dev(x), dev(w), dmean, drstd);
            close("layerNormBackward dx", dx, gdx, 2e-5);
            close("layerNormBackward dw", dw, gdw, 1e-5);
            close("layerNormBackward db", db, gdb, 1e-5);
            CPU.softmax(o, x);
            gpu.softmax(d, dev(x));
            close("softmax", o, d, 1e-6);
            Tensor sdx = host(rows, c), gsdx = dev(sdx);
            CPU.softmaxBackward(sdx, dy, o);
            gpu.softmaxBackward(gsdx, dev(dy), d);
            close("softmaxBackward", sdx, gsdx, 1e-6);
        }
    }

    @Test
    void crossEntropyForwardAndBackward() {
        for (int[] s : new int[][] {{1, 7}, {7, 31}, {5, 300}}) {
            int rows = s[0], v = s[1];
            Tensor z = Tensor.uniform(rng, -4f, 4f, rows, v);
            int[] labels = new int[rows];
            for (int r = 0; r < rows; r++) {
                labels[r] = r % 3 == 2 ? -100 : rng.nextInt(v);
            }
            Tensor lse = Tensor.zeros(rows), dlse = gpu.zeros(rows);
            double expected = CPU.crossEntropy(lse, z, labels, -100);
            double actual = gpu.crossEntropy(dlse, dev(z), labels, -100);
            assertEquals(expected, actual, 1e-5 * Math.max(1, Math.abs(expected)));
            Tensor dz = host(rows, v), gdz = dev(dz);
            CPU.crossEntropyBackward(dz, z, lse, labels, -100, 0.3f);
            gpu.crossEntropyBackward(gdz, dev(z), dlse, labels, -100, 0.3f);
            close("crossEntropyBackward", dz, gdz, 1e-6);
        }
    }

    @Test
    void ropeFullAndPartial() {
        int b = 2, t = 7, h = 3, d = 8, positions = 12;
        for (int rotary : new int[] {8, 4}) {
            Tensor cos = host(positions, rotary / 2), sin = host(positions, rotary / 2);
            Tensor x = host(b, t, h, d);
            for (boolean inverse : new boolean[] {false, true}) {
                Tensor o = Tensor.zeros(b, t, h, d), g = gpu.empty(b, t, h, d);
                CPU.rope(o, x, cos, sin, rotary, 3, inverse);
                gpu.rope(g, dev(x), dev(cos), dev(sin), rotary, 3, inverse);
                close("rope rotary " + rotary + (inverse ? " inverse" : ""), o, g, 1e-6);
            }
        }
    }

    @Test
    void causalGroupedAttentionForwardAndBackward() {
        int b = 2, t = 7, h = 4, g = 2, d = 5;
        for (int offset : new int[] {0, 3}) {
            attentionCase(b, t, h, g, d, AttentionMask.causal(offset, d));
        }
        // Gemma 2's soft-capped scores, Mistral's sliding window, a padded batch (a row that sees nothing)
        attentionCase(b, t, h, g, d, AttentionMask.causal(0, d).withSoftCap(0.8f).withScale(0.9f));
        attentionCase(b, t, h, g, d, AttentionMask.causal(3, d).withWindow(4));
        attentionCase(b, t, h, g, d, AttentionMask.causal(0, d).withKeyLengths(new int[] {5, 0}));
        attentionCase(b, t, h, g, d, AttentionMask.causal(2, d).withWindow(3).withKeyLengths(new int[] {6, 9}).withSoftCap(2f));
        Tensor q = dev(host(1, 2, 2, 4));
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> gpu.attention(gpu.empty(1, 2, 2, 4), gpu.empty(1, 2, 2), q, q, q,
                        new AttentionMask(0, 0.5f, false, 0, null, 0f)));
        assertTrue(e.getMessage().contains("attention") && e.getMessage().contains("CUDA"), e.getMessage());
    }

    private void attentionCase(int b, int t, int h, int g, int d, AttentionMask mask) {
        int offset = mask.queryOffset();
        {
            int s = offset + t;
            Tensor q = host(b, t, h, d), k = host(b, s, g, d), v = host(b, s, g, d), dout = host(b, t, h, d);
            Tensor o = Tensor.zeros(b, t, h, d), lse = Tensor.zeros(b, h, t);
            Tensor go = gpu.empty(b, t, h, d), glse = gpu.empty(b, h, t);
            CPU.attention(o, lse, q, k, v, mask);
            gpu.attention(go, glse, dev(q), dev(k), dev(v), mask);
            close("attention out " + mask, o, go, 1e-6);
            close("attention lse " + mask, lse, glse, 1e-5);
            Tensor dq = Tensor.zeros(b, t, h, d), dk = Tensor.zeros(b, s, g, d), dv = Tensor.zeros(b, s, g, d);
            Tensor gdq = gpu.empty(b, t, h, d), gdk = gpu.empty(b, s, g, d), gdv = gpu.empty(b, s, g, d);
            CPU.attentionBackward(dq, dk, dv, dout, q, k, v, o, lse, mask);
            gpu.attentionBackward(gdq, gdk, gdv, dev(dout), dev(q), dev(k), dev(v), go, glse, mask);
            close("attention dq " + mask, dq, gdq, 1e-5);
            close("attention dk " + mask, dk, gdk, 1e-5);
            close("attention dv " + mask, dv, gdv, 1e-5);
        }
    }

    @Test
    void embeddingGatherAndScatter() {
        int vocab = 31, c = 7;
        int[] ids = {3, 0, 30, 3, 17, 3};
        Tensor table = host(vocab, c);
        for (Tensor tab : new Tensor[] {table, new Tensor(BufferStorage.of(table.toFloatArray(), DType.BF16), vocab, c)}) {
            Tensor o = Tensor.zeros(ids.length, c), g = gpu.empty(ids.length, c);
            CPU.gather(o, tab, ids);
            gpu.gather(g, gpu.toDevice(tab), ids);
            close("gather " + tab.dtype(), o, g, 0);
        }
        Tensor dOut = host(ids.length, c), dt = host(vocab, c), gdt = dev(dt);
        CPU.scatterAdd(dt, dOut, ids);
        gpu.scatterAdd(gdt, dev(dOut), ids);
        close("scatterAdd", dt, gdt, 1e-6);
    }

    @Test
    void optimizers() {
        for (int n : new int[] {1, 65}) {
            Tensor w = host(n), g = host(n), m = host(n), v = Tensor.uniform(rng, 0f, 1f, n);
            Tensor gw = dev(w), gm = dev(m), gv = dev(v);
            AdamWStep step = new AdamWStep(0.999f, 0.9f, 0.999f, 0.1f, 0.001f, 0.01f, Math.sqrt(1 - 0.999), 1e-8);
            CPU.adamW(w, g, m, v, step);
            gpu.adamW(gw, dev(g), gm, gv, step);
            close("adamW w", w, gw, 1e-6);
            close("adamW m", m, gm, 1e-6);
            close("adamW v", v, gv, 1e-6);
            for (boolean nesterov : new boolean[] {false, true}) {
                Tensor buf = host(n), gbuf = dev(buf);
                CPU.sgd(w, g, buf, 0.1f, 0.9f, 0.8f, 0.01f, nesterov, false);
                gpu.sgd(gw, dev(g), gbuf, 0.1f, 0.9f, 0.8f, 0.01f, nesterov, false);
                close("sgd w", w, gw, 1e-6);
                close("sgd buf", buf, gbuf, 1e-6);
            }
        }
    }

    @Test
    void arenaReusesBuffersAndOperandsMustBeOnTheDevice() {
        long before;
        try (Arena a = gpu.openArena()) {
            gpu.empty(1000);
            assertEquals(4000, a.bytesHandedOut());
        }
        before = gpu.memory().driverAllocations();
        try (Arena a = gpu.openArena()) {
            gpu.empty(1000);
        }
        assertEquals(before, gpu.memory().driverAllocations(), "the second step reuses the first one's buffer");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> gpu.add(gpu.empty(3), Tensor.zeros(3), gpu.empty(3)));
        assertTrue(e.getMessage().contains("CPU") && e.getMessage().contains("Tensor.to(Device.CUDA)"), e.getMessage());
    }
}
