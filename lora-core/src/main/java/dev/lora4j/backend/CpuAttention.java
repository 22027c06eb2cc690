package dev.lora4j.backend;

import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Scaled-dot-product attention of the CPU backends ({@link Backend#attention}), grouped-query
 * heads (H query heads share G key/value heads, head h reads kv head h / (H/G)).
 *
 * <p>Forward: S = scale·Q·Kᵀ (soft-capped if asked), masked per {@link AttentionMask}, P = softmax(S),
 * O = P·V. It saves only the per-row log-sum-exp L, not the T×S matrix P: backward recomputes
 * P = exp(S − L) (the FlashAttention recipe), so memory stays linear in T.
 * Backward, with Dᵢ = dOᵢ·Oᵢ: dV = Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − D), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
 *
 * <p>Both passes walk each head in blocks of {@value #QUERY_BLOCK} query rows, as FlashAttention-2
 * does, and do every product of a block as one {@link Backend#gemm} over the key range that block
 * can see (from the first row's window start to the last row's last visible key; keys outside
 * are never touched). With a head size D of 8 to 128, one (query, key) pair at a time is a dot
 * product too short to vectorize; a block turns it into products of 64 × keys × D that the blocked
 * gemm runs at full vector width (a one-row block, a KV-cache decode step, keeps a dot/axpy loop:
 * it has nothing to reuse). The scratch per thread is two blocks of scores, QUERY_BLOCK × S floats,
 * never T × S per head, plus dKᵀ and dVᵀ of one kv head (D × S) in backward, reused across calls.
 * The whole visible key range of a block is scored at once (no online rescaling as on a GPU, whose
 * fast memory holds only a tile): each row's maximum is exact before the first exponential, so P
 * is the same whichever way the rows are split.
 *
 * <p>Results are deterministic and independent of the thread count: tasks are (batch, head) in
 * forward and (batch, kv head) in backward, each writing its own rows, and within a task blocks and
 * heads run in a fixed order; gemm itself sums in an order fixed by its depth alone.
 */
final class CpuAttention {
    /**
     * Query rows per block. 64 keeps a block of scores (64 × keys floats) and its gemm panels in
     * L2 at the usual context lengths, while making each product tall enough to amortize packing
     * K and V; the diagonal block wastes at most half of 64 × 64 scores on masked pairs.
     */
    static final int QUERY_BLOCK = 64;
    private static final int TRANSPOSE_TILE = 16;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private final CpuBackend be;
    private final AttentionMask mask;
    private final int b;
    private final int t;
    private final int h;
    private final int g;
    private final int d;
    private final int s;
    private final int groupSize;
    private final float scale;
    private final float cap;
    private final float[] q;
    private final int qOff;
    private final float[] k;
    private final float[] v;
    private final FloatStorage qs;
    private final FloatStorage ks;
    private final FloatStorage vs;
    private final long kOff;
    private final long vOff;
    private final int kBatch;
    private final int kPos;
    private final int vBatch;
    private final int vPos;

    CpuAttention(CpuBackend be, Tensor q, Tensor k, Tensor v, AttentionMask mask) {
        if (q.rank() != 4 || k.rank() != 4 || !Arrays.equals(k.shape(), v.shape())) {
            throw new IllegalArgumentException("attention: q must be [B, T, H, D] and k, v [B, S, G, D] with equal shapes; got q "
                    + Arrays.toString(q.shape()) + ", k " + Arrays.toString(k.shape()) + ", v " + Arrays.toString(v.shape()));
        }
        this.be = be;
        this.mask = mask;
        this.b = q.dim(0);
        this.t = q.dim(1);
        this.h = q.dim(2);
        this.d = q.dim(3);
        this.s = k.dim(1);
        this.g = k.dim(2);
        if (k.dim(0) != b || k.dim(3) != d || g == 0 || h % g != 0 || s != mask.queryOffset() + t) {
            throw new IllegalArgumentException("attention: q " + Arrays.toString(q.shape()) + " and k " + Arrays.toString(k.shape())
                    + " disagree (need equal batch and head size, query heads divisible by kv heads, and kv length "
                    + "= queryOffset " + mask.queryOffset() + " + query length " + t + ")");
        }
        if (mask.keyLengths() != null && mask.keyLengths().length != b) {
            throw new IllegalArgumentException("attention: " + mask.keyLengths().length + " key lengths for a batch of " + b);
        }
        if (!q.isContiguous()) {
            throw new IllegalArgumentException("attention: q must be contiguous, got strides " + Arrays.toString(q.strides()));
        }
        requireRowLayout("k", k);
        requireRowLayout("v", v);
        this.groupSize = h / g;
        this.scale = mask.scale();
        this.cap = mask.softCap();
        this.q = CpuBackend.array(q);
        this.qOff = q.intOffset();
        this.k = CpuBackend.array(k);
        this.v = CpuBackend.array(v);
        this.qs = (FloatStorage) q.storage();
        this.ks = (FloatStorage) k.storage();
        this.vs = (FloatStorage) v.storage();
        this.kOff = k.offset();
        this.vOff = v.offset();
        this.kBatch = k.strides()[0];
        this.kPos = k.strides()[1];
        this.vBatch = v.strides()[0];
        this.vPos = v.strides()[1];
    }

    /** K and V may be strided over batch and position (a KV cache), but a position's heads are packed. */
    private static void requireRowLayout(String name, Tensor x) {
        int[] st = x.strides();
        if (st[3] != 1 || st[2] != x.dim(3) || st[1] < x.dim(2) * x.dim(3)) {
            throw new IllegalArgumentException("attention: " + name + " must store each position's heads contiguously "
                    + "(strides [*, >= G·D, D, 1]), got strides " + Arrays.toString(st) + " for shape " + Arrays.toString(x.shape()));
        }
    }

    private int queryRow(int bi, int i, int hi) {
        return qOff + ((bi * t + i) * h + hi) * d;
    }

    private int keyRow(int bi, int j, int gi) {
        return (int) (kOff + (long) bi * kBatch + (long) j * kPos + (long) gi * d);
    }

    private int valueRow(int bi, int j, int gi) {
        return (int) (vOff + (long) bi * vBatch + (long) j * vPos + (long) gi * d);
    }

    /** Visible keys [from, to) of query row i of batch row bi. */
    private int from(int i) {
        return mask.firstKey(i);
    }

    private int to(int bi, int i) {
        return mask.endKey(bi, i, s);
    }

    /** Per-thread buffers, grown on demand; see the class comment. */
    private static final class Scratch {
        boolean inUse;
        float[] scores = new float[0];
        float[] other = new float[0];
        float[] outT = new float[0];
        float[] dkT = new float[0];
        float[] dvT = new float[0];
        float[] rowMax = new float[0];
        double[] rowSum = new double[0];
        float[] rowScale = new float[0];
        FloatStorage scoresStorage;
        FloatStorage otherStorage;
        FloatStorage outTStorage;
        FloatStorage dkTStorage;
        FloatStorage dvTStorage;

        Scratch ensure(int rows, int keys, int d, boolean backward) {
            if (scores.length < rows * keys) {
                scores = new float[rows * keys];
                other = new float[rows * keys];
                scoresStorage = null;
            }
            if (outT.length < d * rows) {
                outT = new float[d * rows];
                outTStorage = null;
            }
            if (backward && dkT.length < d * keys) {
                dkT = new float[d * keys];
                dvT = new float[d * keys];
                dkTStorage = null;
            }
            if (rowMax.length < rows) {
                rowMax = new float[rows];
                rowSum = new double[rows];
                rowScale = new float[rows];
            }
            if (scoresStorage == null) {
                scoresStorage = new FloatStorage(scores);
                otherStorage = new FloatStorage(other);
            }
            if (outTStorage == null) {
                outTStorage = new FloatStorage(outT);
            }
            if (dkTStorage == null) {
                dkTStorage = new FloatStorage(dkT);
                dvTStorage = new FloatStorage(dvT);
            }
            return this;
        }
    }

    /** This thread's scratch, or a fresh one if a task further up this thread's stack holds it. */
    private static Scratch acquire(int rows, int keys, int d, boolean backward) {
        Scratch w = SCRATCH.get();
        if (w.inUse) {
            w = new Scratch();
        }
        w.inUse = true;
        return w.ensure(rows, keys, d, backward);
    }

    // ---------------------------------------------------------------- forward

    void forward(Tensor out, Tensor lse) {
        float[] o = CpuBackend.array(out);
        float[] l = CpuBackend.array(lse);
        int oOff = out.intOffset();
        int lOff = lse.intOffset();
        if (!out.isContiguous() || out.numel() != (long) b * t * h * d || lse.numel() != (long) b * h * t) {
            throw new IllegalArgumentException("attention: out must be contiguous [B, T, H, D] = " + Arrays.toString(
                    new int[] {b, t, h, d}) + " and lse [B, H, T]; got " + Arrays.toString(out.shape()) + " and "
                    + Arrays.toString(lse.shape()));
        }
        Parallel.forRange(b * h, 1, (p0, p1) -> {
            Scratch w = acquire(Math.min(QUERY_BLOCK, t), s, d, false);
            try {
                for (int bh = p0; bh < p1; bh++) {
                    for (int i0 = 0; i0 < t; i0 += QUERY_BLOCK) {
                        forwardBlock(bh / h, bh % h, i0, Math.min(t, i0 + QUERY_BLOCK), w, o, oOff, l, lOff);
                    }
                }
            } finally {
                w.inUse = false;
            }
        });
    }

    /** s·tanh(x/s), Gemma 2's logit soft-cap (identity when no cap is set). */
    private float capped(float x) {
        return cap > 0 ? cap * (float) Math.tanh(x / cap) : x;
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
     * Query rows [i0, i1) of head hi in batch bi: Sᵀ = scale·K·Qᵀ over the keys [lo, hi) the rows
     * can see, a softmax per query row (a column here, masking keys outside the row's range), the
     * row's log-sum-exp kept for backward, then Oᵀ = Vᵀ·Pᵀ. Scoring keys as rows gives Pᵀ, stored
     * [keys, rows], directly in the layout that Vᵀ·Pᵀ reads; each column is still summed in
     * increasing key order.
     */
    private void forwardBlock(int bi, int hi, int i0, int i1, Scratch w, float[] out, int oOff, float[] lse, int lOff) {
        int rows = i1 - i0;
        int qo = queryRow(bi, i0, hi);
        int ldq = h * d;
        int gi = hi / groupSize;
        if (rows == 1) {
            forwardRow(bi, hi, i0, w.scores, out, oOff, lse, lOff);
            return;
        }
        int lo = from(i0);
        int hiKey = to(bi, i1 - 1);
        for (int r = 0; r < rows; r++) {
            hiKey = Math.max(hiKey, to(bi, i0 + r));
        }
        int keys = Math.max(0, hiKey - lo);
        int outRow = qo - qOff + oOff;
        if (keys == 0) {
            for (int r = 0; r < rows; r++) {
                Arrays.fill(out, outRow + r * ldq, outRow + r * ldq + d, 0f);
                lse[lOff + (bi * h + hi) * t + i0 + r] = Float.NEGATIVE_INFINITY;
            }
            return;
        }
        float[] scoresT = w.scores;
        float[] max = w.rowMax;
        double[] sum = w.rowSum;
        int ko = keyRow(bi, lo, gi);
        be.gemm(false, true, keys, rows, d, scale, ks, ko, kPos, qs, qo, ldq, 0f, w.scoresStorage, 0, rows);
        Arrays.fill(max, 0, rows, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < keys; j++) {
            int base = j * rows;
            int key = lo + j;
            for (int r = 0; r < rows; r++) {
                if (key >= from(i0 + r) && key < to(bi, i0 + r)) {
                    float sc = capped(scoresT[base + r]);
                    scoresT[base + r] = sc;
                    max[r] = Math.max(max[r], sc);
                }
            }
        }
        Arrays.fill(sum, 0, rows, 0.0);
        for (int j = 0; j < keys; j++) {
            int base = j * rows;
            int key = lo + j;
            for (int r = 0; r < rows; r++) {
                if (key >= from(i0 + r) && key < to(bi, i0 + r)) {
                    float e = be.expf(scoresT[base + r] - max[r]);
                    scoresT[base + r] = e;
                    sum[r] += e;
                } else {
                    scoresT[base + r] = 0f;
                }
            }
        }
        // O = (exp(S − max)·V) / sum: dividing the D columns of a row of O rather than its keys
        // entries of P costs D instead of keys multiplications per row
        float[] inv = w.rowScale;
        for (int r = 0; r < rows; r++) {
            boolean none = sum[r] == 0;
            inv[r] = none ? 0f : (float) (1.0 / sum[r]);
            lse[lOff + (bi * h + hi) * t + i0 + r] = none ? Float.NEGATIVE_INFINITY : (float) (max[r] + Math.log(sum[r]));
        }
        be.gemm(true, false, d, rows, keys, 1f, vs, valueRow(bi, lo, gi), vPos, w.scoresStorage, 0, rows, 0f,
                w.outTStorage, 0, rows);
        for (int c = 0; c < d; c++) {
            for (int r = 0; r < rows; r++) {
                w.outT[c * rows + r] *= inv[r];
            }
        }
        scatter(w.outT, rows, d, rows, out, outRow, ldq);
    }

    /**
     * A block of one query row, as in a KV-cache decode step: a dot product and an axpy per key,
     * reading each K and V row once. Packing K and V for gemm would copy them (and pad the single
     * column to a full register tile) for products that have nothing to reuse.
     */
    private void forwardRow(int bi, int hi, int i, float[] scores, float[] out, int oOff, float[] lse, int lOff) {
        int qo = queryRow(bi, i, hi);
        int oo = qo - qOff + oOff;
        int gi = hi / groupSize;
        int lo = from(i);
        int end = to(bi, i);
        float max = Float.NEGATIVE_INFINITY;
        for (int j = lo; j < end; j++) {
            float sc = capped(scale * be.dot(q, qo, k, keyRow(bi, j, gi), d));
            scores[j - lo] = sc;
            max = Math.max(max, sc);
        }
        be.expShifted(scores, 0, Math.max(0, end - lo), max);
        double sum = 0;
        for (int j = lo; j < end; j++) {
            sum += scores[j - lo];
        }
        Arrays.fill(out, oo, oo + d, 0f);
        if (sum == 0) {
            lse[lOff + (bi * h + hi) * t + i] = Float.NEGATIVE_INFINITY;
            return;
        }
        float inv = (float) (1.0 / sum);
        for (int j = lo; j < end; j++) {
            be.axpy(scores[j - lo] * inv, v, valueRow(bi, j, gi), out, oo, d);
        }
        lse[lOff + (bi * h + hi) * t + i] = (float) (max + Math.log(sum));
    }

    // ---------------------------------------------------------------- backward

    void backward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor out, Tensor lse) {
        for (Tensor x : new Tensor[] {dQ, dK, dV, dOut, out, lse}) {
            if (!x.isContiguous()) {
                throw new IllegalArgumentException("attentionBackward: gradients, out and lse must be contiguous, got "
                        + x + " with strides " + Arrays.toString(x.strides()));
            }
        }
        float[] dq = CpuBackend.array(dQ);
        float[] dk = CpuBackend.array(dK);
        float[] dv = CpuBackend.array(dV);
        float[] dO = CpuBackend.array(dOut);
        float[] o = CpuBackend.array(out);
        float[] l = CpuBackend.array(lse);
        Grads x = new Grads(dq, dQ.intOffset(), dO, dOut.intOffset(), new FloatStorage(dO), o, out.intOffset(), l,
                lse.intOffset());
        int dkOff = dK.intOffset();
        int dvOff = dV.intOffset();
        // one task per (batch, kv head): the query heads of a group write the same dK, dV rows
        Parallel.forRange(b * g, 1, (p0, p1) -> {
            Scratch w = acquire(Math.min(QUERY_BLOCK, t), s, d, true);
            try {
                for (int bg = p0; bg < p1; bg++) {
                    int bi = bg / g;
                    int gi = bg % g;
                    Arrays.fill(w.dkT, 0, d * s, 0f);
                    Arrays.fill(w.dvT, 0, d * s, 0f);
                    for (int hi = gi * groupSize; hi < (gi + 1) * groupSize; hi++) {
                        for (int i0 = 0; i0 < t; i0 += QUERY_BLOCK) {
                            backwardBlock(bi, hi, i0, Math.min(t, i0 + QUERY_BLOCK), x, w);
                        }
                    }
                    int ko = ((bi * s) * g + gi) * d;
                    scatter(w.dkT, s, d, s, dk, dkOff + ko, g * d);
                    scatter(w.dvT, s, d, s, dv, dvOff + ko, g * d);
                }
            } finally {
                w.inUse = false;
            }
        });
    }

    /** The gradient-side arrays of one backward call. */
    private record Grads(float[] dq, int dqOff, float[] dO, int dOOff, FloatStorage dOs, float[] out, int outOff,
                         float[] lse, int lseOff) {
    }

    /**
     * Gradients of query rows [i0, i1) of head hi: P is recomputed from the saved log-sum-exp
     * (exactly the forward's S, so exp(S − L) is the forward's P), then the four products of the
     * block. dQ rows belong to this block alone; dKᵀ and dVᵀ sum over the blocks and heads of the
     * kv group, which the caller runs in a fixed order on one thread.
     */
    private void backwardBlock(int bi, int hi, int i0, int i1, Grads x, Scratch w) {
        int rows = i1 - i0;
        int qo = queryRow(bi, i0, hi);
        int rel = qo - qOff;
        int gi = hi / groupSize;
        int ldq = h * d;
        int lo = from(i0);
        int hiKey = 0;
        for (int r = 0; r < rows; r++) {
            hiKey = Math.max(hiKey, to(bi, i0 + r));
        }
        int keys = Math.max(0, hiKey - lo);
        if (keys == 0) {
            for (int r = 0; r < rows; r++) {
                Arrays.fill(x.dq, x.dqOff + rel + r * ldq, x.dqOff + rel + r * ldq + d, 0f);
            }
            return;
        }
        int ko = keyRow(bi, lo, gi);
        int vo = valueRow(bi, lo, gi);
        float[] p = w.scores;
        float[] dp = w.other;
        be.gemm(false, true, rows, keys, d, scale, qs, qo, ldq, ks, ko, kPos, 0f, w.scoresStorage, 0, keys);
        for (int r = 0; r < rows; r++) {
            int row = r * keys;
            float l = x.lse[x.lseOff + (bi * h + hi) * t + i0 + r];
            int first = Math.max(0, from(i0 + r) - lo);
            int end = Math.max(first, to(bi, i0 + r) - lo);
            if (l == Float.NEGATIVE_INFINITY) {
                end = first;
            }
            Arrays.fill(p, row, row + first, 0f);
            if (cap > 0) {
                for (int j = row + first; j < row + end; j++) {
                    p[j] = capped(p[j]);
                }
            }
            be.expShifted(p, row + first, end - first, l);
            Arrays.fill(p, row + end, row + keys, 0f);
        }
        // dVᵀ += dOᵀ·P
        be.gemm(true, false, d, keys, rows, 1f, x.dOs, x.dOOff + rel, ldq, w.scoresStorage, 0, keys, 1f, w.dvTStorage,
                lo, s);
        // dP = dO·Vᵀ, then dS = P ⊙ (dP − D) in place (masked entries stay 0 since P is 0 there)
        be.gemm(false, true, rows, keys, d, 1f, x.dOs, x.dOOff + rel, ldq, vs, vo, vPos, 0f, w.otherStorage, 0, keys);
        for (int r = 0; r < rows; r++) {
            int row = r * keys;
            int oRow = rel + r * ldq;
            float rowDot = be.dot(x.dO, x.dOOff + oRow, x.out, x.outOff + oRow, d);
            for (int j = row; j < row + keys; j++) {
                dp[j] = p[j] * (dp[j] - rowDot);
            }
        }
        if (cap > 0) {
            // through the soft-cap: d(c·tanh(u/c))/du = 1 − tanh², with tanh = capped/c recomputed from the raw score
            be.gemm(false, true, rows, keys, d, scale, qs, qo, ldq, ks, ko, kPos, 0f, w.scoresStorage, 0, keys);
            for (int j = 0; j < rows * keys; j++) {
                float th = (float) Math.tanh(p[j] / cap);
                dp[j] *= 1f - th * th;
            }
        }
        // dKᵀ += Qᵀ·dS·scale
        be.gemm(true, false, d, keys, rows, scale, qs, qo, ldq, w.otherStorage, 0, keys, 1f, w.dkTStorage, lo, s);
        // dQᵀ = Kᵀ·dSᵀ·scale, with dSᵀ in the buffer P no longer needs; these dQ rows are this block's alone
        transpose(dp, rows, keys, p);
        be.gemm(true, false, d, rows, keys, scale, ks, ko, kPos, w.scoresStorage, 0, rows, 0f, w.outTStorage, 0, rows);
        scatter(w.outT, rows, d, rows, x.dq, x.dqOff + rel, ldq);
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
