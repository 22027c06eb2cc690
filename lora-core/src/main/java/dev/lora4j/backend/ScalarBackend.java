package dev.lora4j.backend;

import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.util.Arrays;

/**
 * Plain-Java CPU kernels; the fallback when the Vector API is not enabled and the base class of
 * the Vector API backend, which replaces only the innermost loops.
 *
 * <p>{@link #gemm} follows the GotoBLAS/BLIS layering (K. Goto and R. van de Geijn, "Anatomy of
 * high-performance matrix multiplication", ACM TOMS 34(3), 2008): C is split into column ranges
 * (row ranges when C is narrow) that run on {@link Parallel}; within a range, for every depth block
 * of {@value #KC}, a panel of op(B) is packed (and widened from its storage) into
 * {@code nr}-wide micro-panels, a block of op(A) into {@code mr}-tall micro-panels, and a
 * register-blocked micro-kernel adds each {@code mr x nr} tile of the product to C. Packing turns
 * all four transpose forms and every leading dimension into the same unit-stride inner loop, and
 * means a BF16/F16/4-bit B is only ever widened one panel at a time, into a thread-local buffer.
 * Two shapes of x·Wᵀ (B transposed) take shortcuts: with at most {@value #DOT_ROWS} rows each
 * element is a {@link #dot} of two rows, and when a backend has a row kernel and the depth block
 * is longer than A is tall, rows of W are streamed in place as the broadcast operand of tiles of
 * Cᵀ instead of being transposed into micro-panels.
 *
 * <p>Every element of C is computed as
 * {@code c = beta*c (or 0 when beta == 0); for each depth block in order: c += alpha * s_block},
 * where {@code s_block} sums its products in increasing k. This order depends only on k, so results
 * are bit-identical whatever the thread split or scheduling, and the packed and row-streaming
 * paths agree bit for bit (the few-row dot path sums differently). Zero padding of partial
 * micro-panels only feeds padded lanes, which are discarded.
 */
public class ScalarBackend extends CpuBackend {

    /** Depth of a packed block: elements of k per pass over a C tile. */
    static final int KC = 512;
    /** Rows of op(A) packed at a time. */
    static final int MC = 192;
    /** Columns of op(B) packed at a time (rounded down to a multiple of the column unit). */
    static final int NC = 768;
    /** Below this many multiply-adds a product runs on the calling thread. */
    static final long MIN_PARALLEL_MACS = 1L << 20;
    /**
     * Up to this many rows, x·Wᵀ is computed as dot products of rows (no packing): transposing
     * W into micro-panels would cost more than the arithmetic it feeds.
     */
    static final int DOT_ROWS = 4;

    private static final int TRANSPOSE_BLOCK = 16;
    private static final int SCALAR_MR = 4;
    private static final int SCALAR_NR = 4;

    private final int mr;
    private final int nr;
    private final int kcBlock;
    private final int mcBlock;
    private final int ncBlock;
    private final ThreadLocal<Workspace> workspaces = ThreadLocal.withInitial(Workspace::new);

    public ScalarBackend() {
        this(SCALAR_MR, SCALAR_NR);
    }

    /** For subclasses whose {@link #microKernel} computes {@code mr x nr} tiles. */
    protected ScalarBackend(int mr, int nr) {
        this(mr, nr, KC, MC, NC);
    }

    /** With explicit cache blocking (for tuning experiments): depth, rows of A, columns of B. */
    ScalarBackend(int mr, int nr, int kc, int mc, int nc) {
        if (mr < 1 || nr < 1 || kc < 1 || mc < mr || nc < nr) {
            throw new IllegalArgumentException("micro-tile " + mr + "x" + nr + " and blocks kc=" + kc + ", mc=" + mc
                    + ", nc=" + nc + " must be positive with mc >= mr and nc >= nr");
        }
        this.mr = mr;
        this.nr = nr;
        this.kcBlock = kc;
        this.mcBlock = mc / mr * mr;
        this.ncBlock = nc;
    }

    @Override
    public String name() {
        return "scalar";
    }

