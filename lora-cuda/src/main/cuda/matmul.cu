// Matrix products. BLAS semantics on row-major storage, as Backend.gemm:
// C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, op(A) = A [M,K] or (transA) A stored [K,M],
// op(B) = B [K,N] or (transB) B stored [N,K]. Launch: grid (ceil(N/64), ceil(M/64)), 256 threads.
#include "gemm_tile.cuh"

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    matmul_f32(float* C, const float* A, const float* B, int M, int N, int K, int lda, int ldb, int ldc, int transA,
               int transB, float alpha, float beta) {
    gemm_tile(C, ldc, A, lda, transA, LoadF32{B, ldb, transB}, transB, M, N, K, alpha, beta, nullptr, nullptr, 0, 0,
              0, 0.0f);
}

// BF16 operands, F32 accumulation on tensor cores (wmma 16×16×16, sm_80+). One block computes a
// 64 × 64 tile of C with 4 warps, each a 32 × 32 quarter as 2 × 2 fragments; the K slice is 16.
// Tiles pass through shared memory as BF16 (A as [m][k], B as [n][k], i.e. a column-major op(B)),
// the accumulators leave through a shared F32 tile so that edges and beta are handled per element.
// Launch: grid (ceil(N/64), ceil(M/64)), 128 threads.
#define TC_TILE 64
#define TC_BK 16
#define TC_LD (TC_BK + 8)
#define TC_THREADS 128

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    matmul_bf16_tc(float* C, const bf16* A, const bf16* B, int M, int N, int K, int lda, int ldb, int ldc, int transA,
                   int transB, float alpha, float beta) {
    using namespace nvcuda;
    __shared__ __align__(32) bf16 As[TC_TILE * TC_LD];
    __shared__ __align__(32) bf16 Bs[TC_TILE * TC_LD];
    __shared__ __align__(32) float Cs[TC_TILE * (TC_TILE + 4)];
    int tid = threadIdx.x;
    int warp = tid / 32;
    int wm = (warp / 2) * 32;
    int wn = (warp % 2) * 32;
    int m0 = blockIdx.y * TC_TILE;
    int n0 = blockIdx.x * TC_TILE;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
    bf16 zero = __float2bfloat16(0.0f);

    for (int k0 = 0; k0 < K; k0 += TC_BK) {
        for (int e = tid; e < TC_TILE * TC_BK; e += TC_THREADS) {
            int mm = transA ? e % TC_TILE : e / TC_BK;
            int kk = transA ? e / TC_TILE : e % TC_BK;
            int gm = m0 + mm;
            int gk = k0 + kk;
            As[mm * TC_LD + kk] = (gm < M && gk < K) ? (transA ? A[(long long)gk * lda + gm] : A[(long long)gm * lda + gk]) : zero;
            int nn = transB ? e / TC_BK : e % TC_TILE;
            int kb = transB ? e % TC_BK : e / TC_TILE;
            int gn = n0 + nn;
            int gkb = k0 + kb;
            Bs[nn * TC_LD + kb] = (gn < N && gkb < K) ? (transB ? B[(long long)gn * ldb + gkb] : B[(long long)gkb * ldb + gn]) : zero;
        }
        __syncthreads();
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a[2];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b[2];
        for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], As + (wm + 16 * i) * TC_LD, TC_LD);
        for (int j = 0; j < 2; j++) wmma::load_matrix_sync(b[j], Bs + (wn + 16 * j) * TC_LD, TC_LD);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        __syncthreads();
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm + 16 * i) * (TC_TILE + 4) + wn + 16 * j, acc[i][j], TC_TILE + 4,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int e = tid; e < TC_TILE * TC_TILE; e += TC_THREADS) {
        int gm = m0 + e / TC_TILE;
        int gn = n0 + e % TC_TILE;
        if (gm < M && gn < N) {
            float v = alpha * Cs[(e / TC_TILE) * (TC_TILE + 4) + e % TC_TILE];
            float* c = C + (long long)gm * ldc + gn;
            *c = beta == 0.0f ? v : v + beta * *c;
        }
    }
}
