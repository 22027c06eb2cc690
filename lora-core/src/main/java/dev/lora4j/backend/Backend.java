package dev.lora4j.backend;

import dev.lora4j.tensor.Storage;

/**
 * The compute SPI between tensors and hardware. Ops in {@code dev.lora4j.autograd} call these
 * kernels; the CPU backends ({@link ScalarBackend}, and the Vector API backend when the
 * {@code jdk.incubator.vector} module is present) implement them over heap arrays, and a device
 * backend (lora-cuda) plugs in through {@link BackendProvider} and {@link java.util.ServiceLoader}.
 *
 * <p>Dimension letters used across the code base: B batch, T time (sequence), C channels
 * (hidden size), V vocabulary, H query heads, G key/value heads (grouped-query), D head size,
 * R LoRA rank, M/N/K the sizes of a matrix product.
 */
public interface Backend {

    /** A short name for logs: "scalar", "vector", "cuda". */
    String name();

    /**
     * General matrix product, BLAS semantics on row-major storage:
     * {@code C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]}.
     * op(A) is A stored [m, k] with row stride {@code lda}, or with {@code transA} A stored
     * [k, m]; likewise op(B) is B stored [k, n] or, with {@code transB}, [n, k] (the usual
     * layout of a weight: y = x·Wᵀ is {@code gemm(false, true, ...)} with B = W).
     *
     * <p>On CPU backends A and C are heap F32 ({@link dev.lora4j.tensor.FloatStorage}); B may be
     * any storage (BF16, F16, memory-mapped, 4-bit) and is widened panel by panel, so that a
     * frozen weight never exists in F32 as a whole. With beta == 0, C is overwritten (its old
     * contents, even NaN, are ignored).
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
              Storage a, long aOffset, int lda,
              Storage b, long bOffset, int ldb,
              float beta, Storage c, long cOffset, int ldc);

    /** sum_i x[xOff+i] * y[yOff+i]. */
    float dot(float[] x, int xOffset, float[] y, int yOffset, int n);

    /** y[yOff+i] += alpha * x[xOff+i]. */
    void axpy(float alpha, float[] x, int xOffset, float[] y, int yOffset, int n);

    /** sum_i x[off+i]^2, accumulated in double (used for norms and gradient clipping). */
    double sumOfSquares(float[] x, int offset, int n);
}