    /** Rows of the micro-kernel's register tile. */
    public final int microTileRows() {
        return mr;
    }

    /** Columns of the micro-kernel's register tile. */
    public final int microTileColumns() {
        return nr;
    }

    @Override
    public String toString() {
        return name() + " backend (" + mr + "x" + nr + " micro-tiles)";
    }

    // ---------------------------------------------------------------- gemm

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb,
                     float beta, Storage c, long cOffset, int ldc) {
        GemmArguments.check(name(), transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
        float[] cArray = GemmArguments.heapFloats(name(), "C", c);
        if (m == 0 || n == 0) {
            return;
        }
        int co = (int) cOffset;
        if (k == 0 || alpha == 0f) {
            scale(cArray, co, ldc, 0, m, 0, n, beta);
            return;
        }
        float[] aArray = GemmArguments.heapFloats(name(), "A", a);

        if (!transA && transB && m <= DOT_ROWS) {
            rowDots(m, n, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray, co, ldc);
            return;
        }
        // streaming rows of B saves transposing them but adds a transposed update of C per tile:
        // it wins while a depth block is longer than op(A) is tall (shorter for widened B, measured)
        int streamRows = b instanceof FloatStorage ? m : 4 * m;
        boolean rowStream = transB && hasRowKernel() && streamRows <= Math.min(k, kcBlock);
        Product p = new Product(transA, transB, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray,
                co, ldc, rowStream);
        int threads = Parallel.parallelism();
        long macs = (long) m * n * k;
        int rowUnit = rowStream ? nr : mr;
        int columnUnits = ceilDiv(n, p.columnUnit);
        int rowUnits = ceilDiv(m, rowUnit);
        if (threads <= 1 || macs < MIN_PARALLEL_MACS || (columnUnits == 1 && rowUnits == 1)) {
            p.run(0, m, 0, n);
        } else if (columnUnits >= 2 * threads || columnUnits >= rowUnits) {
            int grain = (int) Math.max(1, MIN_PARALLEL_MACS / ((long) m * k * p.columnUnit));
            Parallel.forRange(columnUnits, grain,
                    (from, to) -> p.run(0, m, from * p.columnUnit, Math.min(n, to * p.columnUnit)));
        } else {
            int grain = (int) Math.max(1, MIN_PARALLEL_MACS / ((long) rowUnit * k * n));
            Parallel.forRange(rowUnits, grain, (from, to) -> p.run(from * rowUnit, Math.min(m, to * rowUnit), 0, n));
        }
    }

    /**
     * C = alpha * A·Bᵀ + beta * C for a few rows of A: each element is one {@link #dot} of a row of
     * A and a (widened) row of B over the whole depth.
     */
    private void rowDots(int m, int n, int k, float alpha, float[] a, int aOffset, int lda, Storage b, long bOffset,
                         int ldb, float beta, float[] c, int cOffset, int ldc) {
        float[] bHeap = b instanceof FloatStorage fs ? fs.array() : null;
        Parallel.RangeBody body = (j0, j1) -> {
            scale(c, cOffset, ldc, 0, m, j0, j1, beta);
            Workspace ws = acquireWorkspace();
            try {
                float[] row = ws.row(k);
                Widener widener = bHeap == null ? widener(b) : null;
                for (int j = j0; j < j1; j++) {
                    long start = bOffset + (long) j * ldb;
                    float[] w = row;
                    int wOffset = 0;
                    if (bHeap != null) {
                        w = bHeap;
                        wOffset = (int) start;
                    } else {
                        widener.widen(start, k, row, 0);
                    }
                    for (int i = 0; i < m; i++) {
                        int ci = cOffset + i * ldc + j;
                        c[ci] = accumulate(c[ci], alpha, dot(a, aOffset + i * lda, w, wOffset, k));
                    }
                }
            } finally {
                ws.inUse = false;
            }
        };
        int grain = (int) Math.max(1, MIN_PARALLEL_MACS / ((long) m * k));
        Parallel.forRange(n, grain, body);
    }

    /**
     * Column ranges handed to threads are multiples of this, so that a blockwise-quantized B
     * stored [k, n] is decoded in whole blocks.
     */
    private int columnUnit(Storage b, boolean transB) {
        int align = b.decodeAlignment();
        if (!transB && align > nr && align <= 1024 && align % nr == 0) {
            return align;
        }
        return nr;
    }

    /** One gemm call: the operands and the work on a rectangle of C. */
    private final class Product {
        final boolean transA;
        final boolean transB;
        final int k;
        final float alpha;
        final float[] a;
        final int aOffset;
        final int lda;
        final Storage b;
        final float[] bHeap;
        final long bOffset;
        final int ldb;
        final float beta;
        final float[] c;
        final int cOffset;
        final int ldc;
        /** Stream rows of B through {@link #rowKernel} instead of packing B (needs transB). */
        final boolean rowStream;
        /** C columns handed to threads are multiples of this. */
        final int columnUnit;
        final int ncBlock;

        Product(boolean transA, boolean transB, int k, float alpha, float[] a, int aOffset, int lda, Storage b,
                long bOffset, int ldb, float beta, float[] c, int cOffset, int ldc, boolean rowStream) {
            this.transA = transA;
            this.transB = transB;
            this.k = k;
            this.alpha = alpha;
            this.a = a;
            this.aOffset = aOffset;
            this.lda = lda;
            this.b = b;
            this.bHeap = b instanceof FloatStorage fs ? fs.array() : null;
            this.bOffset = bOffset;
            this.ldb = ldb;
            this.beta = beta;
            this.c = c;
            this.cOffset = cOffset;
            this.ldc = ldc;
            this.rowStream = rowStream;
            this.columnUnit = rowStream ? mr : columnUnit(b, transB);
            this.ncBlock = Math.max(columnUnit, ScalarBackend.this.ncBlock / columnUnit * columnUnit);
        }

        /** C[i0:i1, j0:j1] = alpha * op(A)[i0:i1, :] * op(B)[:, j0:j1] + beta * C[i0:i1, j0:j1]. */
        void run(int i0, int i1, int j0, int j1) {
            scale(c, cOffset, ldc, i0, i1, j0, j1, beta);
            Workspace ws = acquireWorkspace();
            try {
                if (rowStream) {
                    runRowStream(ws, i0, i1, j0, j1);
                } else {
                    runPacked(ws, i0, i1, j0, j1);
                }
            } finally {
                ws.inUse = false;
            }
        }

        private void runPacked(Workspace ws, int i0, int i1, int j0, int j1) {
            Widener widener = bHeap == null ? widener(b) : null;
            int kcMax = Math.min(kcBlock, k);
            float[] packedB = ws.packedB(ceilDiv(Math.min(ncBlock, j1 - j0), nr) * nr * kcMax);
            float[] packedA = ws.packedA(ceilDiv(Math.min(mcBlock, i1 - i0), mr) * mr * kcMax);
            float[] tile = ws.tile(mr * nr);
            for (int jc = j0; jc < j1; jc += ncBlock) {
                int nc = Math.min(ncBlock, j1 - jc);
                for (int pc = 0; pc < k; pc += kcBlock) {
                    int kc = Math.min(kcBlock, k - pc);
                    if (transB) {
                        packBTransposed(ws, widener, packedB, pc, kc, jc, nc);
                    } else {
                        packB(ws, widener, packedB, pc, kc, jc, nc);
                    }
                    for (int ic = i0; ic < i1; ic += mcBlock) {
                        int mc = Math.min(mcBlock, i1 - ic);
                        packA(ws, packedA, ic, mc, pc, kc, mr);
                        multiplyBlock(packedA, packedB, tile, ic, mc, jc, nc, kc);
                    }
                }
            }
        }

        private void multiplyBlock(float[] packedA, float[] packedB, float[] tile, int ic, int mc, int jc, int nc,
                                   int kc) {
            for (int jr = 0; jr < nc; jr += nr) {
                int cols = Math.min(nr, nc - jr);
                int bIndex = jr * kc;
                for (int ir = 0; ir < mc; ir += mr) {
                    int rows = Math.min(mr, mc - ir);
                    int aIndex = ir * kc;
                    int cIndex = cOffset + (ic + ir) * ldc + jc + jr;
                    if (rows == mr && cols == nr) {
                        microKernel(kc, packedA, aIndex, packedB, bIndex, c, cIndex, ldc, alpha);
                    } else {
                        Arrays.fill(tile, 0, mr * nr, 0f);
                        microKernel(kc, packedA, aIndex, packedB, bIndex, tile, 0, nr, 1f);
                        for (int r = 0; r < rows; r++) {
                            for (int j = 0; j < cols; j++) {
                                int ci = cIndex + r * ldc + j;
                                c[ci] = accumulate(c[ci], alpha, tile[r * nr + j]);
                            }
                        }
                    }
                }
            }
        }

        /**
         * op(B) = Bᵀ, computed as tiles of Cᵀ = B·op(A)ᵀ: {@code mr} rows of B (read in place when
         * B is heap F32, else widened row by row) are the broadcast operand, op(A) is packed into
         * {@code nr}-wide panels, and each tile is added to C transposed. Per element this is the
         * same sequence of fused operations as {@link #runPacked}, without transposing B.
         */
        private void runRowStream(Workspace ws, int i0, int i1, int j0, int j1) {
            Widener widener = bHeap == null ? widener(b) : null;
            int kcMax = Math.min(kcBlock, k);
            int mcPanels = Math.max(nr, mcBlock / nr * nr);
            float[] packedA = ws.packedA(ceilDiv(Math.min(mcPanels, i1 - i0), nr) * nr * kcMax);
            float[] rows = ws.stage(ceilDiv(Math.min(ncBlock, j1 - j0), mr) * mr * kcMax);
            int[] starts = ws.starts(mr);
            float[] tile = ws.tile(mr * nr);
            for (int jc = j0; jc < j1; jc += ncBlock) {
                int nc = Math.min(ncBlock, j1 - jc);
                for (int pc = 0; pc < k; pc += kcBlock) {
                    int kc = Math.min(kcBlock, k - pc);
                    if (bHeap == null) {
                        for (int j = 0; j < nc; j++) {
                            widener.widen(bOffset + (long) (jc + j) * ldb + pc, kc, rows, j * kc);
                        }
                    }
                    for (int ic = i0; ic < i1; ic += mcPanels) {
                        int mc = Math.min(mcPanels, i1 - ic);
                        packA(ws, packedA, ic, mc, pc, kc, nr);
                        for (int jr = 0; jr < nc; jr += mr) {
                            int count = Math.min(mr, nc - jr);
                            float[] w = bHeap != null && count == mr ? bHeap : rows;
                            for (int r = 0; r < mr; r++) {
                                starts[r] = w == bHeap ? (int) (bOffset + (long) (jc + jr + r) * ldb + pc)
                                        : (jr + r) * kc;
                            }
                            if (w == rows) {
                                fillPartialGroup(rows, jc, jr, count, pc, kc);
                            }
                            for (int ir = 0; ir < mc; ir += nr) {
                                rowKernel(kc, w, starts, packedA, ir * kc, tile);
                                int cols = Math.min(nr, mc - ir);
                                for (int i = 0; i < cols; i++) {
                                    int ci = cOffset + (ic + ir + i) * ldc + jc + jr;
                                    for (int r = 0; r < count; r++) {
                                        c[ci + r] = accumulate(c[ci + r], alpha, tile[r * nr + i]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        /** A group of fewer than mr rows of B is completed with zero rows in the staging buffer. */
        private void fillPartialGroup(float[] rows, int jc, int jr, int count, int pc, int kc) {
            if (count == mr) {
                return;
            }
            if (bHeap != null) {
                for (int r = 0; r < count; r++) {
                    System.arraycopy(bHeap, (int) (bOffset + (long) (jc + jr + r) * ldb + pc), rows, (jr + r) * kc, kc);
                }
            }
            Arrays.fill(rows, (jr + count) * kc, (jr + mr) * kc, 0f);
        }

        /**
         * Packs op(A)[ic:ic+mc, pc:pc+kc] into panels of {@code width} rows, each stored depth
         * step by depth step ({@code width} values per step), zero-padding the last panel.
         */
        private void packA(Workspace ws, float[] dst, int ic, int mc, int pc, int kc, int width) {
            int[] starts = ws.aStarts(width);
            for (int ir = 0, d = 0; ir < mc; ir += width, d += width * kc) {
                int rows = Math.min(width, mc - ir);
                if (transA) { // A stored [k, m]: each depth step of a panel is a contiguous run
                    int src = aOffset + pc * lda + ic + ir;
                    for (int p = 0, q = d; p < kc; p++, src += lda, q += width) {
                        System.arraycopy(a, src, dst, q, rows);
                        if (rows < width) {
                            Arrays.fill(dst, q + rows, q + width, 0f);
                        }
                    }
                } else {
                    for (int r = 0; r < rows; r++) {
                        starts[r] = aOffset + (ic + ir + r) * lda + pc;
                    }
                    transposeRows(a, starts, rows, kc, dst, d, width);
                }
            }
        }

        /** op(B) = B stored [k, n]: copy nr-wide runs of each row, widening a whole row segment first. */
        private void packB(Workspace ws, Widener widener, float[] dst, int pc, int kc, int jc, int nc) {
            int fullPanels = nc / nr;
            int rest = nc - fullPanels * nr;
            for (int p = 0; p < kc; p++) {
                long start = bOffset + (long) (pc + p) * ldb + jc;
                float[] row = bHeap;
                int rowBase = (int) start;
                if (bHeap == null) {
                    row = ws.row(nc);
                    widener.widen(start, nc, row, 0);
                    rowBase = 0;
                }
                int d = p * nr;
                for (int q = 0; q < fullPanels; q++, d += nr * kc) {
                    System.arraycopy(row, rowBase + q * nr, dst, d, nr);
                }
                if (rest > 0) {
                    System.arraycopy(row, rowBase + fullPanels * nr, dst, d, rest);
                    Arrays.fill(dst, d + rest, d + nr, 0f);
                }
            }
        }

        /**
         * op(B) = Bᵀ with B stored [n, k] (the layout of a weight in y = x·Wᵀ): a micro-panel is
         * the transpose of {@code nr} row segments of B, widened into a staging buffer first
         * unless B is heap F32.
         */
        private void packBTransposed(Workspace ws, Widener widener, float[] dst, int pc, int kc, int jc, int nc) {
            int[] starts = ws.starts(nr);
            for (int jr = 0; jr < nc; jr += nr) {
                int cols = Math.min(nr, nc - jr);
                float[] src = bHeap;
                if (bHeap != null) {
                    for (int j = 0; j < cols; j++) {
                        starts[j] = (int) (bOffset + (long) (jc + jr + j) * ldb + pc);
                    }
                } else {
                    src = ws.stage(nr * kc);
                    for (int j = 0; j < cols; j++) {
                        widener.widen(bOffset + (long) (jc + jr + j) * ldb + pc, kc, src, j * kc);
                        starts[j] = j * kc;
                    }
                }
                transposeRows(src, starts, cols, kc, dst, jr * kc, nr);
            }
        }
    }

    /**
     * {@code dst[d + p*width + r] = src[starts[r] + p]} for {@code r < rows, p < kc}, zero for
     * {@code rows <= r < width}. Done in 16 x 16 blocks, so that the 16 destination lines of a block
     * stay in L1 while each source line is consumed at once: source rows of a weight are usually a
     * multiple of 4 KiB apart and would evict each other if read in parallel.
     */
    static void transposeRows(float[] src, int[] starts, int rows, int kc, float[] dst, int d, int width) {
        if (rows < width) {
            Arrays.fill(dst, d, d + width * kc, 0f);
        }
        for (int p0 = 0; p0 < kc; p0 += TRANSPOSE_BLOCK) {
            int pn = Math.min(TRANSPOSE_BLOCK, kc - p0);
            for (int r0 = 0; r0 < rows; r0 += TRANSPOSE_BLOCK) {
                int rn = Math.min(r0 + TRANSPOSE_BLOCK, rows);
                for (int r = r0; r < rn; r++) {
                    int from = starts[r] + p0;
                    int to = d + p0 * width + r;
                    for (int p = 0; p < pn; p++, to += width) {
                        dst[to] = src[from + p];
                    }
                }
            }
        }
    }

    /**
     * Adds {@code alpha} times the {@code mr x nr} product of a packed A micro-panel
     * ({@code kc} steps of {@code mr} values) and a packed B micro-panel ({@code kc} steps of
     * {@code nr} values) to the tile of C at {@code cIndex}: per element,
     * {@code c = accumulate(c, alpha, sum_p a[p]*b[p])} with the sum taken in increasing p.
     */
    void microKernel(int kc, float[] a, int aIndex, float[] b, int bIndex, float[] c, int cIndex, int ldc,
                               float alpha) {
        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f;
        float c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f;
        float c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;
        for (int p = 0; p < kc; p++, aIndex += 4, bIndex += 4) {
            float b0 = b[bIndex];
            float b1 = b[bIndex + 1];
            float b2 = b[bIndex + 2];
            float b3 = b[bIndex + 3];
            float a0 = a[aIndex];
            c00 += a0 * b0;
            c01 += a0 * b1;
            c02 += a0 * b2;
            c03 += a0 * b3;
            float a1 = a[aIndex + 1];
            c10 += a1 * b0;
            c11 += a1 * b1;
            c12 += a1 * b2;
            c13 += a1 * b3;
            float a2 = a[aIndex + 2];
            c20 += a2 * b0;
            c21 += a2 * b1;
            c22 += a2 * b2;
            c23 += a2 * b3;
            float a3 = a[aIndex + 3];
            c30 += a3 * b0;
            c31 += a3 * b1;
            c32 += a3 * b2;
            c33 += a3 * b3;
        }
        storeRow(c, cIndex, alpha, c00, c01, c02, c03);
        storeRow(c, cIndex + ldc, alpha, c10, c11, c12, c13);
        storeRow(c, cIndex + 2 * ldc, alpha, c20, c21, c22, c23);
        storeRow(c, cIndex + 3 * ldc, alpha, c30, c31, c32, c33);
    }

    private static void storeRow(float[] c, int i, float alpha, float s0, float s1, float s2, float s3) {
        c[i] += alpha * s0;
        c[i + 1] += alpha * s1;
        c[i + 2] += alpha * s2;
        c[i + 3] += alpha * s3;
    }

    /**
     * The update {@link #microKernel} applies to one element, used for partial tiles so that
     * they round exactly like full ones.
     */
    float accumulate(float c, float alpha, float sum) {
        return c + alpha * sum;
    }

    /**
     * Whether {@link #rowKernel} exists; then x·Wᵀ products deeper than they are tall stream the
     * rows of W instead of transposing them into micro-panels.
     */
    boolean hasRowKernel() {
        return false;
    }

    /**
     * The {@code mr x nr} tile of Cᵀ from {@code mr} rows of B, {@code w[starts[r] + p]}, and a
     * packed op(A) panel of {@code nr} columns: {@code out[r*nr + i] = sum_p w[r][p] * a[p][i]},
     * summed in increasing p exactly as {@link #microKernel} sums.
     */
    void rowKernel(int kc, float[] w, int[] starts, float[] a, int aIndex, float[] out) {
        throw new UnsupportedOperationException(name() + " has no row kernel");
    }

    /**
     * This thread's packing buffers; a fresh set if they are already in use further up this
     * thread's stack (a gemm re-entered from a fork-join wait).
     */
    private Workspace acquireWorkspace() {
        Workspace ws = workspaces.get();
        if (ws.inUse) {
            ws = new Workspace();
        }
        ws.inUse = true;
        return ws;
    }

    /** Widens elements of a non-heap B into a float buffer; one instance per thread and product. */
    @FunctionalInterface
    interface Widener {
        void widen(long start, int count, float[] dst, int dstOffset);
    }

    /** How B elements are widened; subclasses vectorize the storages they know. */
    Widener widener(Storage b) {
        return b::decode;
    }

    private static void scale(float[] c, int cOffset, int ldc, int i0, int i1, int j0, int j1, float beta) {
        if (beta == 1f) {
            return;
        }
        for (int i = i0; i < i1; i++) {
            int row = cOffset + i * ldc;
            if (beta == 0f) {
                Arrays.fill(c, row + j0, row + j1, 0f);
            } else {
                for (int j = row + j0; j < row + j1; j++) {
                    c[j] *= beta;
                }
            }
        }
    }

    /** Per-thread packing buffers, grown on demand and reused across calls. */
    private static final class Workspace {
        boolean inUse;
        private float[] packedA = new float[0];
        private float[] packedB = new float[0];
        private float[] row = new float[0];
        private float[] tile = new float[0];
        private float[] stage = new float[0];
        private int[] starts = new int[0];
        private int[] aStarts = new int[0];

        int[] aStarts(int size) {
            if (aStarts.length < size) {
                aStarts = new int[size];
            }
            return aStarts;
        }

        float[] stage(int size) {
            if (stage.length < size) {
                stage = new float[size];
            }
            return stage;
        }

        int[] starts(int size) {
            if (starts.length < size) {
                starts = new int[size];
            }
            return starts;
        }

        float[] packedA(int size) {
            if (packedA.length < size) {
                packedA = new float[size];
            }
            return packedA;
        }

        float[] packedB(int size) {
            if (packedB.length < size) {
                packedB = new float[size];
            }
            return packedB;
        }

        float[] row(int size) {
            if (row.length < size) {
                row = new float[size];
            }
            return row;
        }

        float[] tile(int size) {
            if (tile.length < size) {
                tile = new float[size];
            }
            return tile;
        }
    }

    static int ceilDiv(int x, int y) {
        return (x + y - 1) / y;
    }

    // ---------------------------------------------------------------- vector primitives

    @Override
    public float dot(float[] x, int xOffset, float[] y, int yOffset, int n) {
        checkRange("dot", "x", x, xOffset, n);
        checkRange("dot", "y", y, yOffset, n);
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += x[xOffset + i] * y[yOffset + i];
            s1 += x[xOffset + i + 1] * y[yOffset + i + 1];
            s2 += x[xOffset + i + 2] * y[yOffset + i + 2];
            s3 += x[xOffset + i + 3] * y[yOffset + i + 3];
        }
        for (; i < n; i++) {
            s0 += x[xOffset + i] * y[yOffset + i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n) {
        checkRange("axpy", "x", x, xOffset, n);
        checkRange("axpy", "y", y, yOffset, n);
        for (int i = 0; i < n; i++) {
            y[yOffset + i] += alpha * x[xOffset + i];
        }
    }

    @Override
    public double sumOfSquares(float[] x, int offset, int n) {
        checkRange("sumOfSquares", "x", x, offset, n);
        double s0 = 0, s1 = 0;
        int i = 0;
        for (; i + 2 <= n; i += 2) {
            double v0 = x[offset + i];
            double v1 = x[offset + i + 1];
            s0 += v0 * v0;
            s1 += v1 * v1;
        }
        if (i < n) {
            double v = x[offset + i];
            s0 += v * v;
        }
        return s0 + s1;
    }

    /** Bounds of a vector argument, with the operation and parameter in the message. */
    static void checkRange(String op, String name, float[] array, int offset, int n) {
        if (n < 0 || offset < 0 || offset > array.length - n) {
            throw new IndexOutOfBoundsException(op + ": " + name + " range [" + offset + ", " + offset + " + " + n
                    + ") does not fit its array of length " + array.length + " (offset and n must be >= 0)");
        }
    }
}
