package dev.lora4j.autograd;

import dev.lora4j.backend.AttentionMask;
import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Scaled-dot-product attention with grouped-query heads (H query heads share G key/value heads,
 * H % G == 0; head h reads kv head h / (H/G), as Hugging Face's repeat_kv does), recorded for
 * autograd and computed by the backend ({@link Backend#attention}, {@link Backend#attentionBackward}).
 *
 * <p>Forward: S = scale·Q·Kᵀ with the keys the {@link AttentionMask} hides masked (causal, an
 * optional sliding window, optional per-sequence key lengths, an optional logit soft-cap),
 * P = softmax(S), O = P·V. It saves Q, K, V, O and the per-row log-sum-exp L, not the T×S matrix P:
 * backward recomputes P = exp(S − L) (the FlashAttention recipe), so memory stays linear in T.
 * Backward, with Dᵢ = dOᵢ·Oᵢ: dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − D), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
 * The CPU backends compute it in blocks of {@value #QUERY_BLOCK} query rows (see
 * {@code dev.lora4j.backend.CpuAttention}).
 */
public final class Attention {
    /** Query rows per block of the CPU kernels. */
    static final int QUERY_BLOCK = 64;

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
        return attention(q, k, v, AttentionMask.causal(queryOffset, q.dim(-1)));
    }

    /** {@link #causal(Tensor, Tensor, Tensor, int)} on a given backend (tests compare them). */
    static Tensor causal(Tensor q, Tensor k, Tensor v, int queryOffset, Backend backend) {
        return attention(q, k, v, AttentionMask.causal(queryOffset, q.dim(-1)), backend);
    }

    /**
     * Attention under a general mask (causal or not, sliding window, key padding, soft-cap, scale).
     * Shapes as in {@link #causal(Tensor, Tensor, Tensor, int)}; k and v may be views of a KV cache
     * (strided over batch and position).
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, AttentionMask mask) {
        return attention(q, k, v, mask, Autograd.backendFor("attention", q, k, v));
    }

    static Tensor attention(Tensor q, Tensor k, Tensor v, AttentionMask mask, Backend be) {
        if (q.rank() != 4 || k.rank() != 4 || !Arrays.equals(k.shape(), v.shape())) {
            throw new IllegalArgumentException("attention: q must be [B, T, H, D] and k, v [B, S, G, D] with equal shapes; got q "
                    + Arrays.toString(q.shape()) + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()));
        }
        Autograd.backendFor("attention", q, k, v);
        int b = q.dim(0);
        int t = q.dim(1);
        int h = q.dim(2);
        Tensor qc = q.contiguous().detach();
        Tensor kc = rowLayout(k).detach();
        Tensor vc = rowLayout(v).detach();
        Tensor out = be.empty(q.shape());
        Tensor lse = be.empty(b, h, t);
        be.attention(out, lse, qc, kc, vc, mask);
        return Autograd.record(out, "attention", new Tensor[] {q, k, v}, dOut -> {
            Tensor dq = be.empty(q.shape());
            Tensor dk = be.empty(k.shape());
            Tensor dv = be.empty(v.shape());
            be.attentionBackward(dq, dk, dv, dOut, qc, kc, vc, out, lse, mask);
            Autograd.accumulateOwned(q, dq);
            Autograd.accumulateOwned(k, dk);
            Autograd.accumulateOwned(v, dv);
        });
    }

    /** k or v as the backend reads it: each position's heads packed, positions and batches any stride. */
    private static Tensor rowLayout(Tensor x) {
        int[] st = x.strides();
        boolean packed = st[3] == 1 && st[2] == x.dim(3) && st[1] >= x.dim(2) * x.dim(3) && st[0] >= 0;
        boolean compute = x.device() != Device.CPU ? x.dtype() == DType.F32 : x.storage() instanceof FloatStorage;
        return packed && compute ? x : x.contiguous();
    }
}
