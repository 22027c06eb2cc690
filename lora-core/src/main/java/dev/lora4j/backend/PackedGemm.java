package dev.lora4j.backend;

import static dev.lora4j.backend.GemmPacking.ceilDiv;
import static dev.lora4j.backend.GemmPacking.scale;

import dev.lora4j.backend.GemmPacking.Widener;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.util.Arrays;

/**
 * The packed, cache-blocked matrix product of the CPU backends, after the GotoBLAS/BLIS layering
 * (K. Goto and R. van de Geijn, "Anatomy of high-performance matrix multiplication", ACM TOMS
 * 34(3), 2008; F. Van Zee and R. van de Geijn, "BLIS", ACM TOMS 41(3), 2015). The scalar backend
 * and each Vector API width differ only in what a subclass gives: the register-blocked
 * {@link #kernel}, the row {@link #dot}, how a partial tile is added to C ({@link #accumulate}) and
 * how B is widened ({@link #widener}).
 *
 * <p>C is cut into column ranges (row ranges when C is narrow) that run on {@link Parallel}. In a
 * range, for every {@code nc}-wide slab of columns and {@code kc}-deep block of depth, a panel of
 * op(B) is packed (and widened from its storage) into {@code nr}-wide micro-panels; for every
 * {@code mc}-tall block of rows, op(A) is packed into {@code mr}-tall micro-panels; then for each
 * B micro-panel (kept in L1) the micro-kernel sweeps the A micro-panels (kept in L2), adding an
 * {@code mr x nr} tile to C. Packing ({@link GemmPacking}) turns all four transpose forms and every
 * leading dimension into one unit-stride inner loop, and means a BF16/F16/4-bit B is only ever
 * widened one panel at a time, into a thread-local buffer. With at most {@value #DOT_ROWS} rows,
 * x·Wᵀ takes each element as a dot product of two rows instead (transposing W into micro-panels
 * would cost more than the arithmetic it feeds).
 *
 * <p>Every element of C is computed as {@code c = beta*c (0 when beta == 0); for each depth block
 * in order: c = accumulate(c, alpha, s_block)}, where {@code s_block} sums its products in
 * increasing k. That order depends only on k and the block depth, never on how C is split between
 * threads or tiles, so results are bit-identical for any thread count (the few-row dot path sums
 * differently). Partial tiles go through a scratch tile and round exactly like full ones; zero
 * padding only feeds lanes that are discarded.
 */
abstract class PackedGemm implements GemmKernel {
    /** Up to this many rows, x·Wᵀ is computed as dot products of rows (no packing). */
    static final int DOT_ROWS = 4;
    /**
     * Rows or columns of C worth one repacking of the other operand: packing moves an element in
     * about a cycle, in which a vector micro-kernel does 64 flops, so a range of 320 costs about
     * 10% in packing.
     */
    static final int REPACK_EXTENT = 320;

    /** The backend's name, for argument errors. */
    private final String backend;
    final int mr;
    final int nr;
    final int kcBlock;
    final int mcBlock;
    final int ncBlock;
    private final ThreadLocal<Workspace> workspaces = ThreadLocal.withInitial(Workspace::new);

    /** An {@code mr x nr} micro-kernel with blocks of depth {@code kc}, {@code mc} rows of A and {@code nc} columns of B. */
    PackedGemm(String backend, int mr, int nr, int kc, int mc, int nc) {
        if (mr < 1 || nr < 1 || kc < 1 || mc < mr || nc < nr) {
            throw new IllegalArgumentException("micro-tile " + mr + "x" + nr + " and blocks kc=" + kc + ", mc=" + mc
                    + ", nc=" + nc + " must be positive with mc >= mr and nc >= nr");
        }
        this.backend = backend;
        this.mr = mr;
        this.nr = nr;
        this.kcBlock = kc;
        this.mcBlock = mc / mr * mr;
        this.ncBlock = nc / nr * nr;
    }

