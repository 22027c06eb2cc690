package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Attention at lengths that span several query blocks (the gradient checks in OpGradientTest use
 * a few positions, all inside one block), against a direct double-precision evaluation of the
 * formulas, on the scalar and the vector backend.
 */
class AttentionTest {

    static List<Backend> backends() {
        List<Backend> list = new ArrayList<>();
        list.add(Backends.scalar());
        Backends.vector().ifPresent(list::add);
        return list;
    }

    /** Output and gradients of q, k, v for upstream gradient dO, all in double. */
    private record Reference(double[] out, double[] dq, double[] dk, double[] dv) {
    }

    private static Reference reference(Tensor q, Tensor k, Tensor v, int queryOffset, float[] dOut, Attention.Options o) {
        int b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), s = k.dim(1), g = k.dim(2);
        float[] qd = q.toFloatArray(), kd = k.toFloatArray(), vd = v.toFloatArray();
        double[] out = new double[qd.length], dq = new double[qd.length];
        double[] dk = new double[kd.length], dv = new double[vd.length];
        double scale = Float.isNaN(o.scale()) ? 1 / Math.sqrt(d) : o.scale();
        double cap = o.softCap();
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                int gi = hi / (h / g);
                for (int i = 0; i < t; i++) {
                    int qo = ((bi * t + i) * h + hi) * d;
                    int visible = queryOffset + i + 1;
                    int first = o.window() == 0 ? 0 : Math.max(0, visible - o.window());
                    double[] p = new double[visible];
                    double[] slope = new double[visible];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = first; j < visible; j++) {
                        if (o.keyMask() != null && o.keyMask()[bi * s + j] == 0) {
                            continue;
                        }
                        int ko = ((bi * s + j) * g + gi) * d;
                        for (int c = 0; c < d; c++) {
                            p[j] += qd[qo + c] * (double) kd[ko + c] * scale;
                        }
                        slope[j] = 1;
                        if (cap > 0) {
                            double th = Math.tanh(p[j] / cap);
                            p[j] = cap * th;
                            slope[j] = 1 - th * th;
                        }
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = first; j < visible; j++) {
                        p[j] = slope[j] == 0 ? 0 : Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    if (sum == 0) {
                        continue; // no key to attend: output and gradients stay 0
                    }
                    double rowDot = 0;
                    double[] dp = new double[visible];
                    for (int j = first; j < visible; j++) {
                        p[j] /= sum;
                        int ko = ((bi * s + j) * g + gi) * d;
                        for (int c = 0; c < d; c++) {
                            out[qo + c] += p[j] * vd[ko + c];
                            dv[ko + c] += p[j] * dOut[qo + c];
                            dp[j] += dOut[qo + c] * (double) vd[ko + c];
                        }
                    }
                    for (int j = 0; j < visible; j++) {
                        rowDot += p[j] * dp[j];
                    }
                    for (int j = 0; j < visible; j++) {
                        double ds = p[j] * (dp[j] - rowDot) * scale * slope[j];
                        int ko = ((bi * s + j) * g + gi) * d;
                        for (int c = 0; c < d; c++) {
                            dq[qo + c] += ds * kd[ko + c];
                            dk[ko + c] += ds * qd[qo + c];
                        }
                    }
                }
            }
        }
        return new Reference(out, dq, dk, dv);
    }

    private record Run(float[] out, float[] dq, float[] dk, float[] dv) {
    }

    private static Run run(Backend backend, Tensor q, Tensor k, Tensor v, int queryOffset, float[] dOut,
                           Attention.Options options) {
        Tensor qg = Tensor.of(q.toFloatArray(), q.shape()).requiresGrad(true);
        Tensor kg = Tensor.of(k.toFloatArray(), k.shape()).requiresGrad(true);
        Tensor vg = Tensor.of(v.toFloatArray(), v.shape()).requiresGrad(true);
        Tensor o = Attention.causal(qg, kg, vg, queryOffset, options, backend);
        Elementwise.weightedSum(o, dOut).backward();
        return new Run(o.toFloatArray(), qg.grad().toFloatArray(), kg.grad().toFloatArray(), vg.grad().toFloatArray());
    }

    private static void assertClose(String what, double[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + " length");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 2e-5 * Math.max(1, Math.abs(expected[i])), what + " at " + i);
        }
    }

    private static void check(Backend backend, int b, int t, int h, int g, int d, int queryOffset, long seed) {
        check(backend, b, t, h, g, d, queryOffset, seed, Attention.Options.DEFAULT);
    }

    private static void check(Backend backend, int b, int t, int h, int g, int d, int queryOffset, long seed,
                              Attention.Options options) {
        SplittableRandom rng = new SplittableRandom(seed);
        Tensor q = Tensor.normal(rng, 0f, 1f, b, t, h, d);
        Tensor k = Tensor.normal(rng, 0f, 1f, b, queryOffset + t, g, d);
        Tensor v = Tensor.normal(rng, 0f, 1f, b, queryOffset + t, g, d);
        float[] dOut = Tensor.normal(rng, 0f, 1f, b * t * h * d).data();
        Reference want = reference(q, k, v, queryOffset, dOut, options);
        Run got = run(backend, q, k, v, queryOffset, dOut, options);
        String where = backend.name() + " T=" + t + " offset=" + queryOffset + " " + options + " ";
        assertClose(where + "output", want.out(), got.out());
        assertClose(where + "dQ", want.dq(), got.dq());
        assertClose(where + "dK", want.dk(), got.dk());
        assertClose(where + "dV", want.dv(), got.dv());
        // same inputs, same bits
        Run again = run(backend, q, k, v, queryOffset, dOut, options);
        assertArrayEquals(got.out(), again.out(), 0f);
        assertArrayEquals(got.dq(), again.dq(), 0f);
        assertArrayEquals(got.dk(), again.dk(), 0f);
        assertArrayEquals(got.dv(), again.dv(), 0f);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void severalQueryBlocksWithGroupedHeads(Backend backend) {
        // 150 = two full blocks of 64 and a partial one
        check(backend, 2, 2 * Attention.QUERY_BLOCK + 22, 4, 2, 8, 0, 1);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void queryOffsetAcrossBlocksWithWideHeads(Backend backend) {
        // keys already in a cache, a head size wider than a micro-tile, one kv head for all queries
        check(backend, 1, Attention.QUERY_BLOCK + 6, 3, 1, 20, 37, 2);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void singleQueryDecodeStep(Backend backend) {
        check(backend, 2, 1, 4, 2, 8, 90, 3);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void slidingWindowAcrossBlocks(Backend backend) {
        // a window shorter than a block, one longer than a block, and one wider than the sequence
        check(backend, 2, Attention.QUERY_BLOCK + 30, 4, 2, 8, 0, 4, new Attention.Options(Float.NaN, 5, 0f));
        check(backend, 1, 2 * Attention.QUERY_BLOCK + 3, 2, 1, 8, 0, 5, new Attention.Options(Float.NaN, 70, 0f));
        check(backend, 1, 9, 2, 2, 8, 0, 6, new Attention.Options(Float.NaN, 100, 0f));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void softCapWithScaleAndWindowAfterACache(Backend backend) {
        // a small cap so that tanh bends the scores; Gemma's query_pre_attn_scalar-style scale
        check(backend, 2, Attention.QUERY_BLOCK + 4, 4, 2, 16, 11, 7, new Attention.Options(0.5f, 6, 1.5f));
        check(backend, 1, 7, 2, 1, 16, 0, 8, new Attention.Options(Float.NaN, 0, 2f));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void windowedDecodeStep(Backend backend) {
        check(backend, 2, 1, 4, 2, 8, 40, 9, new Attention.Options(Float.NaN, 6, 3f));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void keyPaddingMaskRightAndLeftPadded(Backend backend) {
        int t = Attention.QUERY_BLOCK + 9;
        int[] mask = new int[2 * t];
        for (int j = 0; j < t; j++) {
            mask[j] = j < t - 20 ? 1 : 0;   // row 0 right-padded: the padding queries see the real keys only
            mask[t + j] = j < 30 ? 0 : 1;   // row 1 left-padded: its first 30 queries see no key at all
        }
        check(backend, 2, t, 4, 2, 8, 0, 10, new Attention.Options(Float.NaN, 0, 0f).keyMask(mask));
        check(backend, 2, t, 2, 1, 8, 0, 11, new Attention.Options(0.3f, 12, 2f).keyMask(mask));
        int[] decode = new int[2 * 41];
        java.util.Arrays.fill(decode, 1);
        decode[3] = 0;
        decode[41 + 40] = 0;
        check(backend, 2, 1, 4, 2, 8, 40, 12, new Attention.Options(Float.NaN, 0, 0f).keyMask(decode));
    }
}
