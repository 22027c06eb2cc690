// Element-wise helpers of a training step: residual adds, gradient zeroing and reproducible
// pseudo-random fills (for benchmark models with random weights; a hash of (seed, index), so the
// values do not depend on the launch geometry). Launch: ceil(n/256) blocks of 256.
#include "common.cuh"

/** out = a + b (out may alias a or b). */
extern "C" __global__ void __launch_bounds__(256) add_f32(float* out, const float* a, const float* b, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

/** out = value. */
extern "C" __global__ void __launch_bounds__(256) fill_f32(float* out, float value, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = value;
}

/** A 32-bit hash of (seed, i) (splitmix64 finalizer). */
__device__ __forceinline__ unsigned int hash32(unsigned long long seed, long long i) {
    unsigned long long z = seed + 0x9e3779b97f4a7c15ull * (unsigned long long)(i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (unsigned int)((z ^ (z >> 31)) >> 32);
}

/** out[i] uniform in [-scale, scale). */
extern "C" __global__ void __launch_bounds__(256)
    random_f32(float* out, float scale, long long seed, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = scale * ((float)(hash32((unsigned long long)seed, i) >> 8) * (2.0f / 16777216.0f) - 1.0f);
}

/** As random_f32, rounded to BF16. */
extern "C" __global__ void __launch_bounds__(256)
    random_bf16(bf16* out, float scale, long long seed, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16(scale * ((float)(hash32((unsigned long long)seed, i) >> 8) * (2.0f / 16777216.0f) - 1.0f));
}

/** out[i] uniform bytes (random 4-bit codes, 8-bit absmax codes). */
extern "C" __global__ void __launch_bounds__(256)
    random_u8(unsigned char* out, long long seed, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (unsigned char)(hash32((unsigned long long)seed, i) >> 24);
}
