// The operations of lora4j's op-level Backend SPI that the model kernels above do not cover:
// strided copy and fill (views: transposes, slices, widening BF16), element-wise arithmetic and
// activations, row broadcasts and column sums, reductions to one double, softmax, the scaled
// cross-entropy gradient, partial rotary embedding, LayerNorm and SGD. Semantics are those of
// dev.lora4j.backend.Backend (stated at each method there); element-wise kernels take one thread
// per element, ceil(n/256) blocks of 256, unless stated otherwise.
#include "common.cuh"

#define OPS_MAX_RANK 4

/**
 * dst[i] = src[i] (widened from BF16 when srcBf16) or, with src null, value; both views of shape
 * s0..s3 (leading dimensions padded with 1) with element strides ds*, ss* (offsets already applied).
 */
extern "C" __global__ void __launch_bounds__(256)
    strided_f32(float* dst, const void* src, int srcBf16, float value, long long n, int s1, int s2, int s3,
                long long d0, long long d1, long long d2, long long d3, long long t0, long long t1, long long t2,
                long long t3) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long r = i;
    long long i3 = r % s3;
    r /= s3;
    long long i2 = r % s2;
    r /= s2;
    long long i1 = r % s1;
    long long i0 = r / s1;
    long long o = i0 * d0 + i1 * d1 + i2 * d2 + i3 * d3;
    if (src == nullptr) {
        dst[o] = value;
        return;
    }
    long long so = i0 * t0 + i1 * t1 + i2 * t2 + i3 * t3;
    dst[o] = srcBf16 ? __bfloat162float(((const bf16*)src)[so]) : ((const float*)src)[so];
}

__device__ __forceinline__ float ops_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

#define GELU_C 0.7978845608028654f
#define GELU_CUBIC 0.044715f

/** σ(2u) of GELU's tanh form, u = √(2/π)(x + 0.044715x³). */
__device__ __forceinline__ float gelu_tanh_gate(float x) {
    float u2 = (2.0f * GELU_C) * (x + GELU_CUBIC * (x * x * x));
    return 1.0f / (1.0f + expf(-u2));
}

__device__ __forceinline__ float gelu_value(float x, int erfForm) {
    if (!erfForm) return x * gelu_tanh_gate(x);
    return (float)(0.5 * x * (1.0 + erf((double)x * 0.7071067811865476)));
}

__device__ __forceinline__ float gelu_slope(float x, int erfForm) {
    if (!erfForm) {
        float s = gelu_tanh_gate(x);
        return s + x * (s * (1.0f - s)) * ((2.0f * GELU_C) * (1.0f + (3.0f * GELU_CUBIC) * (x * x)));
    }
    double xd = x;
    return (float)(0.5 * (1.0 + erf(xd * 0.7071067811865476)) + xd * 0.3989422804014327 * exp(-0.5 * xd * xd));
}

/** SplitMix64's finalizer of seed + (i + 1)·γ as a uniform float in [0, 1) with 24 bits (Backend.dropout). */
__device__ __forceinline__ float ops_uniform(long long seed, long long i) {
    unsigned long long z = (unsigned long long)seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * 5.9604644775390625e-8f;
}

/**
 * Element-wise operation {@code op} over n elements (out may alias a or b):
 *  0 out = a + b            1 out += alpha·a          2 out = a ⊙ b           3 out += a ⊙ b
 *  4 out = alpha·a          5 out = silu(a)           6 out += b ⊙ silu'(a)
 *  7 out = gelu(a)          8 out += b ⊙ gelu'(a)     (aux = 1: erf form, 0: tanh form)
 *  9 out = silu(a) ⊙ b      10 out = gelu(a) ⊙ b      (SwiGLU / GeGLU forward)
 * 11 out = alpha·tanh(a/alpha)                         12 out += a ⊙ (1 − (b/alpha)²) (soft-cap backward)
 * 13 out = dropout(a): kept when uniform(seed, i) ≥ alpha, scaled by 1/(1 − alpha); seed = aux
 */
extern "C" __global__ void __launch_bounds__(256)
    ew_f32(float* out, const float* a, const float* b, long long n, int op, float alpha, long long aux) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = a[i];
    switch (op) {
        case 0: out[i] = x + b[i]; break;
        case 1: out[i] += alpha * x; break;
        case 2: out[i] = x * b[i]; break;
        case 3: out[i] += x * b[i]; break;
        case 4: out[i] = alpha * x; break;
        case 5: out[i] = x * ops_sigmoid(x); break;
        case 6: {
            float s = ops_sigmoid(x);
            out[i] += b[i] * (s * (1.0f + x * (1.0f - s)));
            break;
        }
        case 7: out[i] = gelu_value(x, (int)aux); break;
        case 8: out[i] += b[i] * gelu_slope(x, (int)aux); break;
        case 9: out[i] = x * ops_sigmoid(x) * b[i]; break;
        case 10: out[i] = gelu_value(x, (int)aux) * b[i]; break;
        case 11: out[i] = alpha * tanhf(x / alpha); break;
        case 12: {
            float y = b[i] / alpha;
            out[i] += x * (1.0f - y * y);
            break;
        }
        case 13: out[i] = ops_uniform(aux, i) >= alpha ? x * (1.0f / (1.0f - alpha)) : 0.0f; break;
        default: break;
    }
}

