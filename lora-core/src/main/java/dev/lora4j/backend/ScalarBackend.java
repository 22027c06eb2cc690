package dev.lora4j.backend;

import static dev.lora4j.backend.GemmPacking.ceilDiv;

import dev.lora4j.backend.GemmPacking.Widener;
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
 With at most {@value #DOT_ROWS} rows, x·Wᵀ (B transposed) takes a shortcut: each element
 * is a {@link #dot} of two rows. The packing steps are {@link GemmPacking}'s, shared with the
 * Vector API's product.
 *
 * <p>Every element of C is computed as
 * {@code c = beta*c (or 0 when beta == 0); for each depth block in order: c += alpha * s_block},
 * where {@code s_block} sums its products in increasing k. This order depends only on k, so results
 * are bit-identical whatever the thread split or scheduling (the few-row dot path sums
 * differently). Zero padding of partial
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
            GemmPacking.scale(cArray, co, ldc, 0, m, 0, n, beta);
            return;
        }
        float[] aArray = GemmArguments.heapFloats(name(), "A", a);

        if (!transA && transB && m <= DOT_ROWS) {
            rowDots(m, n, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray, co, ldc);
            return;
        }
        Product p = new Product(transA, transB, k, alpha, aArray, (int) aOffset, lda, b, bOffset, ldb, beta, cArray,
                co, ldc);
        int threads = Parallel.parallelism();
        long macs = (long) m * n * k;
        int rowUnit = mr;
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
            GemmPacking.scale(c, cOffset, ldc, 0, m, j0, j1, beta);
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
        /** C columns handed to threads are multiples of this. */
        final int columnUnit;
        final int ncBlock;

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
            this.ncBlock = Math.max(columnUnit, ScalarBackend.this.ncBlock / columnUnit * columnUnit);
        }

        /** C[i0:i1, j0:j1] = alpha * op(A)[i0:i1, :] * op(B)[:, j0:j1] + beta * C[i0:i1, j0:j1]. */
        void run(int i0, int i1, int j0, int j1) {
            GemmPacking.scale(c, cOffset, ldc, i0, i1, j0, j1, beta);
            Workspace ws = acquireWorkspace();
            try {
                runPacked(ws, i0, i1, j0, j1);
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
                        GemmPacking.packBTransposed(bHeap, widener, bOffset, ldb, bHeap == null ? ws.stage(nr * kc)
                                : null, ws.starts(nr), packedB, pc, kc, jc, nc, nr);
                    } else {
                        GemmPacking.packB(bHeap, widener, bOffset, ldb, bHeap == null ? ws.row(nc) : null, packedB, pc,
                                kc, jc, nc, nr);
                    }
                    for (int ic = i0; ic < i1; ic += mcBlock) {
                        int mc = Math.min(mcBlock, i1 - ic);
                        GemmPacking.packA(a, aOffset, lda, transA, ws.starts(mr), packedA, ic, mc, pc, kc, mr);
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

    /** How B elements are widened; subclasses vectorize the storages they know. */
    Widener widener(Storage b) {
        return b::decode;
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
