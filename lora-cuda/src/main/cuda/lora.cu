// The fused LoRA linear layer: y = x·W₀ᵀ + s·(x·Aᵀ)·Bᵀ with x [M,K], frozen W₀ [N,K] in BF16 or
// bitsandbytes 4-bit, A [R,K], B [N,R], s = alpha/r. The caller first forms u = x·Aᵀ [M,R]
// (matmul_f32, transB), then one of these kernels computes the base product tile by tile and adds
// s·u·Bᵀ in its epilogue, so y is written once and W₀ is decoded in shared memory only.
// Backward (no W₀ gradient), with v = dy·B [M,R] (matmul_f32):
//   dx += dy·W₀ + s·v·A    (these kernels with transW = 0, U = v, E = A: e(n, r) = A[r·K + n])
//   dB += s·dyᵀ·u,  dA += s·vᵀ·x   (matmul_f32 with transA)
// Launch: grid (ceil(N/64), ceil(M/64)), 256 threads.
#include "gemm_tile.cuh"

/**
 * C[M,N] = op(W)·… + s·Σ_r U[m,r]·E[n·eStrideN + r·eStrideR] + beta·C, W BF16: forward with
 * transW = 1 (W [N,K], E = B, strides R and 1); input gradient with transW = 0 (W [K,N] seen as
 * W₀ [out, in], E = A, strides 1 and N).
 */
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    lora_bf16(float* C, const float* X, const bf16* W, const float* U, const float* E, int M, int N, int K, int R,
              int transW, long long eStrideN, long long eStrideR, float s, float beta) {
    gemm_tile(C, N, X, K, 0, LoadBf16{W, transW ? K : N, transW}, transW, M, N, K, 1.0f, beta, U, E, eStrideN,
              eStrideR, R, s);
}

/** As lora_bf16 with a 4-bit W (arguments as gemm4_f32). */
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    lora_4bit(float* C, const float* X, const unsigned char* packed, const float* absmax,
              const unsigned char* absmaxCodes, const float* nestedAbsmax, const float* nestedMap, float offset,
              const float* code, int blockShift, int nestedShift, const float* U, const float* E, int M, int N, int K,
              int R, int transW, long long eStrideN, long long eStrideR, float s, float beta) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    Load4 w{packed, absmax, absmaxCodes, nestedAbsmax, nestedMap, table, offset, blockShift, nestedShift, K, N, transW};
    gemm_tile(C, N, X, K, 0, w, transW, M, N, K, 1.0f, beta, U, E, eStrideN, eStrideR, R, s);
}