    /**
     * Adds {@code alpha} times the {@code mr x nr} product of a packed A micro-panel ({@code kc}
     * steps of {@code mr} values) and a packed B micro-panel ({@code kc} steps of {@code nr}
     * values) to the tile of C at {@code ci}: per element, {@code c = accumulate(c, alpha, s)}
     * with {@code s} summed in increasing step order, starting from 0.
     */
    abstract void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha);

    /** sum of x[xo+i]*y[yo+i], in a fixed order that depends only on n. */
    abstract float dot(float[] x, int xo, float[] y, int yo, int n);

    /** The update {@link #kernel} applies to one element; used for partial tiles so that they round like full ones. */
    abstract float accumulate(float c, float alpha, float sum);

    /** How B elements are widened; subclasses copy the storages they know in bulk. */
    Widener widener(Storage b) {
        return b::decode;
    }

    @Override
    public String toString() {
        return mr + "x" + nr + " micro-tiles, kc=" + kcBlock + ", mc=" + mcBlock + ", nc=" + ncBlock;
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb,
                     float beta, Storage c, long cOffset, int ldc) {
        GemmArguments.check(backend, transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        float[] cArray = GemmArguments.heapFloats(backend, "C", c);
        int co = (int) cOffset;
        if (k == 0 || alpha == 0f) {
            scale(cArray, co, ldc, 0, m, 0, n, beta);
            return;
        }
        float[] aArray = GemmArguments.heapFloats(backend, "A", a);
        if (!transA && transB && m <= DOT_ROWS) {
            rowDots(m, n, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray, co, ldc);
            return;
        }
        Product p = new Product(transA, transB, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray,
                co, ldc);
        int columnUnits = ceilDiv(n, p.columnUnit);
        int rowUnits = ceilDiv(m, mr);
        int threads = Parallel.parallelism();
        // a column range packs all of op(A) again, a row range all of op(B): split the dimension
        // whose ranges repack less, as long as it gives every thread a range
        if ((m <= n || rowUnits < threads) && columnUnits >= Math.min(threads, rowUnits)) {
            Parallel.forRange(columnUnits, grain(columnUnits, p.columnUnit, 2.0 * m * k * p.columnUnit, threads),
                    (from, to) -> p.run(0, m, from * p.columnUnit, Math.min(n, to * p.columnUnit)));
        } else {
            Parallel.forRange(rowUnits, grain(rowUnits, mr, 2.0 * mr * k * n, threads),
                    (from, to) -> p.run(from * mr, Math.min(m, to * mr), 0, n));
        }
    }

    /**
     * Units of C (of {@code unitSize} rows or columns, {@code unitWork} flops each) per parallel
     * range. A range repacks the whole of the other operand, which costs about as much as
     * {@value #REPACK_EXTENT} rows or columns of products, so ranges are at least {@value #REPACK_EXTENT}
     * rows or columns long, unless that would leave a thread without one; and never below
     * {@link Parallel#MIN_TASK_WORK} flops.
     */
    static int grain(int units, int unitSize, double unitWork, int threads) {
        int byWork = (int) Math.min(Integer.MAX_VALUE, Math.ceil(Parallel.MIN_TASK_WORK / unitWork));
        int byPacking = Math.min(ceilDiv(units, threads), ceilDiv(REPACK_EXTENT, unitSize));
        return Math.max(1, Math.max(byWork, byPacking));
    }

    /** C = alpha * A·Bᵀ + beta * C for a few rows of A: each element one {@link #dot} over the whole depth. */
    private void rowDots(int m, int n, int k, float alpha, float[] a, int aOffset, int lda, Storage b, long bOffset,
                         int ldb, float beta, float[] c, int cOffset, int ldc) {
        float[] bHeap = b instanceof FloatStorage fs ? fs.array() : null;
        Parallel.forWork(n, 2.0 * m * k, (j0, j1) -> {
            scale(c, cOffset, ldc, 0, m, j0, j1, beta);
            Workspace ws = acquireWorkspace();
            try {
                Widener widener = bHeap == null ? widener(b) : null;
                float[] row = bHeap == null ? ws.row(k) : null;
                for (int j = j0; j < j1; j++) {
                    long start = bOffset + (long) j * ldb;
                    float[] w = bHeap;
                    int wOffset = (int) start;
                    if (bHeap == null) {
                        widener.widen(start, k, row, 0);
                        w = row;
                        wOffset = 0;
                    }
                    for (int i = 0; i < m; i++) {
                        int ci = cOffset + i * ldc + j;
                        c[ci] = accumulate(c[ci], alpha, dot(a, aOffset + i * lda, w, wOffset, k));
                    }
                }
            } finally {
                ws.inUse = false;
            }
        });
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
        /** C columns handed to threads are multiples of this. */
        final int columnUnit;
        /** Columns of B packed at a time: the block rounded to whole column units. */
        final int nc;

        Product(boolean transA, boolean transB, int k, float alpha, float[] a, int aOffset, int lda, Storage b,
                long bOffset, int ldb, float beta, float[] c, int cOffset, int ldc) {
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
            this.columnUnit = columnUnit(b, transB);
            this.nc = Math.max(columnUnit, ncBlock / columnUnit * columnUnit);
        }

        /** C[i0:i1, j0:j1] = alpha * op(A)[i0:i1, :] * op(B)[:, j0:j1] + beta * C[i0:i1, j0:j1]. */
        void run(int i0, int i1, int j0, int j1) {
            scale(c, cOffset, ldc, i0, i1, j0, j1, beta);
            Workspace ws = acquireWorkspace();
            try {
                Widener widener = bHeap == null ? widener(b) : null;
                int kcMax = Math.min(kcBlock, k);
                float[] packedB = ws.packedB(ceilDiv(Math.min(nc, j1 - j0), nr) * nr * kcMax);
                float[] packedA = ws.packedA(ceilDiv(Math.min(mcBlock, i1 - i0), mr) * mr * kcMax);
                float[] tile = ws.tile(mr * nr);
                for (int jc = j0; jc < j1; jc += nc) {
                    int ncb = Math.min(nc, j1 - jc);
                    for (int pc = 0; pc < k; pc += kcBlock) {
                        int kc = Math.min(kcBlock, k - pc);
                        if (transB) {
                            GemmPacking.packBTransposed(bHeap, widener, bOffset, ldb,
                                    bHeap == null ? ws.stage(nr * kc) : null, ws.starts(nr), packedB, pc, kc, jc, ncb, nr);
                        } else {
                            GemmPacking.packB(bHeap, widener, bOffset, ldb, bHeap == null ? ws.row(ncb) : null, packedB,
                                    pc, kc, jc, ncb, nr);
                        }
                        for (int ic = i0; ic < i1; ic += mcBlock) {
                            int mc = Math.min(mcBlock, i1 - ic);
                            GemmPacking.packA(a, aOffset, lda, transA, ws.starts(mr), packedA, ic, mc, pc, kc, mr);
                            multiplyBlock(packedA, packedB, tile, ic, mc, jc, ncb, kc);
                        }
                    }
                }
            } finally {
                ws.inUse = false;
            }
        }

        private void multiplyBlock(float[] packedA, float[] packedB, float[] tile, int ic, int mc, int jc, int ncb,
                                   int kc) {
            for (int jr = 0; jr < ncb; jr += nr) {
                int cols = Math.min(nr, ncb - jr);
                int bIndex = jr * kc;
                for (int ir = 0; ir < mc; ir += mr) {
                    int rows = Math.min(mr, mc - ir);
                    int aIndex = ir * kc;
                    int cIndex = cOffset + (ic + ir) * ldc + jc + jr;
                    if (rows == mr && cols == nr) {
                        kernel(kc, packedA, aIndex, packedB, bIndex, c, cIndex, ldc, alpha);
                    } else {
                        Arrays.fill(tile, 0, mr * nr, 0f);
                        kernel(kc, packedA, aIndex, packedB, bIndex, tile, 0, nr, 1f);
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

    /** Per-thread packing buffers, grown on demand and reused across calls. */
    private static final class Workspace {
        boolean inUse;
        private float[] packedA = new float[0];
        private float[] packedB = new float[0];
        private float[] row = new float[0];
        private float[] tile = new float[0];
        private float[] stage = new float[0];
        private int[] starts = new int[0];

        float[] packedA(int size) {
            return packedA.length >= size ? packedA : (packedA = new float[size]);
        }

        float[] packedB(int size) {
            return packedB.length >= size ? packedB : (packedB = new float[size]);
        }

        float[] row(int size) {
            return row.length >= size ? row : (row = new float[size]);
        }

        float[] tile(int size) {
            return tile.length >= size ? tile : (tile = new float[size]);
        }

        float[] stage(int size) {
            return stage.length >= size ? stage : (stage = new float[size]);
        }

        int[] starts(int size) {
            return starts.length >= size ? starts : (starts = new int[size]);
        }
    }
}
