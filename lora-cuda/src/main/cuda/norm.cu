// RMSNorm over the last dimension: y = x · r · (w + wOff) (wOff 0 for Llama, 1 for Gemma's (1 + w)), r = 1/sqrt(mean(x²) + eps) per row.
// Forward saves r per row (rstd). Backward per row with g = dy ⊙ w:
//   dx += r·g − x·r³·mean(g ⊙ x);   dw += Σ_rows dy ⊙ x · r.
#include "common.cuh"

/** One block of 256 threads per row. */
extern "C" __global__ void __launch_bounds__(256)
    rmsnorm_fwd(float* y, float* rstd, const float* x, const float* w, int rows, int C, float eps, float wOff) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * C;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, scratch);
    float r = rsqrtf(ss / C + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    float* yr = y + (long long)row * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) yr[i] = xr[i] * r * (w[i] + wOff);
}

/** dx only; one block of 256 threads per row. */
extern "C" __global__ void __launch_bounds__(256)
    rmsnorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w, const float* rstd, int rows, int C,
                   float wOff) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * C;
    const float* dyr = dy + (long long)row * C;
    float gx = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) gx += dyr[i] * (w[i] + wOff) * xr[i];
    gx = block_sum(gx, scratch);
    float r = rstd[row];
    float k = gx / C * r * r * r;
    float* dxr = dx + (long long)row * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dxr[i] += dyr[i] * (w[i] + wOff) * r - xr[i] * k;
}

/** dw: one thread per column, rows summed in order (deterministic). Launch: ceil(C/256) blocks of 256. */
extern "C" __global__ void __launch_bounds__(256)
    rmsnorm_bwd_dw(float* dw, const float* dy, const float* x, const float* rstd, int rows, int C) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= C) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++) acc += dy[(long long)r * C + i] * x[(long long)r * C + i] * rstd[r];
    dw[i] += acc;
}
