package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Causal scaled-dot-product attention with grouped-query heads (H query heads share G key/value
 * heads, H % G == 0; head h reads kv head h / (H/G), as Hugging Face's repeat_kv does).
 *
 * <p>Forward: S = Q·Kᵀ/√D with positions j > queryOffset + i masked, P = softmax(S), O = P·V.
 * It saves only Q, K, V, O and the per-row log-sum-exp L, not the T×T matrix P: backward
 * recomputes P = exp(S − L) row by row (the FlashAttention recipe), so memory stays linear in T.
 * Backward, with Dᵢ = dOᵢ·Oᵢ: dV += Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − D), dQ += dS·K/√D, dK += dSᵀ·Q/√D.
 */
public final class Attention {
    private Attention() {
    }

    /**
     * @param q [B, T, H, D] queries
     * @param k [B, S, G, D] keys for positions [0, S); S = queryOffset + T
     * @param v [B, S, G, D] values
     * @param queryOffset position of the first query (tokens already in a KV cache), 0 in training
     * @return [B, T, H, D]
     */
    public static Tensor causal(Tensor q, Tensor k, Tensor v, int queryOffset) {
        if (q.rank() != 4 || k.rank() != 4 || !Arrays.equals(k.shape(), v.shape())) {
            throw new IllegalArgumentException("attention: q must be [B, T, H, D] and k, v [B, S, G, D] with equal shapes; got q "
                    + Arrays.toString(q.shape()) + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()));
        }
        int b = q.dim(0);
        int t = q.dim(1);
        int h = q.dim(2);
        int d = q.dim(3);
        int s = k.dim(1);
        int g = k.dim(2);
        if (k.dim(0) != b || k.dim(3) != d || h % g != 0 || s != queryOffset + t) {
            throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape()) + " and k " + Arrays.toString(k.shape())
                    + " disagree (need equal batch and head size, query heads divisible by kv heads, and kv length "
                    + "= queryOffset " + queryOffset + " + query length " + t + ")");
        }
        Backend be = Backends.get();
        float[] qd = q.contiguous().toFloatArray();
        float[] kd = k.contiguous().toFloatArray();
        float[] vd = v.contiguous().toFloatArray();
        float[] out = new float[qd.length];
        float[] lse = new float[b * h * t];
        float scale = (float) (1.0 / Math.sqrt(d));
        int groupSize = h / g;
        Parallel.forRange(b * h, 1, (p0, p1) -> {
            float[] scores = new float[s];
            for (int bh = p0; bh < p1; bh++) {
                int bi = bh / h;
                int hi = bh % h;
                int gi = hi / groupSize;
                for (int i = 0; i < t; i++) {
                    int qo = ((bi * t + i) * h + hi) * d;
                    int last = queryOffset + i;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int j = 0; j <= last; j++) {
                        scores[j] = scale * be.dot(qd, qo, kd, ((bi * s + j) * g + gi) * d, d);
                        max = Math.max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= last; j++) {
                        scores[j] = (float) Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    float inv = (float) (1.0 / sum);
                    for (int j = 0; j <= last; j++) {
                        be.axpy(scores[j] * inv, vd, ((bi * s + j) * g + gi) * d, out, qo, d);
                    }
                    lse[bh * t + i] = (float) (max + Math.log(sum));
                }
            }
        });
        Tensor o = Tensor.of(out, b, t, h, d);
        return Autograd.record(o, "attention", new Tensor[] {q, k, v}, dOut -> {
            float[] dO = dOut.data();
            float[] dq = new float[qd.length];
            float[] dk = new float[kd.length];
            float[] dv = new float[vd.length];
            // one task per (batch, kv head): the query heads of a group write the same dK, dV rows
            Parallel.forRange(b * g, 1, (p0, p1) -> {
                for (int bg = p0; bg < p1; bg++) {
                    int bi = bg / g;
                    int gi = bg % g;
                    for (int hi = gi * groupSize; hi < (gi + 1) * groupSize; hi++) {
                        for (int i = 0; i < t; i++) {
                            int qo = ((bi * t + i) * h + hi) * d;
                            float rowDot = be.dot(dO, qo, out, qo, d);
                            float l = lse[(bi * h + hi) * t + i];
                            for (int j = 0; j <= queryOffset + i; j++) {
                                int ko = ((bi * s + j) * g + gi) * d;
                                float p = (float) Math.exp(scale * be.dot(qd, qo, kd, ko, d) - l);
                                be.axpy(p, dO, qo, dv, ko, d);
                                float ds = p * (be.dot(dO, qo, vd, ko, d) - rowDot);
                                be.axpy(scale * ds, kd, ko, dq, qo, d);
                                be.axpy(scale * ds, qd, qo, dk, ko, d);
                            }
                        }
                    }
                }
            });
            Autograd.accumulate(q, Tensor.of(dq, q.shape()));
            Autograd.accumulate(k, Tensor.of(dk, k.shape()));
            Autograd.accumulate(v, Tensor.of(dv, v.shape()));
        });
    }
}
