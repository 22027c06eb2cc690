// Shared helpers of the lora4j kernels. Compiled by nvcc for the device, or by g++ against
// src/test/cuda-host/cuda_host.h (LORA_CUDA_HOST) for the host emulation used in tests.
// Conventions: outputs first, then inputs, then sizes; gradients are named d*; "bwd" kernels
// accumulate into their gradients (+=) unless their comment says otherwise; all matrices row-major.
#pragma once

#ifdef LORA_CUDA_HOST
#include "cuda_host.h"
#else
#include <cuda_bf16.h>
#include <mma.h>
#endif

typedef __nv_bfloat16 bf16;

/** Sum over the 32 lanes of a warp; every lane gets the total. */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/**
 * Sum over a block whose size is a multiple of 32 (at most 1024); every thread gets the total.
 * scratch holds 32 floats of shared memory; the call starts and ends with a barrier, so it can be
 * used twice in a row with the same scratch.
 */
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % 32;
    int warp = threadIdx.x / 32;
    int warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(t);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x % 32;
    int warp = threadIdx.x / 32;
    int warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(t);
}

/**
 * The scale (absmax) of 4-bit block b in the bitsandbytes layout: the F32 absmax, or with double
 * quantization map[codes[b]] · nested[b / nestedBlocksize] + offset.
 */
__device__ __forceinline__ float quant_block_scale(long long b, const float* absmax, const unsigned char* absmaxCodes,
                                                   const float* nestedAbsmax, const float* nestedMap, float offset,
                                                   int nestedBlocksize) {
    if (absmaxCodes == nullptr) return absmax[b];
    return nestedMap[absmaxCodes[b]] * nestedAbsmax[b / nestedBlocksize] + offset;
}

/** The 4-bit code of element i: element 2k sits in the high nibble of byte k. */
__device__ __forceinline__ int quant_nibble(const unsigned char* packed, long long i) {
    unsigned char byte = packed[i >> 1];
    return (i & 1) ? (byte & 0xF) : (byte >> 4);
}
