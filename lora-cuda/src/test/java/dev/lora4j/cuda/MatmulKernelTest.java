package dev.lora4j.cuda;

import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.FloatStorage;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * matmul_f32 and matmul_bf16_tc in the host emulation against ScalarBackend.gemm, at awkward sizes
 * and every transpose combination. BF16 operands are rounded to BF16 first on both sides, so
 * products are exact in F32 and only the summation order differs: tolerance 1e-5 + 1e-5·|C|
 * (sums of ≤ 702 terms of magnitude ≤ 1 in F32).
 */
class MatmulKernelTest {
    /** Extra tolerance of the device under test (0 in the emulation). */
    double slack;

    /** The device the launches run on; the GPU subclasses override it. */
    TestDevice device() {
        TestDevice d = new HostDevice();
        slack = d.slack();
        return d;
    }

    private static final int[][] SIZES = {{1, 1, 1}, {7, 31, 65}, {65, 7, 207}, {31, 65, 702}, {207, 1, 7}};

    private record Case(int m, int n, int k, boolean ta, boolean tb, float[] a, float[] b, float[] c0, float alpha, float beta,
                        TestDevice.Buf out) {
    }

    @Test
    void f32MatchesScalarGemm() {
        run(false);
    }

    @Test
    void bf16TensorCoreMatchesScalarGemmOnRoundedOperands() {
        run(true);
    }

    private void run(boolean bf16) {
        SplittableRandom rng = new SplittableRandom(bf16 ? 11 : 10);
        TestDevice dev = device();
        List<Case> cases = new ArrayList<>();
        int variant = 0;
        for (int[] s : SIZES) {
            for (int t = 0; t < 4; t++) {
                boolean ta = (t & 1) != 0;
                boolean tb = (t & 2) != 0;
                int m = s[0];
                int n = s[1];
                int k = s[2];
                float[] a = Compare.uniform(rng, m * k, 1f);
                float[] b = Compare.uniform(rng, k * n, 1f);
                if (bf16) {
                    a = Compare.bf16Round(a);
                    b = Compare.bf16Round(b);
                }
                float[] c0 = Compare.uniform(rng, m * n, 1f);
                float beta = variant++ % 2 == 0 ? 0f : 0.5f;
                if (beta == 0f) {
                    c0[0] = Float.NaN; // beta 0 must ignore C's old contents
                }
                float alpha = 1.25f;
                TestDevice.Buf c = dev.floats(c0);
                KernelBuffer ab = bf16 ? dev.bf16(a) : dev.floats(a);
                KernelBuffer bb = bf16 ? dev.bf16(b) : dev.floats(b);
                int lda = ta ? m : k;
                int ldb = tb ? k : n;
                dev.launch(bf16 ? Kernels.matmulBf16(c, ab, bb, m, n, k, lda, ldb, n, ta, tb, alpha, beta)
                        : Kernels.matmulF32(c, ab, bb, m, n, k, lda, ldb, n, ta, tb, alpha, beta));
                cases.add(new Case(m, n, k, ta, tb, a, b, c0, alpha, beta, c));
            }
        }
        dev.run();
        for (Case c : cases) {
            float[] want = c.c0().clone();
            Backends.scalar().gemm(c.ta(), c.tb(), c.m(), c.n(), c.k(), c.alpha(), new FloatStorage(c.a()), 0,
                    c.ta() ? c.m() : c.k(), new FloatStorage(c.b()), 0, c.tb() ? c.k() : c.n(), c.beta(), new FloatStorage(want), 0,
                    c.n());
            Compare.close(slack, (bf16 ? "matmul_bf16_tc " : "matmul_f32 ") + c.m() + "x" + c.n() + "x" + c.k()
                    + (c.ta() ? " Aᵀ" : "") + (c.tb() ? " Bᵀ" : ""), want, c.out().floats(), 1e-5, 1e-5);
        }
    }
}
