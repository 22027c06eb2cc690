package dev.lora4j.backend;

import java.util.Arrays;

/**
 * The packing steps shared by the two blocked matrix products, {@link ScalarBackend#gemm} and the
 * Vector API's {@code VectorGemm}: op(A) into {@code width}-tall micro-panels, op(B) into
 * {@code nr}-wide micro-panels (each stored depth step by depth step, zero-padded), and the scaling
 * of C by beta. Only the micro-kernels and the cache blocking differ between the two.
 */
final class GemmPacking {
    private static final int TRANSPOSE_BLOCK = 16;

    private GemmPacking() {
    }

    /** Widens elements of a non-heap B into a float buffer; one instance per thread and product. */
    @FunctionalInterface
    interface Widener {
        void widen(long start, int count, float[] dst, int dstOffset);
    }

    /**
     * Packs op(A)[ic:ic+mc, pc:pc+kc] into panels of {@code width} rows, each stored depth step by
     * depth step ({@code width} values per step), zero-padding the last panel. {@code starts} holds
     * at least {@code width} ints of scratch.
     */
    static void packA(float[] a, int aOffset, int lda, boolean transA, int[] starts, float[] dst, int ic, int mc,
                      int pc, int kc, int width) {
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

    /**
     * op(B) = B stored [k, n], columns [jc, jc+nc) and depth [pc, pc+kc): {@code nr}-wide runs of
     * each row. B is read in place when {@code bHeap} is not null, else each row segment is widened
     * into {@code row} (at least nc floats) first.
     */
    static void packB(float[] bHeap, Widener widener, long bOffset, int ldb, float[] row, float[] dst, int pc,
                      int kc, int jc, int nc, int nr) {
        int fullPanels = nc / nr;
        int rest = nc - fullPanels * nr;
        float[] src = bHeap == null ? row : bHeap;
        for (int p = 0; p < kc; p++) {
            long start = bOffset + (long) (pc + p) * ldb + jc;
            int rowBase = (int) start;
            if (bHeap == null) {
                widener.widen(start, nc, row, 0);
                rowBase = 0;
            }
            int d = p * nr;
            for (int q = 0; q < fullPanels; q++, d += nr * kc) {
                System.arraycopy(src, rowBase + q * nr, dst, d, nr);
            }
            if (rest > 0) {
                System.arraycopy(src, rowBase + fullPanels * nr, dst, d, rest);
                Arrays.fill(dst, d + rest, d + nr, 0f);
            }
        }
    }

    /**
     * op(B) = Bᵀ with B stored [n, k] (a weight in y = x·Wᵀ): a micro-panel is the transpose of
     * {@code nr} row segments of B, read in place when {@code bHeap} is not null, else widened into
     * {@code stage} (at least nr·kc floats) first. {@code starts} holds at least nr ints of scratch.
     */
    static void packBTransposed(float[] bHeap, Widener widener, long bOffset, int ldb, float[] stage, int[] starts,
                                float[] dst, int pc, int kc, int jc, int nc, int nr) {
        float[] src = bHeap == null ? stage : bHeap;
        for (int jr = 0; jr < nc; jr += nr) {
            int cols = Math.min(nr, nc - jr);
            for (int j = 0; j < cols; j++) {
                long start = bOffset + (long) (jc + jr + j) * ldb + pc;
                if (bHeap == null) {
                    widener.widen(start, kc, stage, j * kc);
                    starts[j] = j * kc;
                } else {
                    starts[j] = (int) start;
                }
            }
            transposeRows(src, starts, cols, kc, dst, jr * kc, nr);
        }
    }

    /**
     * {@code dst[d + p*width + r] = src[starts[r] + p]} for {@code r < rows, p < kc}, zero for
     * {@code rows <= r < width}. Done in 16 x 16 blocks, so that the 16 destination lines of a block
     * stay in L1 while each source line is consumed at once: source rows of a weight are usually a
     * multiple of 4 KiB apart and would evict each other from the same L1 set if read in parallel.
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

    /** C[i0:i1, j0:j1] *= beta, or = 0 when beta is 0 (so that NaN or infinity in C is dropped). */
    static void scale(float[] c, int cOffset, int ldc, int i0, int i1, int j0, int j1, float beta) {
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

    static int ceilDiv(int x, int y) {
        return (x + y - 1) / y;
    }
}
