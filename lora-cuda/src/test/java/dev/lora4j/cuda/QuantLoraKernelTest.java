package dev.lora4j.cuda;

import dev.lora4j.autograd.Elementwise;
import dev.lora4j.autograd.MatMul;
import dev.lora4j.backend.Backends;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantType;
import dev.lora4j.quant.QuantizedStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * 4-bit dequantization, the fused 4-bit product and the fused LoRA forward and backward in the host
 * emulation, against lora-quant's QuantizedStorage.decode (dequantization: exact, the same float
 * operations) and lora4j's CPU autograd (products: tolerance 2e-5 + 2e-5·|want|, F32 sums in another order).
 */
class QuantLoraKernelTest {
    /** Extra tolerance of the device under test (0 in the emulation). */
    double slack;

    /** The device the launches run on; the GPU subclasses override it. */
    TestDevice device() {
        TestDevice d = new HostDevice();
        slack = d.slack();
        return d;
    }

    private static final QuantConfig[] CONFIGS = {
        new QuantConfig(QuantType.NF4, 64, false), new QuantConfig(QuantType.NF4, 64, true),
        new QuantConfig(QuantType.FP4, 32, true), new QuantConfig(QuantType.FP4, 128, false)};

    static QuantizedStorage quantize(SplittableRandom rng, int rows, int cols, QuantConfig config) {
        float[] w = Compare.uniform(rng, rows * cols, 0.5f);
        return QuantizedStorage.quantize("w", new FloatStorage(w), 0, new int[] {rows, cols}, config, DType.F32);
    }

    static FrozenWeight.Quant4 upload(TestDevice dev, QuantizedStorage q) {
        KernelBuffer code = dev.floats(q.type().code());
        if (!q.isDoubleQuant()) {
            return new FrozenWeight.Quant4(dev.bytes(q.packed()), dev.floats(q.absmax()), null, null, null, 0f, code, q.blocksize(),
                    0, q.size());
        }
        QuantizedStorage.NestedAbsmax n = q.nested();
        return new FrozenWeight.Quant4(dev.bytes(q.packed()), null, dev.bytes(n.codes()), dev.floats(n.absmax()), dev.floats(n.map()),
                (float) n.offset(), code, q.blocksize(), n.blocksize(), q.size());
    }

    static float[] decode(QuantizedStorage q) {
        float[] out = new float[Math.toIntExact(q.size())];
        q.decode(0, out.length, out, 0);
        return out;
    }

    @Test
    void dequantizationMatchesQuantizedStorageExactly() {
        SplittableRandom rng = new SplittableRandom(20);
        TestDevice dev = device();
        List<Object[]> cases = new ArrayList<>();
        int[][] shapes = {{1, 1}, {7, 31}, {65, 207}, {31, 702}};
        for (QuantConfig config : CONFIGS) {
            for (int[] s : shapes) {
                QuantizedStorage q = quantize(rng, s[0], s[1], config);
                FrozenWeight.Quant4 w = upload(dev, q);
                TestDevice.Buf f32 = dev.zeros(s[0] * s[1]);
                TestDevice.Buf bf16 = dev.bytes(new byte[2 * s[0] * s[1]]);
                dev.launch(Kernels.dequant4(f32, w, false));
                dev.launch(Kernels.dequant4(bf16, w, true));
                cases.add(new Object[] {config + " " + s[0] + "x" + s[1], q, f32, bf16});
            }
        }
        dev.run();
        for (Object[] c : cases) {
            float[] want = decode((QuantizedStorage) c[1]);
            Compare.close(slack, "dequant4_f32 " + c[0], want, ((TestDevice.Buf) c[2]).floats(), 0, 0);
            Compare.close(slack, "dequant4_bf16 " + c[0], Compare.bf16Round(want), widen(((TestDevice.Buf) c[3]).raw()), 0, 0);
        }
    }

    static float[] widen(byte[] bf16) {
        float[] out = new float[bf16.length / 2];
        for (int i = 0; i < out.length; i++) {
            int bits = (bf16[2 * i] & 0xFF) | (bf16[2 * i + 1] & 0xFF) << 8;
            out[i] = Float.intBitsToFloat(bits << 16);
        }
        return out;
    }

    @Test
    void fused4BitProductMatchesGemmOverTheQuantizedStorage() {
        SplittableRandom rng = new SplittableRandom(21);
        TestDevice dev = device();
        List<Object[]> cases = new ArrayList<>();
        int[][] sizes = {{1, 7, 31}, {7, 65, 207}, {31, 31, 702}};
        for (QuantConfig config : CONFIGS) {
            for (int[] s : sizes) {
                int m = s[0];
                int n = s[1];
                int k = s[2];
                for (boolean transW : new boolean[] {true, false}) {
                    QuantizedStorage q = transW ? quantize(rng, n, k, config) : quantize(rng, k, n, config);
                    float[] a = Compare.uniform(rng, m * k, 1f);
                    float[] c0 = Compare.uniform(rng, m * n, 1f);
                    TestDevice.Buf c = dev.floats(c0);
                    dev.launch(Kernels.gemm4(c, dev.floats(a), upload(dev, q), m, n, k, transW, 0.75f, 0.5f));
                    cases.add(new Object[] {config + " " + m + "x" + n + "x" + k + (transW ? " Wᵀ" : ""), q, a, c0, c, s, transW});
                }
            }
        }
        dev.run();
        for (Object[] c : cases) {
            int[] s = (int[]) c[5];
            boolean transW = (Boolean) c[6];
            float[] want = ((float[]) c[3]).clone();
            // the CPU backend widens the 4-bit storage panel by panel: lora4j's own QLoRA product
            Backends.scalar().gemm(false, transW, s[0], s[1], s[2], 0.75f, new FloatStorage((float[]) c[2]), 0, s[2],
                    (QuantizedStorage) c[1], 0, transW ? s[2] : s[1], 0.5f, new FloatStorage(want), 0, s[1]);
            Compare.close(slack, "gemm4_f32 " + c[0], want, ((TestDevice.Buf) c[4]).floats(), 2e-5, 2e-5);
        }
    }