/**
 * Gated-unit backward: dgate += dh ⊙ up ⊙ act'(gate), dup += dh ⊙ act(gate), act = silu
 * (kind 0), gelu tanh (1) or gelu erf (2); either output may be null.
 */
extern "C" __global__ void __launch_bounds__(256)
    glu_bwd(float* dgate, float* dup, const float* dh, const float* gate, const float* up, long long n, int kind) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i];
    float d = dh[i];
    float act, slope;
    if (kind == 0) {
        float s = ops_sigmoid(g);
        act = g * s;
        slope = s * (1.0f + g * (1.0f - s));
    } else {
        act = gelu_value(g, kind == 2);
        slope = gelu_slope(g, kind == 2);
    }
    if (dup != nullptr) dup[i] += d * act;
    if (dgate != nullptr) dgate[i] += d * up[i] * slope;
}

/** out[r, c] = x[r, c] + bias[c] for x [rows, cols] (out may alias x). */
extern "C" __global__ void __launch_bounds__(256)
    add_row(float* out, const float* x, const float* bias, long long rows, int cols) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    out[i] = x[i] + bias[i % cols];
}

/** dst[c] += Σ_r x[r, c], rows in order; one thread per column. */
extern "C" __global__ void __launch_bounds__(256) sum_rows(float* dst, const float* x, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; r++) acc += x[(long long)r * cols + c];
    dst[c] += acc;
}

/** Sum over a block of 256 threads in double; thread 0 gets the total. */
__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) scratch[threadIdx.x] += scratch[threadIdx.x + s];
        __syncthreads();
    }
    return scratch[0];
}

/**
 * partial[block] = Σ over this block's grid-stride share of f(x[i]) in double: op 0 x, 1 x², 2 x·w.
 * Launch: at most 256 blocks of 256; then {@code reduce_final} over the partials.
 */
extern "C" __global__ void __launch_bounds__(256)
    reduce_f64(double* partial, const float* x, const float* w, long long n, int op) {
    __shared__ double scratch[256];
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double v = x[i];
        acc += op == 0 ? v : op == 1 ? v * v : v * (double)w[i];
    }
    double total = block_sum_d(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

/** out[0] = Σ partial[0 .. count) in double. One block of 256. */
extern "C" __global__ void __launch_bounds__(256) reduce_final(double* out, const double* partial, int count) {
    __shared__ double scratch[256];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    double total = block_sum_d(acc, scratch);
    if (threadIdx.x == 0) out[0] = total;
}

/** Softmax of each row of x [rows, V] into y (y may alias x). One block of 256 per row. */
extern "C" __global__ void __launch_bounds__(256) softmax_fwd(float* y, const float* x, int rows, int V) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * V;
    float* yr = y + (long long)row * V;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(xr[i] - m);
    s = block_sum(s, scratch);
    float inv = 1.0f / s;
    for (int i = threadIdx.x; i < V; i += blockDim.x) yr[i] = expf(xr[i] - m) * inv;
}

/** dx += y ⊙ (dy − Σ dy ⊙ y) per row. One block of 256 per row. */
extern "C" __global__ void __launch_bounds__(256)
    softmax_bwd(float* dx, const float* dy, const float* y, int rows, int V) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* dyr = dy + (long long)row * V;
    const float* yr = y + (long long)row * V;
    float d = 0.0f;
    for (int i = threadIdx.x; i < V; i += blockDim.x) d += dyr[i] * yr[i];
    d = block_sum(d, scratch);
    float* dxr = dx + (long long)row * V;
    for (int i = threadIdx.x; i < V; i += blockDim.x) dxr[i] += yr[i] * (dyr[i] - d);
}

/**
 * dz += scale·(softmax(z) − onehot(y)) on rows whose label is not ignoreIndex, from the saved lse;
 * with overwrite (dz is z itself) dz = that gradient and ignored rows become 0.
 * Launch: (ceil(V/256), rows) blocks of 256.
 */
