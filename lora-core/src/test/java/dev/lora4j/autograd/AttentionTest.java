package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.backend.AttentionMask;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
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

    private static Reference reference(Tensor q, Tensor k, Tensor v, int queryOffset, float[] dOut) {
        return reference(q, k, v, AttentionMask.causal(queryOffset, q.dim(3)), dOut);
    }

    /** Whether key j is visible to query row i of batch row bi, straight from the mask's definition. */
    private static boolean visible(AttentionMask m, int bi, int i, int j) {
        int pos = m.queryOffset() + i;
        return (!m.causal() || j <= pos) && (m.window() == 0 || pos - j < m.window())
                && (m.keyLengths() == null || j < m.keyLengths()[bi]);
    }

    private static Reference reference(Tensor q, Tensor k, Tensor v, AttentionMask mask, float[] dOut) {
        int b = q.dim(0), t = q.dim(1), h = q.dim(2), d = q.dim(3), s = k.dim(1), g = k.dim(2);
        float[] qd = q.toFloatArray(), kd = k.toFloatArray(), vd = v.toFloatArray();
        double[] out = new double[qd.length], dq = new double[qd.length];
        double[] dk = new double[kd.length], dv = new double[vd.length];
        double scale = mask.scale();
        double cap = mask.softCap();
        for (int bi = 0; bi < b; bi++) {
            for (int hi = 0; hi < h; hi++) {
                int gi = hi / (h / g);
                for (int i = 0; i < t; i++) {
                    int qo = ((bi * t + i) * h + hi) * d;
                    double[] p = new double[s];
                    double[] raw = new double[s];
                    boolean[] seen = new boolean[s];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < s; j++) {
                        if (!visible(mask, bi, i, j)) {
                            continue;
                        }
                        seen[j] = true;
                        int ko = ((bi * s + j) * g + gi) * d;
                        for (int c = 0; c < d; c++) {
                            raw[j] += qd[qo + c] * (double) kd[ko + c] * scale;
                        }
                        p[j] = cap > 0 ? cap * Math.tanh(raw[j] / cap) : raw[j];
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < s; j++) {
                        p[j] = seen[j] ? Math.exp(p[j] - max) : 0;
                        sum += p[j];
                    }
                    if (sum == 0) {
                        continue;
                    }
                    double rowDot = 0;
                    double[] dp = new double[s];
                    for (int j = 0; j < s; j++) {
                        p[j] /= sum;
                        int ko = ((bi * s + j) * g + gi) * d;
                        for (int c = 0; c < d; c++) {
                            out[qo + c] += p[j] * vd[ko + c];
                            dv[ko + c] += p[j] * dOut[qo + c];
                            dp[j] += dOut[qo + c] * (double) vd[ko + c];
                        }
                    }
                    for (int j = 0; j < s; j++) {
                        rowDot += p[j] * dp[j];
                    }
                    for (int j = 0; j < s; j++) {
                        double th = cap > 0 ? Math.tanh(raw[j] / cap) : 0;
                        double ds = p[j] * (dp[j] - rowDot) * scale * (1 - th * th);
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

    private static Run run(Backend backend, Tensor q, Tensor k, Tensor v, int queryOffset, float[] dOut) {
        return run(backend, q, k, v, AttentionMask.causal(queryOffset, q.dim(3)), dOut);
    }

    private static Run run(Backend backend, Tensor q, Tensor k, Tensor v, AttentionMask mask, float[] dOut) {
        Tensor qg = Tensor.of(q.toFloatArray(), q.shape()).requiresGrad(true);
        Tensor kg = Tensor.of(k.toFloatArray(), k.shape()).requiresGrad(true);
        Tensor vg = Tensor.of(v.toFloatArray(), v.shape()).requiresGrad(true);
        Tensor o = Attention.attention(qg, kg, vg, mask, backend);
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
        check(backend, b, t, h, g, d, AttentionMask.causal(queryOffset, d), seed);
    }

    private static void check(Backend backend, int b, int t, int h, int g, int d, AttentionMask mask, long seed) {
        int queryOffset = mask.queryOffset();
        SplittableRandom rng = new SplittableRandom(seed);
        Tensor q = Tensor.normal(rng, 0f, 1f, b, t, h, d);
        Tensor k = Tensor.normal(rng, 0f, 1f, b, queryOffset + t, g, d);
        Tensor v = Tensor.normal(rng, 0f, 1f, b, queryOffset + t, g, d);
        float[] dOut = Tensor.normal(rng, 0f, 1f, b * t * h * d).data();
        Reference want = reference(q, k, v, mask, dOut);
        Run got = run(backend, q, k, v, mask, dOut);
        String where = backend.name() + " T=" + t + " " + mask + " ";
        assertClose(where + "output", want.out(), got.out());
        assertClose(where + "dQ", want.dq(), got.dq());
        assertClose(where + "dK", want.dk(), got.dk());
        assertClose(where + "dV", want.dv(), got.dv());
        // same inputs, same bits
        Run again = run(backend, q, k, v, mask, dOut);
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
        // a window shorter than a block and one that spans blocks
        check(backend, 2, 2 * Attention.QUERY_BLOCK + 9, 4, 2, 8, AttentionMask.causal(0, 8).withWindow(7), 4);
        check(backend, 1, 2 * Attention.QUERY_BLOCK + 9, 2, 1, 12, AttentionMask.causal(5, 12).withWindow(90), 5);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void keyPaddingIncludingAnEmptySequence(Backend backend) {
        // right padding: batch row 0 has 31 real keys, row 1 none (its queries see nothing), row 2 all
        check(backend, 3, Attention.QUERY_BLOCK + 7, 2, 1, 8, AttentionMask.causal(0, 8).withKeyLengths(new int[] {31, 0, 71}), 6);
        check(backend, 3, 1, 2, 1, 8, AttentionMask.causal(40, 8).withKeyLengths(new int[] {31, 0, 41}), 7);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void softCapScaleAndNonCausal(Backend backend) {
        AttentionMask capped = AttentionMask.causal(0, 16).withSoftCap(0.8f).withScale(0.7f);
        check(backend, 1, Attention.QUERY_BLOCK + 3, 2, 2, 16, capped, 8);
        AttentionMask full = new AttentionMask(0, 0.3f, false, 0, null, 0f);
        check(backend, 2, 37, 2, 1, 8, full, 9);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void softCapWithScaleAndWindowAfterACache(Backend backend) {
        // Gemma 2's combination: a query scale, a window and a soft-cap, keys already in a cache
        check(backend, 2, Attention.QUERY_BLOCK + 4, 4, 2, 16, new AttentionMask(11, 0.5f, true, 6, null, 1.5f), 10);
        check(backend, 2, 1, 4, 2, 8, new AttentionMask(40, (float) (1 / Math.sqrt(8)), true, 6, null, 3f), 11);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void awkwardLengthsAndHeadSizesAcrossKeyTiles(Backend backend) {
        // lengths 1, 7, 31, 207, 702 (up to six key tiles of 128, partial ones at both ends), head
        // sizes 8 to 128, grouped heads, each with the combination of mask features that stresses it
        check(backend, 2, 1, 4, 2, 8, AttentionMask.causal(0, 8), 20);
        check(backend, 1, 7, 4, 1, 128, AttentionMask.causal(0, 128), 21);
        check(backend, 2, 31, 6, 3, 24, AttentionMask.causal(0, 24).withSoftCap(2f), 22);
        check(backend, 1, 207, 2, 1, 64, AttentionMask.causal(0, 64), 23);
        check(backend, 1, 207, 2, 1, 16, AttentionMask.causal(19, 16).withWindow(150), 24);
        check(backend, 1, 702, 2, 1, 8, AttentionMask.causal(0, 8), 25);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void windowsSkipWholeKeyTiles(Backend backend) {
        // a window of 7 leaves every block one or two tiles to score; 130 straddles tile edges;
        // a padded batch row ends inside a tile and makes the tiles after it invisible
        check(backend, 1, 702, 1, 1, 8, AttentionMask.causal(0, 8).withWindow(7), 26);
        check(backend, 1, 300, 2, 1, 16, AttentionMask.causal(0, 16).withWindow(130).withSoftCap(5f), 27);
        check(backend, 2, 300, 1, 1, 8, AttentionMask.causal(0, 8).withKeyLengths(new int[] {300, 140}), 28);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void decodeStepOverALongCacheSpansKeyTiles(Backend backend) {
        // one query row against 301 cached keys: three key tiles of the online softmax, with and
        // without a window and a cap, and a large score range that forces rescaling
        check(backend, 2, 1, 4, 2, 16, AttentionMask.causal(300, 16), 29);
        check(backend, 1, 1, 3, 1, 8, new AttentionMask(300, 3f, true, 200, null, 0f), 30);
        check(backend, 2, 1, 4, 4, 8, new AttentionMask(300, 1f, true, 0, null, 4f), 31);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void resultsDoNotDependOnTheThreadCount(Backend backend) {
        // inside a parallel range every nested range runs on the calling thread alone: the same
        // call there must give the bits it gives on all threads
        SplittableRandom rng = new SplittableRandom(32);
        int t = 300;
        Tensor q = Tensor.normal(rng, 0f, 1f, 2, t, 6, 16);
        Tensor k = Tensor.normal(rng, 0f, 1f, 2, t, 2, 16);
        Tensor v = Tensor.normal(rng, 0f, 1f, 2, t, 2, 16);
        float[] dOut = Tensor.normal(rng, 0f, 1f, 2 * t * 6 * 16).data();
        AttentionMask mask = AttentionMask.causal(0, 16).withWindow(200);
        Run all = run(backend, q, k, v, mask, dOut);
        Run[] one = new Run[1];
        Parallel.forRange(2, 1, (from, to) -> {
            if (from == 0) {
                one[0] = run(backend, q, k, v, mask, dOut);
            }
        });
        assertArrayEquals(all.out(), one[0].out(), 0f);
        assertArrayEquals(all.dq(), one[0].dq(), 0f);
        assertArrayEquals(all.dk(), one[0].dk(), 0f);
        assertArrayEquals(all.dv(), one[0].dv(), 0f);
    }
}