    @Test
    void fusedLoraForwardAndBackwardMatchAutograd() {
        SplittableRandom rng = new SplittableRandom(22);
        int[][] sizes = {{1, 7, 31, 1}, {7, 65, 207, 8}, {65, 31, 702, 16}};
        for (boolean quantized : new boolean[] {false, true}) {
            TestDevice dev = device();
            List<Object[]> cases = new ArrayList<>();
            for (int[] s : sizes) {
                int m = s[0];
                int n = s[1];
                int k = s[2];
                int r = s[3];
                float scale = 2f / r;
                float[] w0;
                FrozenWeight fw;
                if (quantized) {
                    QuantizedStorage q = quantize(rng, n, k, CONFIGS[1]);
                    w0 = decode(q);
                    fw = upload(dev, q);
                } else {
                    w0 = Compare.bf16Round(Compare.uniform(rng, n * k, 0.5f));
                    fw = new FrozenWeight.Bf16(dev.bf16(w0), (long) n * k);
                }
                float[] x = Compare.uniform(rng, m * k, 1f);
                float[] a = Compare.uniform(rng, r * k, 0.3f);
                float[] b = Compare.uniform(rng, n * r, 0.3f);
                float[] dy = Compare.uniform(rng, m * n, 1f);
                float[] dx0 = Compare.uniform(rng, m * k, 1f);
                float[] dA0 = Compare.uniform(rng, r * k, 1f);
                float[] dB0 = Compare.uniform(rng, n * r, 1f);
                TestDevice.Buf xb = dev.floats(x);
                TestDevice.Buf ab = dev.floats(a);
                TestDevice.Buf bb = dev.floats(b);
                TestDevice.Buf y = dev.zeros(m * n);
                TestDevice.Buf u = dev.zeros(m * r);
                TestDevice.Buf v = dev.zeros(m * r);
                TestDevice.Buf dx = dev.floats(dx0);
                TestDevice.Buf dA = dev.floats(dA0);
                TestDevice.Buf dB = dev.floats(dB0);
                dev.launchAll(Kernels.loraForward(y, u, xb, fw, ab, bb, m, n, k, r, scale));
                dev.launchAll(Kernels.loraBackward(dx, dA, dB, v, dev.floats(dy), xb, u, fw, ab, bb, m, n, k, r, scale));
                cases.add(new Object[] {s, scale, w0, x, a, b, dy, dx0, dA0, dB0, y, dx, dA, dB});
            }
            dev.run();
            for (Object[] c : cases) {
                int[] s = (int[]) c[0];
                int m = s[0];
                int n = s[1];
                int k = s[2];
                int r = s[3];
                float scale = (Float) c[1];
                Tensor w = Tensor.of((float[]) c[2], n, k);
                Tensor x = Tensor.of((float[]) c[3], m, k).requiresGrad(true);
                Tensor a = Tensor.of((float[]) c[4], r, k).requiresGrad(true);
                Tensor b = Tensor.of((float[]) c[5], n, r).requiresGrad(true);
                x.setGrad(Tensor.of(((float[]) c[7]).clone(), m, k));
                a.setGrad(Tensor.of(((float[]) c[8]).clone(), r, k));
                b.setGrad(Tensor.of(((float[]) c[9]).clone(), n, r));
                Tensor yRef = Elementwise.add(MatMul.matmul(x, false, w, true),
                        Elementwise.scale(MatMul.matmul(MatMul.matmul(x, false, a, true), false, b, true), scale));
                Elementwise.weightedSum(yRef, (float[]) c[6]).backward();
                String what = (quantized ? "lora_4bit " : "lora_bf16 ") + m + "x" + n + "x" + k + " r" + r;
                Compare.close(slack, what + " y", yRef.toFloatArray(), ((TestDevice.Buf) c[10]).floats(), 2e-5, 2e-5);
                Compare.close(slack, what + " dx", x.grad().toFloatArray(), ((TestDevice.Buf) c[11]).floats(), 2e-5, 2e-5);
                Compare.close(slack, what + " dA", a.grad().toFloatArray(), ((TestDevice.Buf) c[12]).floats(), 2e-5, 2e-5);
                Compare.close(slack, what + " dB", b.grad().toFloatArray(), ((TestDevice.Buf) c[13]).floats(), 2e-5, 2e-5);
            }
        }
    }
}