extern "C" __global__ void __launch_bounds__(256)
    ce_bwd_scaled(float* dz, const float* z, const float* lse, const int* labels, int rows, int V, int ignoreIndex,
                  float scale, int overwrite) {
    int row = blockIdx.y;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= rows || i >= V) return;
    long long o = (long long)row * V + i;
    int y = labels[row];
    if (y == ignoreIndex) {
        if (overwrite) dz[o] = 0.0f;
        return;
    }
    float g = scale * expf(z[o] - lse[row]) - (i == y ? scale : 0.0f);
    dz[o] = overwrite ? g : dz[o] + g;
}

/**
 * Rotate-half RoPE on the first {@code rotary} dimensions of each head of x [B, T, H, D], tables
 * [positions, rotary/2]; the other dimensions are copied. sign −1 rotates by −θ (the backward).
 * One thread per (row, head, i < D − rotary/2): i < rotary/2 rotates a pair, the rest copy one element.
 */
extern "C" __global__ void __launch_bounds__(256)
    rope_partial(float* out, const float* x, const float* cosTable, const float* sinTable, int B, int T, int H, int D,
                 int rotary, int pos0, float sign) {
    int half = rotary / 2;
    int per = D - half;
    long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= (long long)B * T * H * per) return;
    int i = (int)(p % per);
    long long rowHead = p / per;
    long long o = rowHead * D;
    if (i >= half) {
        int e = i + half;  // an unrotated dimension in [rotary, D)
        out[o + e] = x[o + e];
        return;
    }
    int t = (int)((rowHead / H) % T);
    int pos = pos0 + t;
    float c = cosTable[(long long)pos * half + i];
    float s = sign * sinTable[(long long)pos * half + i];
    float x1 = x[o + i];
    float x2 = x[o + i + half];
    out[o + i] = x1 * c - x2 * s;
    out[o + i + half] = x2 * c + x1 * s;
}

/**
 * LayerNorm: y = (x − μ)·r·w + b (b may be null), r = 1/√(var + eps) with the biased variance;
 * saves μ and r per row. One block of 256 per row.
 */
extern "C" __global__ void __launch_bounds__(256)
    layernorm_fwd(float* y, float* mean, float* rstd, const float* x, const float* w, const float* b, int rows, int C,
                  float eps) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * C;
    float s = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) s += xr[i];
    float mu = block_sum(s, scratch) / C;
    float v = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float d = xr[i] - mu;
        v += d * d;
    }
    float r = rsqrtf(block_sum(v, scratch) / C + eps);
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
    float* yr = y + (long long)row * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) yr[i] = (xr[i] - mu) * r * w[i] + (b != nullptr ? b[i] : 0.0f);
}

/** dx += r·(g − mean(g) − x̂·mean(g ⊙ x̂)), g = dy ⊙ w, x̂ = (x − μ)·r. One block of 256 per row. */
extern "C" __global__ void __launch_bounds__(256)
    layernorm_bwd_dx(float* dx, const float* dy, const float* x, const float* w, const float* mean, const float* rstd,
                     int rows, int C) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (long long)row * C;
    const float* dyr = dy + (long long)row * C;
    float mu = mean[row];
    float r = rstd[row];
    float sg = 0.0f;
    float sgx = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float g = dyr[i] * w[i];
        sg += g;
        sgx += g * (xr[i] - mu) * r;
    }
    float mg = block_sum(sg, scratch) / C;
    float mgx = block_sum(sgx, scratch) / C;
    float* dxr = dx + (long long)row * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float xh = (xr[i] - mu) * r;
        dxr[i] += r * (dyr[i] * w[i] - mg - xh * mgx);
    }
}

/** dw[c] += Σ_rows dy ⊙ x̂ and db[c] += Σ_rows dy (either may be null); one thread per column. */
extern "C" __global__ void __launch_bounds__(256)
    layernorm_bwd_dwdb(float* dw, float* db, const float* dy, const float* x, const float* mean, const float* rstd,
                       int rows, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float aw = 0.0f;
    float ab = 0.0f;
    for (int r = 0; r < rows; r++) {
        long long o = (long long)r * C + c;
        aw += dy[o] * (x[o] - mean[r]) * rstd[r];
        ab += dy[o];
    }
    if (dw != nullptr) dw[c] += aw;
    if (db != nullptr) db[c] += ab;
}

/**
 * One SGD step (torch.optim.SGD): d = g + λ·w; with a momentum buffer (buf may be null):
 * buf = d on the first step, else μ·buf + dampC·d; d = d + μ·buf (Nesterov) or buf; w −= lr·d.
 */
extern "C" __global__ void __launch_bounds__(256)
    sgd_f32(float* w, const float* g, float* buf, long long n, float lr, float momentum, float dampC, float weightDecay,
            int nesterov, int first) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = g[i] + weightDecay * w[i];
    if (buf != nullptr) {
        float bi = first ? d : momentum * buf[i] + dampC * d;
        buf[i] = bi;
        d = nesterov ? d + momentum * bi : bi;
    }
    w[i] -= lr * d;
}
