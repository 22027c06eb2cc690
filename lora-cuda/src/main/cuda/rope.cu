// Rotary position embedding, Hugging Face rotate-half layout: for head size D, element i < D/2
// pairs with i + D/2; out = x·cos θ + rotate_half(x)·sin θ, θ = pos · inv_freq[i], with cos/sin
// tables [positions, D/2]. Backward is the rotation by −θ: the same kernel with sign = −1.
#include "common.cuh"

/**
 * x, out [B, T, H, D] (out may alias x); token t has position pos0 + t.
 * Launch: ceil(B·T·H·D/2 / 256) blocks of 256, one thread per pair.
 */
extern "C" __global__ void __launch_bounds__(256)
    rope(float* out, const float* x, const float* cosTable, const float* sinTable, int B, int T, int H, int D, int pos0,
         float sign) {
    int half = D / 2;
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long pairs = (long long)B * T * H * half;
    if (p >= pairs) return;
    int i = (int)(p % half);
    long long rowHead = p / half;  // (b·T + t)·H + h
    int t = (int)((rowHead / H) % T);
    int pos = pos0 + t;
    float c = cosTable[(long long)pos * half + i];
    float s = sign * sinTable[(long long)pos * half + i];
    long long o = rowHead * D;
    float x1 = x[o + i];
    float x2 = x[o + i + half];
    out[o + i] = x1 * c - x2 * s;
    out[o + i + half] = x2 * c + x1 * s;
}
