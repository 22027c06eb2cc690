// Softmax cross-entropy over rows of logits [rows, V] with integer labels (ignoreIndex rows skipped):
// loss = Σ_valid (lse_r − z_r[y_r]) / n_valid, as torch.nn.functional.cross_entropy(reduction="mean").
// Chunked: the caller runs these kernels on a chunk of rows at a time (row pointers offset), so
// only chunk × V logits need to exist at once; ce_bwd may write the gradient over the logits.
#include "common.cuh"

/** lossRow[r] = lse_r − z[r, y_r] (0 when ignored), lse[r]. One block of 256 threads per row; one
 *  pass with an online (max, sum) per thread, combined across the block. */
extern "C" __global__ void __launch_bounds__(256)
    ce_fwd(float* lossRow, float* lse, const float* z, const int* labels, int rows, int V, int ignoreIndex) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    int y = labels[row];
    if (y == ignoreIndex) {
        if (threadIdx.x == 0) {
            lossRow[row] = 0.0f;
            lse[row] = 0.0f;
        }
        return;
    }
    const float* zr = z + (long long)row * V;
    float m = -INFINITY;
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float x = zr[i];
        if (x > m) {
            s = s * expf(m - x) + 1.0f;
            m = x;
        } else {
            s += expf(x - m);
        }
    }
    float M = block_max(m, scratch);
    float part = m == -INFINITY ? 0.0f : s * expf(m - M);
    float S = block_sum(part, scratch);
    if (threadIdx.x == 0) {
        float l = M + logf(S);
        lse[row] = l;
        lossRow[row] = l - zr[y];
    }
}

/** loss[0] = mean of lossRow over valid rows (NaN when none), count[0] = the number of valid rows. One block of 256. */
extern "C" __global__ void __launch_bounds__(256)
    ce_reduce(float* loss, float* count, const float* lossRow, const int* labels, int rows, int ignoreIndex) {
    __shared__ float scratch[32];
    float s = 0.0f;
    float c = 0.0f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        if (labels[r] != ignoreIndex) {
            s += lossRow[r];
            c += 1.0f;
        }
    }
    s = block_sum(s, scratch);
    c = block_sum(c, scratch);
    if (threadIdx.x == 0) {
        loss[0] = c == 0.0f ? NAN : s / c;
        count[0] = c;
    }
}

/** dz = dloss / count · (softmax(z) − onehot(y)), 0 on ignored rows; overwrites dz, which may alias z.
 *  Launch: grid (ceil(V/256), rows), 256 threads. */
extern "C" __global__ void __launch_bounds__(256)
    ce_bwd(float* dz, const float* z, const float* lse, const int* labels, const float* count, const float* dloss,
           int rows, int V, int ignoreIndex) {
    int row = blockIdx.y;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= rows || i >= V) return;
    long long o = (long long)row * V + i;
    int y = labels[row];
    if (y == ignoreIndex) {
        dz[o] = 0.0f;
        return;
    }
    float g = dloss[0] / count[0];
    float p = expf(z[o] - lse[row]);
    dz[o] = g * (p - (i == y ? 1.0f : 0.0f));
}
