// The tiled F32 product shared by matmul_f32, the 4-bit products and the fused LoRA forward:
// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ s · U[M,R] · E(n, r)) (+ beta · C).
// One block computes a GEMM_BM × GEMM_BN tile of C with 256 threads, each owning a 4 × 4 grid of
// outputs strided by 16 (conflict-free shared reads); A and B pass through shared memory in
// slices of GEMM_BK along K. op(B) is read through a loader, so a 4-bit or BF16 weight is decoded
// into shared memory only and never exists in F32 in global memory.
#pragma once
#include "common.cuh"

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256

/** op(B)[k][n] of an F32 matrix: B stored [K, N], or [N, K] when trans. */
struct LoadF32 {
    const float* b;
    int ldb;
    int trans;
    __device__ __forceinline__ float operator()(int k, int n) const {
        return trans ? b[(long long)n * ldb + k] : b[(long long)k * ldb + n];
    }
};

/** op(B)[k][n] of a BF16 matrix, widened to F32. */
struct LoadBf16 {
    const bf16* b;
    int ldb;
    int trans;
    __device__ __forceinline__ float operator()(int k, int n) const {
        return __bfloat162float(trans ? b[(long long)n * ldb + k] : b[(long long)k * ldb + n]);
    }
};

/**
 * op(W)[k][n] of a bitsandbytes 4-bit matrix W with K·N elements: stored [N, K] when trans (the
 * layout of a weight, y = x·Wᵀ), else [K, N]. code points at the 16-value table in shared memory.
 */
struct Load4 {
    const unsigned char* packed;
    const float* absmax;
    const unsigned char* absmaxCodes;
    const float* nestedAbsmax;
    const float* nestedMap;
    const float* code;
    float offset;
    int blockShift;
    int nestedShift;
    int K;
    int N;
    int trans;
    __device__ __forceinline__ float operator()(int k, int n) const {
        long long i = trans ? (long long)n * K + k : (long long)k * N + n;
        long long b = i >> blockShift;
        float scale = absmaxCodes == nullptr
                          ? absmax[b]
                          : nestedMap[absmaxCodes[b]] * nestedAbsmax[b >> nestedShift] + offset;
        return code[quant_nibble(packed, i)] * scale;
    }
};

/**
 * The tile of C at block (blockIdx.y, blockIdx.x). With U non-null each output gains
 * s · Σ_r U[m·R + r] · E[n·eStrideN + r·eStrideR] (the LoRA term). beta == 0 overwrites C, ignoring
 * its contents (even NaN). bKFastest: walk op(B) tiles with k fastest (B stored [N, K]).
 */
template <class LoadB>
__device__ __forceinline__ void gemm_tile(float* __restrict__ C, int ldc, const float* __restrict__ A, int lda,
                                          int transA, LoadB loadB, int bKFastest, int M, int N, int K, float alpha,
                                          float beta, const float* __restrict__ U, const float* __restrict__ E,
                                          long long eStrideN, long long eStrideR, int R, float s) {
    __shared__ float As[GEMM_BK][GEMM_BM + 4];
    __shared__ float Bs[GEMM_BK][GEMM_BN + 4];
    int tid = threadIdx.x;
    int tx = tid % 16;
    int ty = tid / 16;
    int m0 = blockIdx.y * GEMM_BM;
    int n0 = blockIdx.x * GEMM_BN;
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        for (int e = tid; e < GEMM_BM * GEMM_BK; e += GEMM_THREADS) {
            int mm = transA ? e % GEMM_BM : e / GEMM_BK;
            int kk = transA ? e / GEMM_BM : e % GEMM_BK;
            int gm = m0 + mm;
            int gk = k0 + kk;
            float v = 0.0f;
            if (gm < M && gk < K) v = transA ? A[(long long)gk * lda + gm] : A[(long long)gm * lda + gk];
            As[kk][mm] = v;
        }
        for (int e = tid; e < GEMM_BN * GEMM_BK; e += GEMM_THREADS) {
            int nn = bKFastest ? e / GEMM_BK : e % GEMM_BN;
            int kk = bKFastest ? e % GEMM_BK : e / GEMM_BN;
            int gn = n0 + nn;
            int gk = k0 + kk;
            Bs[kk][nn] = (gn < N && gk < K) ? loadB(gk, gn) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; kk++) {
            float a[4];
            float b[4];
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        int gm = m0 + ty + 16 * i;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int gn = n0 + tx + 16 * j;
            if (gn >= N) continue;
            float v = alpha * acc[i][j];
            if (U != nullptr) {
                float l = 0.0f;
                for (int r = 0; r < R; r++) l += U[(long long)gm * R + r] * E[gn * eStrideN + r * eStrideR];
                v += s * l;
            }
            float* c = C + (long long)gm * ldc + gn;
            *c = beta == 0.0f ? v : v + beta * *c;
        }
    }
}
