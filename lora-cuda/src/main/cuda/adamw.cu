// AdamW as torch.optim.AdamW (decoupled weight decay), per element at step t:
//   p ← p·decay (decay = 1 − lr·λ); m ← β₁m + c₁g; v ← β₂v + c₂g² (c = 1 − β, passed as rounded
//   from double as torch does); p ← p − stepSize · m / (√v / bias2Sqrt + ε)
// with stepSize = lr / (1 − β₁ᵗ) and bias2Sqrt = √(1 − β₂ᵗ) computed on the host in double; the
// denominator is formed in double and rounded once, as lora4j's CPU AdamW does.
// Launch: ceil(n/256) blocks of 256.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
    adamw(float* p, float* m, float* v, const float* g, long long n, float decay, float beta1, float beta2, float c1,
          float c2, float stepSize, double bias2Sqrt, double eps) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    float w = p[i] * decay;
    float mi = beta1 * m[i] + c1 * gi;
    float vi = beta2 * v[i] + c2 * gi * gi;
    float denom = (float)(sqrt((double)vi) / bias2Sqrt + eps);
    m[i] = mi;
    v[i] = vi;
    p[i] = w - stepSize * mi / denom;
}
