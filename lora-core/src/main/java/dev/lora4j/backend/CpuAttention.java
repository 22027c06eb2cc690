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
 * <p>Both passes are tiled as FlashAttention-2 tiles them (T. Dao, "FlashAttention-2", 2023): blocks
 * of {@value #QUERY_BLOCK} query rows against tiles of {@value #KEY_BLOCK} keys, every product of a
 * tile one {@link Backend#gemm} (with a head size D of 8 to 128 a single (query, key) pair is a dot
 * product too short to vectorize; a tile is a product of 64 × 128 × D that the blocked gemm runs at
 * full vector width). Forward keeps, per query row, a running maximum m and sum l of the
 * exponentials: a tile's scores are exponentiated against max(m, the tile's maximum), and when that
 * raises m the row's output accumulator and l are first rescaled by exp(m_old − m_new); after the
 * last tile O = acc / l and L = m + log l. Backward runs tiles of keys in the outer loop (their dK
 * and dV accumulate in tile-sized buffers over the query heads and blocks that see them) and
 * recomputes each P tile from L; dQ rows accumulate over the key tiles in increasing order. Tiles
 * that no row of a block can see (outside the causal range, the sliding window or a sequence's
 * keys) are never scored, and query rows that see none of a tile's keys are left out of its
 * products. The exponentials go through the backend ({@link CpuBackend#expShiftedSum}), vectorized
 * by the Vector API backend with the same bits. A one-row block (a KV-cache
 * decode step) runs the same online softmax as a dot/axpy loop per key: packing K and V for gemm
 * would copy them for products that have nothing to reuse.
 *
 * <p>The scratch per thread is O(tile), independent of the sequence length: scores and their
 * gradient (two 64 × 128 blocks, a third for the soft-cap's derivative), an output or dQ block
 * (D × 64) and the dK, dV tiles (D × 128 each), reused across calls; backward also keeps
 * Dᵢ = dOᵢ·Oᵢ of the rows of one kv group (H/G × T floats, as many as L holds).
 *
 * <p>Results are deterministic and independent of the thread count: tasks are (batch, head) in
 * forward and (batch, kv head) in backward, each writing its own rows, and within a task tiles,
 * heads and blocks run in a fixed order; gemm itself sums in an order fixed by its depth alone.
 */
final class CpuAttention {
    /**
     * Query rows per block: tall enough for the products of a tile to amortize packing a tile of K
     * and V, short enough that a block of scores (64 × {@value #KEY_BLOCK} floats, 32 KiB) and the
     * packed panels stay in L2.
     */
    static final int QUERY_BLOCK = 64;
    /**
     * Keys per tile. The causal diagonal wastes at most the masked half of a 64 × 128 tile; longer
     * tiles would waste more there and hold more scratch, shorter ones pay the rescaling and the
     * gemm call overhead more often.
     */
    static final int KEY_BLOCK = 128;
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

    /** Per-thread buffers of tile size, grown on demand; see the class comment. */
    private static final class Scratch {
        boolean inUse;
        final float[] rowMax = new float[QUERY_BLOCK];
        final double[] rowSum = new double[QUERY_BLOCK];
        final float[] rowScale = new float[QUERY_BLOCK];
        final float[] scores = new float[QUERY_BLOCK * KEY_BLOCK];
        final float[] other = new float[QUERY_BLOCK * KEY_BLOCK];
        final float[] capGrad = new float[QUERY_BLOCK * KEY_BLOCK];
        final FloatStorage scoresStorage = new FloatStorage(scores);
        final FloatStorage otherStorage = new FloatStorage(other);
        float[] outT = new float[0];
        float[] dkT = new float[0];
        float[] dvT = new float[0];
        FloatStorage outTStorage;
        FloatStorage dkTStorage;
        FloatStorage dvTStorage;
        /** Dᵢ = dOᵢ·Oᵢ of the query rows of one kv group in backward, (head in group) × T. */
        float[] rowDots = new float[0];

        float[] rowDots(int n) {
            if (rowDots.length < n) {
                rowDots = new float[n];
            }
            return rowDots;
        }

        Scratch ensure(int d) {
            if (outT.length < d * QUERY_BLOCK) {
                outT = new float[d * QUERY_BLOCK];
                dkT = new float[d * KEY_BLOCK];
                dvT = new float[d * KEY_BLOCK];
                outTStorage = new FloatStorage(outT);
                dkTStorage = new FloatStorage(dkT);
                dvTStorage = new FloatStorage(dvT);
            }
            return this;
        }
    }

    /** This thread's scratch, or a fresh one if a task further up this thread's stack holds it. */
    private static Scratch acquire(int d) {
        Scratch w = SCRATCH.get();
        if (w.inUse) {
            w = new Scratch();
        }
        w.inUse = true;
        return w.ensure(d);
    }

    /** s·tanh(x/s), Gemma 2's logit soft-cap (identity when no cap is set). */
    private float capped(float x) {
        return cap > 0 ? cap * (float) Math.tanh(x / cap) : x;
    }

    /*
     * Why the output products are written with D as the row count (Oᵀ = Vᵀ·Pᵀ rather than O = P·V,
     * and likewise dQᵀ, dKᵀ, dVᵀ): gemm's register tile is mr rows (6 or 8) by nr columns (two
     * vectors, 32 floats with AVX-512). With D = 8 as the column count, three quarters of every
     * tile would be padding; as the row count it fills the tile's rows, and keys or query rows run
     * along the vectors. Scores stay [rows, keys], so that each row's maximum and exponentials run
     * over contiguous floats; the price is writing the D-row results of a block back into place.
     */

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
            Scratch w = acquire(d);
            try {
                for (int bh = p0; bh < p1; bh++) {
                    for (int i0 = 0; i0 < t; i0 += QUERY_BLOCK) {
                        int i1 = Math.min(t, i0 + QUERY_BLOCK);
                        if (i1 - i0 == 1) {
                            forwardRow(bh / h, bh % h, i0, w.scores, o, oOff, l, lOff);
                        } else {
                            forwardBlock(bh / h, bh % h, i0, i1, w, o, oOff, l, lOff);
                        }
                    }
                }
            } finally {
                w.inUse = false;
            }
        });
    }

    /**
     * Query rows [i0, i1) of head hi in batch bi, over the key tiles they can see: per tile
     * S = scale·Q·Kᵀ for the rows that see any of its keys, the online-softmax update of each
     * row, then Oᵀ += Vᵀ·Pᵀ into the block's accumulator (D × rows); finally O = acc / l and
     * L = m + log l.
     */
    private void forwardBlock(int bi, int hi, int i0, int i1, Scratch w, float[] out, int oOff, float[] lse,
                              int lOff) {
        int rows = i1 - i0;
        int qo = queryRow(bi, i0, hi);
        int ldq = h * d;
        int gi = hi / groupSize;
        int outRow = qo - qOff + oOff;
        int lseRow = lOff + (bi * h + hi) * t + i0;
        float[] max = w.rowMax;
        double[] sum = w.rowSum;
        float[] corr = w.rowScale;
        float[] p = w.scores;
        float[] accT = w.outT;
        Arrays.fill(max, 0, rows, Float.NEGATIVE_INFINITY);
        Arrays.fill(sum, 0, rows, 0.0);
        Arrays.fill(accT, 0, d * rows, 0f);
        int lo = from(i0);
        int hiKey = 0;
        for (int r = 0; r < rows; r++) {
            hiKey = Math.max(hiKey, to(bi, i0 + r));
        }
        for (int j0 = lo; j0 < hiKey; j0 += KEY_BLOCK) {
            int j1 = Math.min(hiKey, j0 + KEY_BLOCK);
            int kb = j1 - j0;
            // the rows that see a key of this tile (a contiguous run, as both ends of a row's
            // range grow with the row; rows inside it that see none are handled below)
            int ra = 0;
            while (ra < rows && !sees(bi, i0 + ra, j0, j1)) {
                ra++;
            }
            if (ra == rows) {
                continue;
            }
            int rb = rows;
            while (!sees(bi, i0 + rb - 1, j0, j1)) {
                rb--;
            }
            int n = rb - ra;
            be.gemm(false, true, n, kb, d, scale, qs, qo + ra * ldq, ldq, ks, keyRow(bi, j0, gi), kPos, 0f,
                    w.scoresStorage, (long) ra * kb, kb);
            boolean rescale = false;
            for (int r = ra; r < rb; r++) {
                int row = r * kb;
                int a = Math.max(0, from(i0 + r) - j0);
                int e = Math.min(kb, to(bi, i0 + r) - j0);
                corr[r] = 1f;
                if (a >= e) {
                    Arrays.fill(p, row, row + kb, 0f);
                    continue;
                }
                if (cap > 0) {
                    for (int j = row + a; j < row + e; j++) {
                        p[j] = capped(p[j]);
                    }
                }
                float m = Math.max(max[r], maxOf(p, row + a, e - a));
                if (m > max[r] && max[r] != Float.NEGATIVE_INFINITY) {
                    corr[r] = be.expf(max[r] - m);
                    sum[r] *= corr[r];
                    rescale = true;
                }
                max[r] = m;
                Arrays.fill(p, row, row + a, 0f);
                sum[r] += be.expShiftedSum(p, row + a, e - a, m);
                Arrays.fill(p, row + e, row + kb, 0f);
            }
            if (rescale) {
                for (int c = 0; c < d; c++) {
                    int col = c * rows;
                    for (int r = ra; r < rb; r++) {
                        accT[col + r] *= corr[r];
                    }
                }
            }
            // accᵀ[:, ra:rb] += Vᵀ·Pᵀ
            be.gemm(true, true, d, n, kb, 1f, vs, valueRow(bi, j0, gi), vPos, w.scoresStorage, (long) ra * kb, kb, 1f,
                    w.outTStorage, ra, rows);
        }
        for (int r = 0; r < rows; r++) {
            boolean none = sum[r] == 0;
            float inv = none ? 0f : (float) (1.0 / sum[r]);
            lse[lseRow + r] = none ? Float.NEGATIVE_INFINITY : (float) (max[r] + Math.log(sum[r]));
            int to = outRow + r * ldq;
            for (int c = 0; c < d; c++) {
                out[to + c] = accT[c * rows + r] * inv;
            }
        }
    }

    /** The largest of x[off], ..., x[off + n − 1] (−∞ for n = 0). */
    private static float maxOf(float[] x, int off, int n) {
        float m = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + n; i++) {
            m = Math.max(m, x[i]);
        }
        return m;
    }

    /** Whether query row i of batch row bi sees a key in [j0, j1). */
    private boolean sees(int bi, int i, int j0, int j1) {
        return Math.max(from(i), j0) < Math.min(to(bi, i), j1);
    }

    /**
     * A block of one query row, as in a KV-cache decode step: per tile of keys a dot product per
     * key, the online-softmax update, and an axpy per key into the output row, reading each K and V
     * row once. Packing K and V for gemm would copy them (and pad the single row to a full
     * register tile) for products that have nothing to reuse.
     */
    private void forwardRow(int bi, int hi, int i, float[] scores, float[] out, int oOff, float[] lse, int lOff) {
        int qo = queryRow(bi, i, hi);
        int oo = qo - qOff + oOff;
        int gi = hi / groupSize;
        int lo = from(i);
        int end = to(bi, i);
        float max = Float.NEGATIVE_INFINITY;
        double sum = 0;
        Arrays.fill(out, oo, oo + d, 0f);
        for (int j0 = lo; j0 < end; j0 += KEY_BLOCK) {
            int kb = Math.min(end, j0 + KEY_BLOCK) - j0;
            for (int j = 0; j < kb; j++) {
                scores[j] = capped(scale * be.dot(q, qo, k, keyRow(bi, j0 + j, gi), d));
            }
            float m = Math.max(max, maxOf(scores, 0, kb));
            if (m > max && max != Float.NEGATIVE_INFINITY) {
                float corr = be.expf(max - m);
                sum *= corr;
                for (int c = oo; c < oo + d; c++) {
                    out[c] *= corr;
                }
            }
            max = m;
            sum += be.expShiftedSum(scores, 0, kb, m);
            for (int j = 0; j < kb; j++) {
                be.axpy(scores[j], v, valueRow(bi, j0 + j, gi), out, oo, d);
            }
        }
        if (sum == 0) {
            lse[lOff + (bi * h + hi) * t + i] = Float.NEGATIVE_INFINITY;
            return;
        }
        float inv = (float) (1.0 / sum);
        for (int c = oo; c < oo + d; c++) {
            out[c] *= inv;
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
        Grads x = new Grads(dq, dQ.intOffset(), dO, dOut.intOffset(), (FloatStorage) dOut.storage(), o,
                out.intOffset(), l, lse.intOffset());
        int dkOff = dK.intOffset();
        int dvOff = dV.intOffset();
        int ldk = g * d;
        // one task per (batch, kv head): the query heads of a group write the same dK, dV rows
        Parallel.forRange(b * g, 1, (p0, p1) -> {
            Scratch w = acquire(d);
            try {
                for (int bg = p0; bg < p1; bg++) {
                    int bi = bg / g;
                    int gi = bg % g;
                    float[] rowDots = w.rowDots(groupSize * t);
                    for (int hi = gi * groupSize; hi < (gi + 1) * groupSize; hi++) {
                        for (int i = 0; i < t; i++) {
                            int row = queryRow(bi, i, hi) - qOff;
                            Arrays.fill(dq, x.dqOff + row, x.dqOff + row + d, 0f);
                            rowDots[(hi - gi * groupSize) * t + i] = be.dot(dO, x.dOOff + row, o, x.outOff + row, d);
                        }
                    }
                    // keys no query row sees get no gradient
                    int kLo = from(0);
                    int kHi = 0;
                    for (int i = 0; i < t; i++) {
                        kHi = Math.max(kHi, to(bi, i));
                    }
                    kHi = Math.max(kLo, kHi);
                    for (int j = 0; j < s; j++) {
                        if (j < kLo || j >= kHi) {
                            int ko = (bi * s + j) * ldk + gi * d;
                            Arrays.fill(dk, dkOff + ko, dkOff + ko + d, 0f);
                            Arrays.fill(dv, dvOff + ko, dvOff + ko + d, 0f);
                        }
                    }
                    for (int j0 = kLo; j0 < kHi; j0 += KEY_BLOCK) {
                        int kb = Math.min(kHi, j0 + KEY_BLOCK) - j0;
                        Arrays.fill(w.dkT, 0, d * kb, 0f);
                        Arrays.fill(w.dvT, 0, d * kb, 0f);
                        backwardTile(bi, gi, j0, j0 + kb, x, w);
                        int ko = (bi * s + j0) * ldk + gi * d;
                        scatter(w.dkT, kb, d, kb, dk, dkOff + ko, ldk);
                        scatter(w.dvT, kb, d, kb, dv, dvOff + ko, ldk);
                    }
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
     * The gradients from key tile [j0, j1) of kv head gi: over the group's query heads, and over
     * the query rows that see a key of the tile in blocks of {@value #QUERY_BLOCK}, in that order.
     * dKᵀ and dVᵀ of the tile accumulate in the scratch; dQ rows are added to in place.
     */
    private void backwardTile(int bi, int gi, int j0, int j1, Grads x, Scratch w) {
        // the query rows that see a key of the tile: a contiguous run (see forwardBlock)
        int qa = 0;
        while (qa < t && !sees(bi, qa, j0, j1)) {
            qa++;
        }
        if (qa == t) {
            return;
        }
        int qb = t;
        while (!sees(bi, qb - 1, j0, j1)) {
            qb--;
        }
        for (int hi = gi * groupSize; hi < (gi + 1) * groupSize; hi++) {
            for (int i0 = qa; i0 < qb; i0 += QUERY_BLOCK) {
                backwardBlock(bi, hi, i0, Math.min(qb, i0 + QUERY_BLOCK), j0, j1, x, w);
            }
        }
    }

    /**
     * Query rows [i0, i1) of head hi against keys [j0, j1): P is recomputed from the saved
     * log-sum-exp (exactly the forward's S, so exp(S − L) is the forward's P), then dVᵀ += dOᵀ·P,
     * dP = dO·Vᵀ, dS = P ⊙ (dP − D), dKᵀ += scale·Qᵀ·dS and dQ += scale·dS·K.
     */
    private void backwardBlock(int bi, int hi, int i0, int i1, int j0, int j1, Grads x, Scratch w) {
        int rows = i1 - i0;
        int kb = j1 - j0;
        int qo = queryRow(bi, i0, hi);
        int rel = qo - qOff;
        int gi = hi / groupSize;
        int ldq = h * d;
        int ko = keyRow(bi, j0, gi);
        int vo = valueRow(bi, j0, gi);
        float[] p = w.scores;
        float[] dp = w.other;
        float[] capGrad = w.capGrad;
        be.gemm(false, true, rows, kb, d, scale, qs, qo, ldq, ks, ko, kPos, 0f, w.scoresStorage, 0, kb);
        for (int r = 0; r < rows; r++) {
            int row = r * kb;
            float l = x.lse[x.lseOff + (bi * h + hi) * t + i0 + r];
            int a = Math.max(0, from(i0 + r) - j0);
            int e = Math.max(a, Math.min(kb, to(bi, i0 + r) - j0));
            if (l == Float.NEGATIVE_INFINITY) {
                e = a;
            }
            Arrays.fill(p, row, row + a, 0f);
            if (cap > 0) {
                // through the soft-cap: d(c·tanh(u/c))/du = 1 − tanh²
                for (int j = row + a; j < row + e; j++) {
                    float th = (float) Math.tanh(p[j] / cap);
                    p[j] = cap * th;
                    capGrad[j] = 1f - th * th;
                }
            }
            be.expShifted(p, row + a, e - a, l);
            Arrays.fill(p, row + e, row + kb, 0f);
        }
        // dVᵀ += dOᵀ·P
        be.gemm(true, false, d, kb, rows, 1f, x.dOs, x.dOOff + rel, ldq, w.scoresStorage, 0, kb, 1f, w.dvTStorage, 0,
                kb);
        // dP = dO·Vᵀ, then dS = P ⊙ (dP − D) in place (masked entries stay 0 since P is 0 there)
        be.gemm(false, true, rows, kb, d, 1f, x.dOs, x.dOOff + rel, ldq, vs, vo, vPos, 0f, w.otherStorage, 0, kb);
        for (int r = 0; r < rows; r++) {
            int row = r * kb;
            float rowDot = w.rowDots[(hi - gi * groupSize) * t + i0 + r];
            for (int j = row; j < row + kb; j++) {
                dp[j] = p[j] * (dp[j] - rowDot);
            }
            if (cap > 0) {
                int a = Math.max(0, from(i0 + r) - j0);
                int e = Math.max(a, Math.min(kb, to(bi, i0 + r) - j0));
                for (int j = row + a; j < row + e; j++) {
                    dp[j] *= capGrad[j];
                }
            }
        }
        // dKᵀ += scale·Qᵀ·dS
        be.gemm(true, false, d, kb, rows, scale, qs, qo, ldq, w.otherStorage, 0, kb, 1f, w.dkTStorage, 0, kb);
        // dQᵀ = scale·Kᵀ·dSᵀ for this tile, added to the dQ rows
        be.gemm(true, true, d, rows, kb, scale, ks, ko, kPos, w.otherStorage, 0, kb, 0f, w.outTStorage, 0, rows);
        float[] accT = w.outT;
        for (int r = 0; r < rows; r++) {
            int to = x.dqOff + rel + r * ldq;
            for (int c = 0; c < d; c++) {
                x.dq[to + c] += accT[c * rows + r];
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
