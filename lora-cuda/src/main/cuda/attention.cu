// Causal scaled-dot-product attention with grouped-query heads, FlashAttention-2 style: tiles of
// AT_BQ queries × AT_BK keys in shared memory, online softmax, the T×T matrix never stored.
// q, out [B, T, H, D]; k, v [B, S, G, D] with S = queryOffset + T; query head h reads kv head
// h / (H/G); query i sees keys j ≤ queryOffset + i, and with a sliding window W > 0 only keys
// j > queryOffset + i − W, and with keyLengths (padding) only keys j < keyLengths[b]; a row that
// sees no key gets out = 0 and lse = −∞. With softCap c > 0 the scores are c·tanh(s/c) (Gemma 2),
// and dS goes through its derivative 1 − (S/c)². lse [B, H, T] is saved for backward, which
// recomputes P = exp(S·scale − lse): dV += Pᵀ·dO, dS = P ⊙ (dO·Vᵀ − Δ), Δ_i = dO_i·O_i,
// dQ += scale·dS·K, dK += scale·dSᵀ·Q. Head size D ≤ AT_DMAX. 128 threads: thread t owns row
// t / 8 of a tile and head-dimension entries d ≡ t mod 8.
#include "common.cuh"

#define AT_BQ 16
#define AT_BK 16
#define AT_DMAX 128
#define AT_THREADS 128
#define AT_PER (AT_DMAX / 8)

__device__ __forceinline__ void at_load(float (*dst)[AT_DMAX + 1], const float* src, int first, int limit,
                                        long long rowStride, int D) {
    for (int e = threadIdx.x; e < AT_BQ * D; e += AT_THREADS) {
        int r = e / D;
        int d = e % D;
        int i = first + r;
        dst[r][d] = i < limit ? src[(long long)i * rowStride + d] : 0.0f;
    }
}

__device__ __forceinline__ float at_dot(const float* a, const float* b, int D) {
    float s = 0.0f;
    for (int d = 0; d < D; d++) s += a[d] * b[d];
    return s;
}

/** Whether query i (of T) sees key j (of S) in batch row b under the mask. */
__device__ __forceinline__ bool at_visible(int i, int j, int b, int T, int S, int queryOffset, int window,
                                           const int* keyLengths) {
    return i < T && j < S && j <= queryOffset + i && (window <= 0 || j > queryOffset + i - window) &&
           (keyLengths == nullptr || j < keyLengths[b]);
}

/** The (soft-capped) score of a raw scaled dot product. */
__device__ __forceinline__ float at_cap(float s, float softCap) {
    return softCap > 0.0f ? softCap * tanhf(s / softCap) : s;
}

/** Launch: grid (ceil(T/16), H, B), 128 threads. */
extern "C" __global__ void __launch_bounds__(AT_THREADS)
    attn_fwd(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int H, int G, int D,
             int queryOffset, float scale, int window, const int* keyLengths, float softCap) {
    __shared__ float Qs[AT_BQ][AT_DMAX + 1];
    __shared__ float Ks[AT_BK][AT_DMAX + 1];
    __shared__ float Vs[AT_BK][AT_DMAX + 1];
    __shared__ float Ss[AT_BQ][AT_BK + 1];
    int b = blockIdx.z;
    int h = blockIdx.y;
    int g = h / (H / G);
    int i0 = blockIdx.x * AT_BQ;
    int S = queryOffset + T;
    int r = threadIdx.x / 8;
    int c8 = threadIdx.x % 8;
    int i = i0 + r;
    at_load(Qs, q + ((long long)b * T + i0) * H * D + (long long)h * D, 0, T - i0, (long long)H * D, D);
    float m = -INFINITY;
    float l = 0.0f;
    float o[AT_PER];
    #pragma unroll
    for (int j = 0; j < AT_PER; j++) o[j] = 0.0f;
    int kmax = queryOffset + min(T, i0 + AT_BQ) - 1;
    for (int j0 = 0; j0 <= kmax; j0 += AT_BK) {
        __syncthreads();
        long long kvBase = ((long long)b * S + j0) * G * D + (long long)g * D;
        at_load(Ks, k + kvBase, 0, S - j0, (long long)G * D, D);
        at_load(Vs, v + kvBase, 0, S - j0, (long long)G * D, D);
        __syncthreads();
        for (int cc = c8; cc < AT_BK; cc += 8) {
            int j = j0 + cc;
            bool visible = at_visible(i, j, b, T, S, queryOffset, window, keyLengths);
            Ss[r][cc] = visible ? at_cap(at_dot(Qs[r], Ks[cc], D) * scale, softCap) : -INFINITY;
        }
        __syncthreads();
        float rowMax = -INFINITY;
        for (int c = 0; c < AT_BK; c++) rowMax = fmaxf(rowMax, Ss[r][c]);
        float mNew = fmaxf(m, rowMax);
        if (mNew == -INFINITY) continue;  // nothing visible yet (padding rows)
        float alpha = expf(m - mNew);
        float p[AT_BK];
        float ps = 0.0f;
        for (int c = 0; c < AT_BK; c++) {
            p[c] = expf(Ss[r][c] - mNew);
            ps += p[c];
        }
        l = l * alpha + ps;
        #pragma unroll
        for (int j = 0; j < AT_PER; j++) {
            int d = c8 + 8 * j;
            if (d >= D) continue;
            float acc = o[j] * alpha;
            for (int c = 0; c < AT_BK; c++) acc += p[c] * Vs[c][d];
            o[j] = acc;
        }
        m = mNew;
    }
    if (i < T) {
        long long base = (((long long)b * T + i) * H + h) * D;
        #pragma unroll
        for (int j = 0; j < AT_PER; j++) {
            int d = c8 + 8 * j;
            if (d < D) out[base + d] = l > 0.0f ? o[j] / l : 0.0f;
        }
        if (c8 == 0) lse[((long long)b * H + h) * T + i] = l > 0.0f ? m + logf(l) : -INFINITY;
    }
}

