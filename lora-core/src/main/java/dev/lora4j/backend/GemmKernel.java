package dev.lora4j.backend;

import dev.lora4j.tensor.Storage;

/**
 * A matrix-product implementation that a backend delegates {@link Backend#gemm} to, with exactly
 * that contract (BLAS semantics on row-major storage; see there).
 */
interface GemmKernel {
    void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
              Storage a, long aOffset, int lda,
              Storage b, long bOffset, int ldb,
              float beta, Storage c, long cOffset, int ldc);
}
