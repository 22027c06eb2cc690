// Embedding rows: out[n] = table[ids[n]] for a table [V, C] (F32 or BF16); backward scatters
// dtable[ids[n]] += dout[n] with atomics (rows repeat). Ids are checked against [0, V) on the host
// before upload; an id outside it is skipped here rather than read out of bounds.
// Launch: grid (ceil(C/256), n), 256 threads.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
    embedding_f32(float* out, const float* table, const int* ids, int n, int C, int V) {
    int row = blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= n || c >= C) return;
    int id = ids[row];
    if (id < 0 || id >= V) return;
    out[(long long)row * C + c] = table[(long long)id * C + c];
}

extern "C" __global__ void __launch_bounds__(256)
    embedding_bf16(float* out, const bf16* table, const int* ids, int n, int C, int V) {
    int row = blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= n || c >= C) return;
    int id = ids[row];
    if (id < 0 || id >= V) return;
    out[(long long)row * C + c] = __bfloat162float(table[(long long)id * C + c]);
}

extern "C" __global__ void __launch_bounds__(256)
    embedding_bwd(float* dtable, const float* dout, const int* ids, int n, int C, int V) {
    int row = blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= n || c >= C) return;
    int id = ids[row];
    if (id < 0 || id >= V) return;
    atomicAdd(dtable + (long long)id * C + c, dout[(long long)row * C + c]);
}
