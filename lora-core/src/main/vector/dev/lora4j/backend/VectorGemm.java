package dev.lora4j.backend;

import static dev.lora4j.backend.GemmPacking.ceilDiv;
import static dev.lora4j.backend.GemmPacking.scale;

import dev.lora4j.backend.GemmPacking.Widener;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API matrix product behind {@link VectorBackend#gemm}: packed panels, cache blocking
 * and a register-blocked fused-multiply-add micro-kernel, after the GotoBLAS/BLIS layering
 * (K. Goto and R. van de Geijn, "Anatomy of high-performance matrix multiplication", ACM TOMS
 * 34(3), 2008; F. Van Zee and R. van de Geijn, "BLIS", ACM TOMS 41(3), 2015).
 *
 * <p>C is cut into column ranges (row ranges when C is narrow) that run on {@link Parallel}. In a
 * range, for every {@code nc}-wide slab of columns and {@code kc}-deep block of depth, a panel of
 * op(B) is packed (and widened from its storage) into {@code nr}-wide micro-panels; for every
 * {@code mc}-tall block of rows, op(A) is packed into {@code mr}-tall micro-panels; then for each
 * B micro-panel (kept in L1) the micro-kernel sweeps the A micro-panels (kept in L2), adding an
 * {@code mr x nr} tile to C. Packing turns all four transpose forms and every leading dimension
 * into one unit-stride inner loop, and means a BF16/F16/4-bit B is only ever widened one panel at a
 * time. With at most {@value #DOT_ROWS} rows, x·Wᵀ takes each element as a dot product of two
 * rows instead (decoding: transposing W would cost more than the arithmetic).
 *
 * <p>Every element of C is computed as {@code c = beta*c (0 when beta == 0); for each depth block
 * in order: c = fma(alpha, s_block, c)}, where {@code s_block} is a chain of fused multiply-adds in
 * increasing k starting from 0. That order depends only on k and the block depth, never on how C
 * is split between threads or tiles, so results are bit-identical for any thread count and the
 * four transpose forms agree bit for bit. Partial tiles go through a scratch tile and round exactly
 * like full ones; zero padding only feeds lanes that are discarded.
 *
 * <p>One subclass per vector width, each with its species a compile-time constant (the Vector API
 * only compiles to vector instructions when C2 sees the species as a constant): 512 bits with an
 * 8 x 2-vector tile (16 accumulators of 32 registers), 256 and 128 bits with a 6 x 2-vector tile
 * (12 accumulators, which fit the 16 registers of AVX2). Only the platform's preferred width is
 * used in production; the others exist to be tested ({@link #ofWidth}).
 */
public abstract class VectorGemm implements GemmKernel {

    /**
     * Depth of a packed block. A B micro-panel (kc x nr floats, 32 KiB at 512 bits) then stays in
     * a 48 KiB L1 while the micro-kernel sweeps the A block.
     */
    static final int KC = 256;
    /** Rows of op(A) packed at a time: an A block of {@code MC x KC} floats (256 KiB) stays in L2. */
    static final int MC = 256;
    /** Columns of op(B) packed at a time: a B block of {@code KC x NC} floats (3 MiB) in L3. */
    static final int NC = 3072;
    /** Up to this many rows, x·Wᵀ is computed as dot products of rows (no packing). */
    static final int DOT_ROWS = 4;
    /**
     * Rows or columns of C worth one repacking of the other operand: packing moves an element in
     * about a cycle, in which the micro-kernel does 64 flops, so a range of 320 costs about 10% in
     * packing.
     */
    static final int REPACK_EXTENT = 320;

    private final String name;
    final int mr;
    final int nr;
    private final int kcBlock;
    private final int mcBlock;
    private final int ncBlock;
    private final ThreadLocal<Workspace> workspaces = ThreadLocal.withInitial(Workspace::new);

    VectorGemm(String name, int mr, int nr, int kc, int mc, int nc) {
        if (kc < 1 || mc < mr || nc < nr) {
            throw new IllegalArgumentException("blocks kc=" + kc + ", mc=" + mc + ", nc=" + nc
                    + " must be positive with mc >= " + mr + " (mr) and nc >= " + nr + " (nr)");
        }
        this.name = name;
        this.mr = mr;
        this.nr = nr;
        this.kcBlock = kc;
        this.mcBlock = mc / mr * mr;
        this.ncBlock = nc / nr * nr;
    }

    /** The product at the platform's preferred vector width. */
    public static VectorGemm preferred() {
        return ofWidth(FloatVector.SPECIES_PREFERRED.vectorBitSize());
    }

    /**
     * The product at a given vector width: 512, 256 or 128 bits. A width wider than the hardware's
     * still computes correctly (the Vector API emulates it) but slowly; it exists for tests.
     */
    public static VectorGemm ofWidth(int bits) {
        return ofWidth(bits, KC, MC, NC);
    }

    /** With explicit cache blocking, for tuning experiments. */
    static VectorGemm ofWidth(int bits, int kc, int mc, int nc) {
        return switch (bits) {
            case 512 -> new Width512(kc, mc, nc);
            case 256 -> new Width256(kc, mc, nc);
            case 128 -> new Width128(kc, mc, nc);
            default -> throw new IllegalArgumentException("vector width must be 512, 256 or 128 bits, was " + bits);
        };
    }

    @Override
    public String toString() {
        return name + " (" + mr + "x" + nr + " micro-tiles, kc=" + kcBlock + ", mc=" + mcBlock + ", nc=" + ncBlock + ")";
    }

    /**
     * Adds {@code alpha} times the {@code mr x nr} product of a packed A micro-panel ({@code kc}
     * steps of {@code mr} values) and a packed B micro-panel ({@code kc} steps of {@code nr}
     * values) to the tile of C at {@code ci}: per element, {@code c = fma(alpha, s, c)} with
     * {@code s} a chain of fused multiply-adds in increasing step order, starting from 0.
     */
    abstract void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha);

    /** sum of x[xo+i]*y[yo+i], in a fixed order that depends only on n. */
    abstract float dot(float[] x, int xo, float[] y, int yo, int n);

    // ---------------------------------------------------------------- the product

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb,
                     float beta, Storage c, long cOffset, int ldc) {
        GemmArguments.check("vector", transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc);
        if (m == 0 || n == 0) {
            return;
        }
        float[] cArray = ((FloatStorage) c).array();
        int co = (int) cOffset;
        if (k == 0 || alpha == 0f) {
            scale(cArray, co, ldc, 0, m, 0, n, beta);
            return;
        }
        float[] aArray = ((FloatStorage) a).array();
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
                        c[ci] = Math.fma(alpha, dot(a, aOffset + i * lda, w, wOffset, k), c[ci]);
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
        final int columnUnit;
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
                                c[ci] = Math.fma(alpha, tile[r * nr + j], c[ci]);
                            }
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- widening B

    /** BF16, F16 and F32 buffers are copied in bulk (half precision widened with vector ops); others decode. */
    static Widener widener(Storage b) {
        if (b instanceof BufferStorage buffer && buffer.dtype() == DType.F32) {
            FloatBuffer floats = buffer.bytes().asFloatBuffer();
            return (start, count, dst, dstOffset) -> floats.get(Math.toIntExact(start), dst, dstOffset, count);
        }
        if (b instanceof BufferStorage buffer && (buffer.dtype() == DType.BF16 || buffer.dtype() == DType.F16)) {
            ShortBuffer shorts = buffer.bytes().asShortBuffer();
            boolean bf16 = buffer.dtype() == DType.BF16;
            return new Widener() {
                private short[] raw = new short[0];

                @Override
                public void widen(long start, int count, float[] dst, int dstOffset) {
                    if (raw.length < count) {
                        raw = new short[count];
                    }
                    shorts.get(Math.toIntExact(start), raw, 0, count);
                    if (bf16) {
                        VectorBackend.widenBf16(raw, count, dst, dstOffset);
                    } else {
                        VectorBackend.widenF16(raw, count, dst, dstOffset);
                    }
                }
            };
        }
        return b::decode;
    }

    // ---------------------------------------------------------------- per-thread buffers

    /**
     * This thread's packing buffers; a fresh set if they are already in use further up this
     * thread's stack.
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

    // ---------------------------------------------------------------- the micro-kernels

    /*
     * The kernels below are one template instantiated per width, because the species must be a
     * static final constant in the method C2 compiles. Indices are written as functions of the loop
     * counter p (not as pointers bumped each step) so that C2 can hoist their bounds checks out of
     * the loop. The tile update at the end is written out in place: through a helper taking vectors
     * as arguments, C2 boxed the accumulators (about 770 bytes per tile).
     */

    /** 512-bit vectors, 8 x 32 tiles: 16 accumulators, 2 B vectors and a broadcast in 32 registers. */
    static final class Width512 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
        private static final int L = 16;

        Width512(int kc, int mc, int nc) {
            super("512-bit vector gemm", 8, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            FloatVector c60 = c00, c61 = c00, c70 = c00, c71 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 8 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
                x = FloatVector.broadcast(F, a[pa + 6]);
                c60 = x.fma(b0, c60);
                c61 = x.fma(b1, c61);
                x = FloatVector.broadcast(F, a[pa + 7]);
                c70 = x.fma(b0, c70);
                c71 = x.fma(b1, c71);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c60.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c61.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c70.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c71.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) { // in lane order: reduceLanes leaves its order open
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }

    /** 256-bit vectors, 6 x 16 tiles. */
    static final class Width256 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
        private static final int L = 8;

        Width256(int kc, int mc, int nc) {
            super("256-bit vector gemm", 6, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 6 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) {
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }

    /** 128-bit vectors, 6 x 8 tiles. */
    static final class Width128 extends VectorGemm {
        private static final VectorSpecies<Float> F = FloatVector.SPECIES_128;
        private static final int L = 4;

        Width128(int kc, int mc, int nc) {
            super("128-bit vector gemm", 6, 2 * L, kc, mc, nc);
        }

        @Override
        void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
            FloatVector c00 = FloatVector.zero(F), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
            FloatVector c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (int p = 0; p < kc; p++) {
                int pa = ai + 6 * p;
                int pb = bi + 2 * L * p;
                FloatVector b0 = FloatVector.fromArray(F, b, pb);
                FloatVector b1 = FloatVector.fromArray(F, b, pb + L);
                FloatVector x = FloatVector.broadcast(F, a[pa]);
                c00 = x.fma(b0, c00);
                c01 = x.fma(b1, c01);
                x = FloatVector.broadcast(F, a[pa + 1]);
                c10 = x.fma(b0, c10);
                c11 = x.fma(b1, c11);
                x = FloatVector.broadcast(F, a[pa + 2]);
                c20 = x.fma(b0, c20);
                c21 = x.fma(b1, c21);
                x = FloatVector.broadcast(F, a[pa + 3]);
                c30 = x.fma(b0, c30);
                c31 = x.fma(b1, c31);
                x = FloatVector.broadcast(F, a[pa + 4]);
                c40 = x.fma(b0, c40);
                c41 = x.fma(b1, c41);
                x = FloatVector.broadcast(F, a[pa + 5]);
                c50 = x.fma(b0, c50);
                c51 = x.fma(b1, c51);
            }
            FloatVector al = FloatVector.broadcast(F, alpha);
            c00.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c01.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c10.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c11.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c20.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c21.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c30.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c31.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c40.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c41.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
            ci += ldc;
            c50.fma(al, FloatVector.fromArray(F, c, ci)).intoArray(c, ci);
            c51.fma(al, FloatVector.fromArray(F, c, ci + L)).intoArray(c, ci + L);
        }

        @Override
        float dot(float[] x, int xo, float[] y, int yo, int n) {
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            int i = 0;
            for (; i <= n - 4 * L; i += 4 * L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
                s1 = FloatVector.fromArray(F, x, xo + i + L).fma(FloatVector.fromArray(F, y, yo + i + L), s1);
                s2 = FloatVector.fromArray(F, x, xo + i + 2 * L).fma(FloatVector.fromArray(F, y, yo + i + 2 * L), s2);
                s3 = FloatVector.fromArray(F, x, xo + i + 3 * L).fma(FloatVector.fromArray(F, y, yo + i + 3 * L), s3);
            }
            for (; i <= n - L; i += L) {
                s0 = FloatVector.fromArray(F, x, xo + i).fma(FloatVector.fromArray(F, y, yo + i), s0);
            }
            FloatVector s = s0.add(s1).add(s2.add(s3));
            float sum = 0f;
            for (int lane = 0; lane < L; lane++) {
                sum += s.lane(lane);
            }
            for (; i < n; i++) {
                sum = Math.fma(x[xo + i], y[yo + i], sum);
            }
            return sum;
        }
    }
}