/** delta[b, h, i] = Σ_d dO·O. One warp per (b, i, h) row: ceil(B·T·H / 8) blocks of 256. */
extern "C" __global__ void __launch_bounds__(256)
    attn_bwd_delta(float* delta, const float* out, const float* dout, int B, int T, int H, int D) {
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;  // (b·T + i)·H + h
    int lane = threadIdx.x % 32;
    bool live = row < (long long)B * T * H;
    float s = 0.0f;
    if (live)
        for (int d = lane; d < D; d += 32) s += out[row * D + d] * dout[row * D + d];
    s = warp_sum(s);
    if (live && lane == 0) {
        int h = (int)(row % H);
        long long bt = row / H;
        int i = (int)(bt % T);
        int b = (int)(bt / T);
        delta[((long long)b * H + h) * T + i] = s;
    }
}

/** P and dS of query row r and keys c8, c8 + 8 of the current tiles. */
__device__ __forceinline__ void at_probs(float (*Ps)[AT_BK + 1], float (*dSs)[AT_BK + 1], float (*Qs)[AT_DMAX + 1],
                                         float (*dOs)[AT_DMAX + 1], float (*Ks)[AT_DMAX + 1],
                                         float (*Vs)[AT_DMAX + 1], const float* Ls, const float* Dl, int i0, int j0,
                                         int T, int S, int D, int queryOffset, float scale, int b, int window,
                                         const int* keyLengths, float softCap) {
    int r = threadIdx.x / 8;
    int c8 = threadIdx.x % 8;
    int i = i0 + r;
    for (int cc = c8; cc < AT_BK; cc += 8) {
        int j = j0 + cc;
        float p = 0.0f;
        float ds = 0.0f;
        if (at_visible(i, j, b, T, S, queryOffset, window, keyLengths)) {
            float sc = at_cap(at_dot(Qs[r], Ks[cc], D) * scale, softCap);
            p = expf(sc - Ls[r]);
            ds = p * (at_dot(dOs[r], Vs[cc], D) - Dl[r]);
            if (softCap > 0.0f) {
                float t = sc / softCap;
                ds *= 1.0f - t * t;
            }
        }
        Ps[r][cc] = p;
        dSs[r][cc] = ds;
    }
}

/** dq += scale · dS·K. Launch: grid (ceil(T/16), H, B), 128 threads. */
extern "C" __global__ void __launch_bounds__(AT_THREADS)
    attn_bwd_dq(float* dq, const float* q, const float* k, const float* v, const float* dout, const float* lse,
                const float* delta, int B, int T, int H, int G, int D, int queryOffset, float scale, int window,
                const int* keyLengths, float softCap) {
    __shared__ float Qs[AT_BQ][AT_DMAX + 1];
    __shared__ float dOs[AT_BQ][AT_DMAX + 1];
    __shared__ float Ks[AT_BK][AT_DMAX + 1];
    __shared__ float Vs[AT_BK][AT_DMAX + 1];
    __shared__ float Ps[AT_BQ][AT_BK + 1];
    __shared__ float dSs[AT_BQ][AT_BK + 1];
    __shared__ float Ls[AT_BQ];
    __shared__ float Dl[AT_BQ];
    int b = blockIdx.z;
    int h = blockIdx.y;
    int g = h / (H / G);
    int i0 = blockIdx.x * AT_BQ;
    int S = queryOffset + T;
    int r = threadIdx.x / 8;
    int c8 = threadIdx.x % 8;
    long long qBase = ((long long)b * T + i0) * H * D + (long long)h * D;
    at_load(Qs, q + qBase, 0, T - i0, (long long)H * D, D);
    at_load(dOs, dout + qBase, 0, T - i0, (long long)H * D, D);
    if (threadIdx.x < AT_BQ) {
        int i = i0 + threadIdx.x;
        Ls[threadIdx.x] = i < T ? lse[((long long)b * H + h) * T + i] : 0.0f;
        Dl[threadIdx.x] = i < T ? delta[((long long)b * H + h) * T + i] : 0.0f;
    }
    float acc[AT_PER];
    #pragma unroll
    for (int j = 0; j < AT_PER; j++) acc[j] = 0.0f;
    int kmax = queryOffset + min(T, i0 + AT_BQ) - 1;
    for (int j0 = 0; j0 <= kmax; j0 += AT_BK) {
        __syncthreads();
        long long kvBase = ((long long)b * S + j0) * G * D + (long long)g * D;
        at_load(Ks, k + kvBase, 0, S - j0, (long long)G * D, D);
        at_load(Vs, v + kvBase, 0, S - j0, (long long)G * D, D);
        __syncthreads();
        at_probs(Ps, dSs, Qs, dOs, Ks, Vs, Ls, Dl, i0, j0, T, S, D, queryOffset, scale, b, window, keyLengths,
                     softCap);
        __syncthreads();
        #pragma unroll
        for (int j = 0; j < AT_PER; j++) {
            int d = c8 + 8 * j;
            if (d >= D) continue;
            float s = 0.0f;
            for (int c = 0; c < AT_BK; c++) s += dSs[r][c] * Ks[c][d];
            acc[j] += scale * s;
        }
    }
    int i = i0 + r;
    if (i < T) {
        long long base = (((long long)b * T + i) * H + h) * D;
        #pragma unroll
        for (int j = 0; j < AT_PER; j++) {
            int d = c8 + 8 * j;
            if (d < D) dq[base + d] += acc[j];
        }
    }
}

