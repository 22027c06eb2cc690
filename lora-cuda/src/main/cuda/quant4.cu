// bitsandbytes 4-bit weights (NF4 or FP4; the 16-value code table is an argument), blockwise
// absmax scaling, optionally double-quantized: element i decodes to code[q_i] · absmax[i >> blockShift],
// with absmax[b] = nestedMap[absmaxCodes[b]] · nestedAbsmax[b >> nestedShift] + offset when
// absmaxCodes is non-null (else absmax is the F32 array and the nested arguments are unused).
// Two codes per byte, element 2k in the high nibble.
#include "gemm_tile.cuh"

/** out[i] = decoded element i, i < n. Launch: ceil(n / 512) blocks of 256 threads (two elements each). */
extern "C" __global__ void __launch_bounds__(256)
    dequant4_f32(float* out, const unsigned char* packed, const float* absmax, const unsigned char* absmaxCodes,
                 const float* nestedAbsmax, const float* nestedMap, float offset, const float* code, long long n,
                 int blockShift, int nestedShift) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // byte index
    long long i = 2 * p;
    if (i >= n) return;
    unsigned char byte = packed[p];
    float scale = quant_block_scale(i >> blockShift, absmax, absmaxCodes, nestedAbsmax, nestedMap, offset, 1 << nestedShift);
    out[i] = table[byte >> 4] * scale;
    if (i + 1 < n) out[i + 1] = table[byte & 0xF] * scale;  // blocksizes are even: same block
}

/** As dequant4_f32 with BF16 output (rounded to nearest even), for the tensor-core product. */
extern "C" __global__ void __launch_bounds__(256)
    dequant4_bf16(bf16* out, const unsigned char* packed, const float* absmax, const unsigned char* absmaxCodes,
                  const float* nestedAbsmax, const float* nestedMap, float offset, const float* code, long long n,
                  int blockShift, int nestedShift) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long i = 2 * p;
    if (i >= n) return;
    unsigned char byte = packed[p];
    float scale = quant_block_scale(i >> blockShift, absmax, absmaxCodes, nestedAbsmax, nestedMap, offset, 1 << nestedShift);
    out[i] = __float2bfloat16(table[byte >> 4] * scale);
    if (i + 1 < n) out[i + 1] = __float2bfloat16(table[byte & 0xF] * scale);
}

/**
 * Fused 4-bit product C[M,N] = alpha · A[M,K] · op(W) + beta · C, op(W) = Wᵀ with W [N,K] (transW,
 * the forward y = x·Wᵀ) or W [K,N] (the input gradient dx = dy·W uses transW = 0 with M, N, K =
 * rows, in-features, out-features). W tiles are decoded into shared memory only.
 * Launch: grid (ceil(N/64), ceil(M/64)), 256 threads.
 */
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    gemm4_f32(float* C, const float* A, const unsigned char* packed, const float* absmax,
              const unsigned char* absmaxCodes, const float* nestedAbsmax, const float* nestedMap, float offset,
              const float* code, int M, int N, int K, int transW, float alpha, float beta, int blockShift,
              int nestedShift) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    Load4 w{packed, absmax, absmaxCodes, nestedAbsmax, nestedMap, table, offset, blockShift, nestedShift, K, N, transW};
    gemm_tile(C, N, A, K, 0, w, transW, M, N, K, alpha, beta, nullptr, nullptr, 0, 0, 0, 0.0f);
}
