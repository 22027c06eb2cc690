package dev.lora4j.backend;

import dev.lora4j.tensor.Storage;

/**
 * Plain-Java CPU kernels; the fallback when the Vector API is not enabled and the base class of
 * the Vector API backend, which replaces only the innermost loops.
 *
 * <p>{@link #gemm} is {@link PackedGemm}'s packed, cache-blocked product (shared with the Vector
 * API's) around a 4 x 4 register-blocked scalar {@link #microKernel}. Every element of C is
 * computed as {@code c = beta*c (or 0 when beta == 0); for each depth block in order: c += alpha *
 * s_block}, where {@code s_block} sums its products in increasing k. This order depends only on k,
 * so results are bit-identical whatever the thread split or scheduling (the few-row dot path sums
 * differently).
 */
public class ScalarBackend extends CpuBackend {

    /** Depth of a packed block: elements of k per pass over a C tile. */
    static final int KC = 512;
    /** Rows of op(A) packed at a time. */
    static final int MC = 192;
    /** Columns of op(B) packed at a time (rounded down to a multiple of the column unit). */
    static final int NC = 768;

    private static final int SCALAR_MR = 4;
    private static final int SCALAR_NR = 4;

    private final PackedGemm packed;

    public ScalarBackend() {
        this(SCALAR_MR, SCALAR_NR);
    }

    /** For subclasses whose {@link #microKernel} computes {@code mr x nr} tiles. */
    protected ScalarBackend(int mr, int nr) {
        this(mr, nr, KC, MC, NC);
    }

    /** With explicit cache blocking (for tuning experiments): depth, rows of A, columns of B. */
    ScalarBackend(int mr, int nr, int kc, int mc, int nc) {
        this.packed = new PackedGemm("scalar", mr, nr, kc, mc, nc) {
            @Override
            void kernel(int kc, float[] a, int ai, float[] b, int bi, float[] c, int ci, int ldc, float alpha) {
                microKernel(kc, a, ai, b, bi, c, ci, ldc, alpha);
            }

            @Override
            float dot(float[] x, int xo, float[] y, int yo, int n) {
                return ScalarBackend.this.dot(x, xo, y, yo, n);
            }

            @Override
            float accumulate(float c, float alpha, float sum) {
                return ScalarBackend.this.accumulate(c, alpha, sum);
            }
        };
    }

    @Override
    public String name() {
        return "scalar";
    }

    /** Rows of the micro-kernel's register tile. */
    public final int microTileRows() {
        return packed.mr;
    }

    /** Columns of the micro-kernel's register tile. */
    public final int microTileColumns() {
        return packed.nr;
    }

    @Override
    public String toString() {
        return name() + " backend (" + packed.mr + "x" + packed.nr + " micro-tiles)";
    }

    // ---------------------------------------------------------------- gemm

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                     Storage a, long aOffset, int lda,
                     Storage b, long bOffset, int ldb,
                     float beta, Storage c, long cOffset, int ldc) {
        packed.gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
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