/** dk += scale · dSᵀ·Q and dv += Pᵀ·dO over all query heads of kv head g (no atomics).
 *  Launch: grid (ceil(S/16), G, B), 128 threads. */
extern "C" __global__ void __launch_bounds__(AT_THREADS)
    attn_bwd_dkdv(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
                  const float* lse, const float* delta, int B, int T, int H, int G, int D, int queryOffset,
                  float scale, int window, const int* keyLengths, float softCap) {
    __shared__ float Qs[AT_BQ][AT_DMAX + 1];
    __shared__ float dOs[AT_BQ][AT_DMAX + 1];
    __shared__ float Ks[AT_BK][AT_DMAX + 1];
    __shared__ float Vs[AT_BK][AT_DMAX + 1];
    __shared__ float Ps[AT_BQ][AT_BK + 1];
    __shared__ float dSs[AT_BQ][AT_BK + 1];
    __shared__ float Ls[AT_BQ];
    __shared__ float Dl[AT_BQ];
    int b = blockIdx.z;
    int g = blockIdx.y;
    int j0 = blockIdx.x * AT_BK;
    int S = queryOffset + T;
    int group = H / G;
    int r = threadIdx.x / 8;  // key row of this thread's dk/dv entries
    int c8 = threadIdx.x % 8;
    long long kvBase = ((long long)b * S + j0) * G * D + (long long)g * D;
    at_load(Ks, k + kvBase, 0, S - j0, (long long)G * D, D);
    at_load(Vs, v + kvBase, 0, S - j0, (long long)G * D, D);
    float accK[AT_PER];
    float accV[AT_PER];
    #pragma unroll
    for (int j = 0; j < AT_PER; j++) {
        accK[j] = 0.0f;
        accV[j] = 0.0f;
    }
    int firstQuery = max(0, j0 - queryOffset);  // earlier queries cannot see these keys
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int i0 = (firstQuery / AT_BQ) * AT_BQ; i0 < T; i0 += AT_BQ) {
            __syncthreads();
            long long qBase = ((long long)b * T + i0) * H * D + (long long)h * D;
            at_load(Qs, q + qBase, 0, T - i0, (long long)H * D, D);
            at_load(dOs, dout + qBase, 0, T - i0, (long long)H * D, D);
            if (threadIdx.x < AT_BQ) {
                int i = i0 + threadIdx.x;
                Ls[threadIdx.x] = i < T ? lse[((long long)b * H + h) * T + i] : 0.0f;
                Dl[threadIdx.x] = i < T ? delta[((long long)b * H + h) * T + i] : 0.0f;
            }
            __syncthreads();
            at_probs(Ps, dSs, Qs, dOs, Ks, Vs, Ls, Dl, i0, j0, T, S, D, queryOffset, scale, b, window, keyLengths,
                     softCap);
            __syncthreads();
            #pragma unroll
            for (int j = 0; j < AT_PER; j++) {
                int d = c8 + 8 * j;
                if (d >= D) continue;
                float sk = 0.0f;
                float sv = 0.0f;
                for (int qi = 0; qi < AT_BQ; qi++) {
                    sk += dSs[qi][r] * Qs[qi][d];
                    sv += Ps[qi][r] * dOs[qi][d];
                }
                accK[j] += scale * sk;
                accV[j] += sv;
            }
        }
    }
    int j = j0 + r;
    if (j < S) {
        long long base = (((long long)b * S + j) * G + g) * D;
        #pragma unroll
        for (int e = 0; e < AT_PER; e++) {
            int d = c8 + 8 * e;
            if (d < D) {
                dk[base + d] += accK[e];
                dv[base + d] += accV[e];
            }
        }
    }
}
