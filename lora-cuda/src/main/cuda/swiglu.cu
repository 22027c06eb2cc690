// SwiGLU gate of the Llama MLP: h = silu(gate) ⊙ up, silu(g) = g·σ(g).
// Backward: dup += dh ⊙ silu(gate), dgate += dh ⊙ up ⊙ σ(g)·(1 + g·(1 − σ(g))).
// Launch: ceil(n/256) blocks of 256.
#include "common.cuh"

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

extern "C" __global__ void __launch_bounds__(256)
    swiglu_fwd(float* h, const float* gate, const float* up, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i];
    h[i] = g * sigmoidf(g) * up[i];
}

extern "C" __global__ void __launch_bounds__(256)
    swiglu_bwd(float* dgate, float* dup, const float* dh, const float* gate, const float* up, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i];
    float s = sigmoidf(g);
    float d = dh[i];
    dup[i] += d * g * s;
    dgate[i] += d * up[i] * s * (1.0f + g * (1.0f - s));
}
