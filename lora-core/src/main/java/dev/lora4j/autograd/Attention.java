package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Causal scaled-dot-product attention with grouped-query heads (H query heads share G key/value
 * heads, H % G == 0; head h reads kv head h / (H/G), as Hugging Face's repeat_kv does).
 *
 * <p>Forward: S = Q·Kᵀ/√D with positions j > queryOffset + i masked, P = softmax(S), O = P·V.
 * {@link Options} change the scale, add a sliding window (keys j ≤ queryOffset + i − window masked
 * too) and soft-capping S ← c·tanh(S/c) before the mask, whose backward multiplies dS by
 * 1 − (S/c)².
 * It saves only Q, K, V, O and the per-row log-sum-exp L, not the T×T matrix P: backward
 * recomputes P = exp(S − L) (the FlashAttention recipe), so memory stays linear in T.
 * Backward, with Dᵢ = dOᵢ·Oᵢ: dV += Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − D), dQ += dS·K/√D, dK += dSᵀ·Q/√D.
 *
 * <p>Both passes walk each head in blocks of {@value #QUERY_BLOCK} query rows, as FlashAttention-2
 * does, and do every product of a block as one {@link Backend#gemm} over the key range that block
 * can see (keys [0, queryOffset + last row]; later key blocks are fully masked and never touched).
 * With a head size D of 8 to 128, one (query, key) pair at a time is a dot product too short to
 * vectorize, and the call overhead was most of the cost; a block turns it into products of
 * 64 × keys × D that the blocked, register-tiled gemm runs at full vector width (a one-row block,
 * a KV-cache decode step, keeps the dot/axpy loop: it has nothing to reuse). The scratch per
 * thread is two blocks of scores, QUERY_BLOCK × S floats, never T × T per head, plus dKᵀ and dVᵀ
 * of one kv head (D × S) in backward. The whole visible
 * key range is scored at once (no online softmax rescaling as on a GPU, whose fast memory holds
 * only a tile): the row maximum is exact before the first exponential, so P is the same whichever
 * way the rows are split.
 *
 * <p>Results are deterministic and independent of the thread count: tasks are (batch, head) in
 * forward and (batch, kv head) in backward, each writing its own rows, and within a task blocks and
 * heads run in a fixed order; gemm itself sums in an order fixed by its depth alone.
 */
public final class Attention {
    /**
     * Query rows per block. 64 keeps a block of scores (64 × keys floats) and its gemm panels in
     * L2 at the usual context lengths, while making each product tall enough to amortize packing
     * K and V; the diagonal block wastes at most half of 64 × 64 scores on masked pairs.
     */
    static final int QUERY_BLOCK = 64;
    private static final int TRANSPOSE_TILE = 16;

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
        return causal(q, k, v, queryOffset, Options.DEFAULT, Backends.get());
    }

    /**
     * Per-layer variations of the causal attention above, as the non-Llama families need them.
     *
     * @param scale the factor on Q·Kᵀ; {@code NaN} means 1/√D (Gemma uses query_pre_attn_scalar^-½)
     * @param window sliding window in keys, 0 for none: the query at position p sees keys
     *     p − window < j ≤ p (window keys counting itself, transformers' masking_utils rule)
     * @param softCap attention logit soft-capping, 0 for none: scores become c·tanh(s/c) after
     *     scaling and before the mask (Gemma 2, transformers' eager attention)
     * @param keyMask null, or a [B, S] key padding mask as transformers' attention_mask: 1 for a
     *     key that may be attended, 0 for padding. A query that sees no key at all (a padding
     *     query of a left-padded row) gets a zero output and no gradient.
     */
    public record Options(float scale, int window, float softCap, int[] keyMask) {
        public static final Options DEFAULT = new Options(Float.NaN, 0, 0f);

        public Options(float scale, int window, float softCap) {
            this(scale, window, softCap, null);
        }

        /** These options with a key padding mask (see {@link #keyMask()}). */
        public Options keyMask(int[] mask) {
            return new Options(scale, window, softCap, mask);
        }

        public Options {
            if (keyMask != null) {
                for (int i = 0; i < keyMask.length; i++) {
                    if (keyMask[i] != 0 && keyMask[i] != 1) {
                        throw new IllegalArgumentException("attention: keyMask holds 1 (attend) or 0 (padding), found "
                                + keyMask[i] + " at " + i);
                    }
                }
            }
            if (window < 0) {
                throw new IllegalArgumentException("attention: window must be >= 0 (0 = none), was " + window);
            }
            if (!(softCap >= 0) || Float.isInfinite(softCap)) {
                throw new IllegalArgumentException("attention: softCap must be a finite number >= 0 (0 = none), was " + softCap);
            }
            if (!Float.isNaN(scale) && !(scale > 0)) {
                throw new IllegalArgumentException("attention: scale must be > 0 (or NaN for 1/sqrt(head size)), was " + scale);
            }
        }
    }

    /** {@link #causal(Tensor, Tensor, Tensor, int)} with a scale, sliding window and soft-cap. */
    public static Tensor causal(Tensor q, Tensor k, Tensor v, int queryOffset, Options options) {
        return causal(q, k, v, queryOffset, options, Backends.get());
    }

    /** {@link #causal(Tensor, Tensor, Tensor, int)} on a given backend (tests compare them). */
    static Tensor causal(Tensor q, Tensor k, Tensor v, int queryOffset, Backend backend) {
        return causal(q, k, v, queryOffset, Options.DEFAULT, backend);
    }

    static Tensor causal(Tensor q, Tensor k, Tensor v, int queryOffset, Options options, Backend backend) {
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
        if (options.keyMask() != null && options.keyMask().length != b * s) {
            throw new IllegalArgumentException("attention: keyMask has " + options.keyMask().length + " entries but the keys are"
                    + " [batch " + b + ", length " + s + "]; pass one 0/1 per key and batch row");
        }
        if (k.dim(0) != b || k.dim(3) != d || h % g != 0 || s != queryOffset + t) {
            throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape()) + " and k " + Arrays.toString(k.shape())
                    + " disagree (need equal batch and head size, query heads divisible by kv heads, and kv length "
                    + "= queryOffset " + queryOffset + " + query length " + t + ")");
        }
        Layout x = new Layout(b, t, h, g, d, queryOffset, backend, q.contiguous().toFloatArray(),
                k.contiguous().toFloatArray(), v.contiguous().toFloatArray(), options);
        float[] out = new float[x.q.length];
        float[] lse = new float[b * h * t];
        Parallel.forRange(b * h, 1, (p0, p1) -> {
            Scratch scratch = new Scratch(Math.min(QUERY_BLOCK, t), s, d, false, false);
            for (int bh = p0; bh < p1; bh++) {
                for (int i0 = 0; i0 < t; i0 += QUERY_BLOCK) {
                    forwardBlock(x, bh / h, bh % h, i0, Math.min(t, i0 + QUERY_BLOCK), scratch, out, lse);
                }
            }
        });
        Tensor o = Tensor.of(out, b, t, h, d);
        return Autograd.record(o, "attention", new Tensor[] {q, k, v}, dOut -> {
            float[] dO = dOut.data();
            float[] dq = new float[x.q.length];
            float[] dk = new float[x.k.length];
            float[] dv = new float[x.v.length];
            // one task per (batch, kv head): the query heads of a group write the same dK, dV rows
            Parallel.forRange(b * g, 1, (p0, p1) -> {
                Scratch scratch = new Scratch(Math.min(QUERY_BLOCK, t), s, d, true, x.softCap > 0);
                for (int bg = p0; bg < p1; bg++) {
                    int bi = bg / g;
                    int gi = bg % g;
                    Arrays.fill(scratch.dkT, 0f);
                    Arrays.fill(scratch.dvT, 0f);
                    for (int hi = gi * x.groupSize; hi < (gi + 1) * x.groupSize; hi++) {
                        for (int i0 = 0; i0 < t; i0 += QUERY_BLOCK) {
                            backwardBlock(x, bi, hi, i0, Math.min(t, i0 + QUERY_BLOCK), out, lse, dO, scratch, dq);
                        }
                    }
                    int ko = x.keyRow(bi, 0, gi);
                    scatter(scratch.dkT, s, d, s, dk, ko, g * d);
                    scatter(scratch.dvT, s, d, s, dv, ko, g * d);
                }
            });
            Autograd.accumulate(q, Tensor.of(dq, q.shape()));
            Autograd.accumulate(k, Tensor.of(dk, k.shape()));
            Autograd.accumulate(v, Tensor.of(dv, v.shape()));
        });
    }

    /**
     * Sizes, strides and the saved inputs of one call. Q, O, dO and dQ rows of head h at position i
     * start at ((b·T + i)·H + h)·D, a row stride of H·D between positions; K, V, dK and dV rows of kv
     * head g at position j start at ((b·S + j)·G + g)·D, a row stride of G·D. A block is thus a
     * strided matrix that gemm reads and writes in place through its leading dimension.
     */
    private record Layout(int b, int t, int h, int g, int d, int queryOffset, Backend be, float[] q, float[] k,
                          float[] v, int s, int groupSize, float scale, int window, float softCap, int[] keyMask,
                          FloatStorage qs, FloatStorage ks, FloatStorage vs) {
        Layout(int b, int t, int h, int g, int d, int queryOffset, Backend be, float[] q, float[] k, float[] v,
               Options o) {
            this(b, t, h, g, d, queryOffset, be, q, k, v, queryOffset + t, h / g,
                    Float.isNaN(o.scale()) ? (float) (1.0 / Math.sqrt(d)) : o.scale(), o.window(), o.softCap(),
                    o.keyMask(), new FloatStorage(q), new FloatStorage(k), new FloatStorage(v));
        }

        /** Whether key j of batch row bi is padding. */
        boolean padded(int bi, int j) {
            return keyMask != null && keyMask[bi * s + j] == 0;
        }

        /** First key visible to the query at absolute position {@code pos} (0 without a window). */
        int firstKey(int pos) {
            return window == 0 ? 0 : Math.max(0, pos - window + 1);
        }

        /** c·tanh(s/c) when soft-capping, else s. */
        float cap(float score) {
            return softCap == 0 ? score : (float) (softCap * Math.tanh(score / (double) softCap));
        }

        int queryRow(int bi, int i, int hi) {
            return ((bi * t + i) * h + hi) * d;
        }

        int keyRow(int bi, int j, int gi) {
            return ((bi * s + j) * g + gi) * d;
        }
    }

    /**
     * Per-thread buffers, sized for one block: scores (Pᵀ [keys, rows] in forward, P [rows, keys]
     * then dSᵀ [keys, rows] in backward) and a second matrix of that size (dP, then dS), a
     * transposed output block [D, rows], per-row softmax statistics, and in backward the dKᵀ and dVᵀ
     * [D, S] of the current (batch, kv head).
     */
    private static final class Scratch {
        final float[] scores;
        final float[] other;
        final float[] outT;
        final float[] dkT;
        final float[] dvT;
        final float[] capSlope;
        final float[] rowMax;
        final double[] rowSum;
        final float[] rowScale;
        final FloatStorage scoresStorage;
        final FloatStorage otherStorage;
        final FloatStorage outTStorage;
        final FloatStorage dkTStorage;
        final FloatStorage dvTStorage;

        Scratch(int rows, int s, int d, boolean backward, boolean softCap) {
            scores = new float[rows * s];
            other = new float[rows * s];
            outT = new float[d * rows];
            dkT = new float[backward ? d * s : 0];
            dvT = new float[backward ? d * s : 0];
            capSlope = new float[softCap ? rows * s : 0];
            rowMax = new float[rows];
            rowSum = new double[rows];
            rowScale = new float[rows];
            scoresStorage = new FloatStorage(scores);
            otherStorage = new FloatStorage(other);
            outTStorage = new FloatStorage(outT);
            dkTStorage = new FloatStorage(dkT);
            dvTStorage = new FloatStorage(dvT);
        }
    }

    /*
     * Why the products below are written with D as the row count (Oᵀ = Vᵀ·Pᵀ rather than O = P·V,
     * and likewise dQᵀ, dKᵀ, dVᵀ): gemm's register tile is mr rows (6 or 8) by nr columns (two
     * vectors, 32 floats with AVX-512). With D = 8 as the column count, three quarters of every
     * tile would be padding; as the row count it fills the tile's rows, and keys or query rows run
     * along the vectors. The price is transposing P or dS once per block (a copy per element, small
     * next to the exponential each element already costs) and the D-row results back into place.
     */

    /**
     * Query rows [i0, i1) of head hi in batch bi: Sᵀ = K·Qᵀ/√D over the keys [0, queryOffset + i1)
     * those rows can see, a softmax per query row (a column here, masking keys after the row's
     * own position), the row's log-sum-exp kept for backward, then Oᵀ = Vᵀ·Pᵀ. Scoring keys as rows
     * gives Pᵀ, stored [keys, rows], directly in the layout that Vᵀ·Pᵀ reads, so the forward pass
     * transposes nothing but the small [D, rows] output; the softmax walks key rows and updates
     * all query columns at once, each column still summed in increasing key order.
     */
    private static void forwardBlock(Layout x, int bi, int hi, int i0, int i1, Scratch w, float[] out, float[] lse) {
        int rows = i1 - i0;
        if (rows == 1) {
            forwardRow(x, bi, hi, i0, w.scores, out, lse);
            return;
        }
        int keys = x.queryOffset + i1;
        int qo = x.queryRow(bi, i0, hi);
        int ldq = x.h * x.d;
        int ko = x.keyRow(bi, 0, hi / x.groupSize);
        int ldk = x.g * x.d;
        float[] scoresT = w.scores;
        float[] max = w.rowMax;
        double[] sum = w.rowSum;
        x.be.gemm(false, true, keys, rows, x.d, x.scale, x.ks, ko, ldk, x.qs, qo, ldq, 0f, w.scoresStorage, 0, rows);
        // key j is visible to block row r when j <= queryOffset + i0 + r, i.e. from row j - diagonal on,
        // and, with a window, while j > queryOffset + i0 + r - window, i.e. before row j - diagonal + window
        int diagonal = x.queryOffset + i0;
        Arrays.fill(max, 0, rows, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < keys; j++) {
            int base = j * rows;
            int to = x.padded(bi, j) ? 0 : x.window == 0 ? rows : Math.max(0, Math.min(rows, j - diagonal + x.window));
            for (int r = Math.max(0, j - diagonal); r < to; r++) {
                scoresT[base + r] = x.cap(scoresT[base + r]);
                max[r] = Math.max(max[r], scoresT[base + r]);
            }
        }
        Arrays.fill(sum, 0, rows, 0.0);
        for (int j = 0; j < keys; j++) {
            int base = j * rows;
            int from = x.padded(bi, j) ? rows : Math.max(0, j - diagonal);
            int to = x.window == 0 ? rows : Math.max(from, Math.min(rows, j - diagonal + x.window));
            Arrays.fill(scoresT, base, base + from, 0f);
            Arrays.fill(scoresT, base + to, base + rows, 0f);
            for (int r = from; r < to; r++) {
                float e = (float) Math.exp(scoresT[base + r] - max[r]);
                scoresT[base + r] = e;
                sum[r] += e;
            }
        }
        // O = (exp(S − max)·V) / sum: dividing the D columns of a row of O rather than its keys
        // entries of P costs D instead of keys multiplications per row
        float[] inv = w.rowScale;
        for (int r = 0; r < rows; r++) {
            // a row that sees no key (all padding) outputs 0; an infinite lse makes its P 0 in backward
            inv[r] = sum[r] == 0 ? 0f : (float) (1.0 / sum[r]);
            lse[(bi * x.h + hi) * x.t + i0 + r] = sum[r] == 0 ? Float.POSITIVE_INFINITY
                    : (float) (max[r] + Math.log(sum[r]));
        }
        x.be.gemm(true, false, x.d, rows, keys, 1f, x.vs, ko, ldk, w.scoresStorage, 0, rows, 0f, w.outTStorage, 0,
                rows);
        for (int c = 0; c < x.d; c++) {
            for (int r = 0; r < rows; r++) {
                w.outT[c * rows + r] *= inv[r];
            }
        }
        scatter(w.outT, rows, x.d, rows, out, qo, ldq);
    }

    /**
     * A block of one query row, as in a KV-cache decode step: a dot product and an axpy per key,
     * reading each K and V row once. Packing K and V for gemm would copy them (and pad the single
     * column to a full register tile) for products that have nothing to reuse.
     */
    private static void forwardRow(Layout x, int bi, int hi, int i, float[] scores, float[] out, float[] lse) {
        int qo = x.queryRow(bi, i, hi);
        int gi = hi / x.groupSize;
        int visible = x.queryOffset + i + 1;
        int first = x.firstKey(x.queryOffset + i);
        float max = Float.NEGATIVE_INFINITY;
        for (int j = first; j < visible; j++) {
            scores[j] = x.padded(bi, j) ? Float.NEGATIVE_INFINITY
                    : x.cap(x.scale * x.be.dot(x.q, qo, x.k, x.keyRow(bi, j, gi), x.d));
            max = Math.max(max, scores[j]);
        }
        double sum = 0;
        for (int j = first; j < visible; j++) {
            scores[j] = x.padded(bi, j) ? 0f : (float) Math.exp(scores[j] - max);
            sum += scores[j];
        }
        float inv = sum == 0 ? 0f : (float) (1.0 / sum);
        Arrays.fill(out, qo, qo + x.d, 0f);
        for (int j = first; j < visible; j++) {
            x.be.axpy(scores[j] * inv, x.v, x.keyRow(bi, j, gi), out, qo, x.d);
        }
        lse[(bi * x.h + hi) * x.t + i] = sum == 0 ? Float.POSITIVE_INFINITY : (float) (max + Math.log(sum));
    }

    /**
     * Gradients of query rows [i0, i1) of head hi: P is recomputed from the saved log-sum-exp
     * (exactly the forward's S, so exp(S − L) is the forward's P), then the four products of the
     * block. dQ rows belong to this block alone; dKᵀ and dVᵀ sum over the blocks and heads of the
     * kv group, which the caller runs in a fixed order on one thread.
     */
    private static void backwardBlock(Layout x, int bi, int hi, int i0, int i1, float[] out, float[] lse, float[] dO,
                                      Scratch w, float[] dq) {
        int rows = i1 - i0;
        int keys = x.queryOffset + i1;
        int qo = x.queryRow(bi, i0, hi);
        int ko = x.keyRow(bi, 0, hi / x.groupSize);
        int ldq = x.h * x.d;
        int ldk = x.g * x.d;
        float[] p = w.scores;
        float[] dp = w.other;
        FloatStorage dOs = new FloatStorage(dO);
        x.be.gemm(false, true, rows, keys, x.d, x.scale, x.qs, qo, ldq, x.ks, ko, ldk, 0f, w.scoresStorage, 0, keys);
        for (int r = 0; r < rows; r++) {
            int row = r * keys;
            int visible = x.queryOffset + i0 + r + 1;
            int first = x.firstKey(x.queryOffset + i0 + r);
            float l = lse[(bi * x.h + hi) * x.t + i0 + r];
            for (int j = row + first; j < row + visible; j++) {
                if (x.padded(bi, j - row)) {
                    p[j] = 0f;
                    continue;
                }
                if (x.softCap > 0) {
                    float capped = x.cap(p[j]);
                    float c = capped / x.softCap;
                    w.capSlope[j] = 1f - c * c;
                    p[j] = capped;
                }
                p[j] = (float) Math.exp(p[j] - l);
            }
            Arrays.fill(p, row, row + first, 0f);
            Arrays.fill(p, row + visible, row + keys, 0f);
        }
        // dVᵀ += dOᵀ·P
        x.be.gemm(true, false, x.d, keys, rows, 1f, dOs, qo, ldq, w.scoresStorage, 0, keys, 1f, w.dvTStorage, 0, x.s);
        // dP = dO·Vᵀ, then dS = P ⊙ (dP − D) in place (masked entries stay 0 since P is 0 there)
        x.be.gemm(false, true, rows, keys, x.d, 1f, dOs, qo, ldq, x.vs, ko, ldk, 0f, w.otherStorage, 0, keys);
        for (int r = 0; r < rows; r++) {
            int row = r * keys;
            int oRow = qo + r * ldq;
            float rowDot = x.be.dot(dO, oRow, out, oRow, x.d);
            for (int j = row; j < row + keys; j++) {
                dp[j] = p[j] * (dp[j] - rowDot);
            }
            if (x.softCap > 0) {
                // through the cap: d s = d capped · (1 − (capped/c)²); masked entries are 0 already
                for (int j = row; j < row + keys; j++) {
                    dp[j] = p[j] == 0f ? 0f : dp[j] * w.capSlope[j];
                }
            }
        }
        // dKᵀ += Qᵀ·dS/√D
        x.be.gemm(true, false, x.d, keys, rows, x.scale, x.qs, qo, ldq, w.otherStorage, 0, keys, 1f, w.dkTStorage, 0,
                x.s);
        // dQᵀ = Kᵀ·dSᵀ/√D, with dSᵀ in the buffer P no longer needs; these dQ rows are this block's alone
        transpose(dp, rows, keys, p);
        x.be.gemm(true, false, x.d, rows, keys, x.scale, x.ks, ko, ldk, w.scoresStorage, 0, rows, 0f, w.outTStorage, 0,
                rows);
        scatter(w.outT, rows, x.d, rows, dq, qo, ldq);
    }

    /**
     * dst[c·rows + r] = src[r·cols + c]: a [rows, cols] matrix stored [cols, rows]. In tiles of
     * {@value #TRANSPOSE_TILE} × {@value #TRANSPOSE_TILE}, so that the destination lines a tile
     * writes, {@code rows} floats apart, stay in L1 until filled.
     */
    private static void transpose(float[] src, int rows, int cols, float[] dst) {
        for (int r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
            int r1 = Math.min(rows, r0 + TRANSPOSE_TILE);
            for (int c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
                int c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
                for (int r = r0; r < r1; r++) {
                    int from = r * cols;
                    for (int c = c0; c < c1; c++) {
                        dst[c * rows + r] = src[from + c];
                    }
                }
            }
        }
    }

    /**
     * Writes a transposed block back into place: {@code dst[dstOffset + r·ld + c] = srcT[c·ldT + r]}
     * for the {@code rows} rows and {@code cols} (= D) columns of a [D, rows] block.
     */
    private static void scatter(float[] srcT, int rows, int cols, int ldT, float[] dst, int dstOffset, int ld) {
        for (int r = 0; r < rows; r++) {
            int to = dstOffset + r * ld;
            for (int c = 0; c < cols; c++) {
                dst[to + c] = srcT[c * ldT + r];
            }
        }
    }
}
