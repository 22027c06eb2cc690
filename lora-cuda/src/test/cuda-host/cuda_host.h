// Host emulation of the CUDA built-ins the kernels in src/main/cuda use, so that each .cu file
// compiles unchanged with g++ -std=c++20 -x c++ -DLORA_CUDA_HOST and runs on the CPU.
//
// Model: a launch runs its blocks one after another; the threads of a block are host threads
// (one std::thread per CUDA thread, kept in a pool across launches), so __syncthreads() is a
// std::barrier over them and
// __shared__ variables can be function-local statics (one block is alive at a time). Warps are
// consecutive groups of 32 threads; warp shuffles exchange through a slot per thread between two
// warp barriers. wmma fragments hold a whole tile in every lane and compute it in float (same
// math as the tensor-core instruction: BF16 products accumulated in F32, order aside).
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};

namespace cuda_host {
inline thread_local uint3 thread_idx;
inline thread_local uint3 block_idx;
inline thread_local unsigned linear_idx;
inline dim3 block_dim;
inline dim3 grid_dim;
inline std::barrier<>* block_barrier = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline std::vector<uint64_t> shuffle_slots;

inline void warp_sync() { warp_barriers[linear_idx / 32]->arrive_and_wait(); }

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
template <class T>
inline T exchange(T v, int src_lane_in_warp) {
    unsigned warp = linear_idx / 32;
    shuffle_slots[linear_idx] = to_bits(v);
    warp_sync();
    T r = from_bits<T>(shuffle_slots[warp * 32 + src_lane_in_warp]);
    warp_sync();
    return r;
}
inline unsigned warp_lanes(unsigned warp) {
    unsigned n = block_dim.x * block_dim.y * block_dim.z;
    return std::min(32u, n - warp * 32);
}

/**
 * Host threads reused across launches: thread i runs CUDA thread i of every block of a launch.
 * Created once and never destroyed (allocated with new), so that process exit does not have to
 * join threads parked on the condition variable.
 */
struct ThreadPool {
    std::mutex m;
    std::condition_variable start_cv;
    std::condition_variable done_cv;
    std::vector<std::thread> threads;
    std::function<void(unsigned)> job;
    unsigned active = 0;
    unsigned remaining = 0;
    unsigned long generation = 0;

    void worker(unsigned id) {
        unsigned long seen = 0;
        for (;;) {
            std::function<void(unsigned)> j;
            {
                std::unique_lock<std::mutex> lock(m);
                start_cv.wait(lock, [&] { return generation != seen; });
                seen = generation;
                if (id >= active) continue;
                j = job;
            }
            j(id);
            std::lock_guard<std::mutex> lock(m);
            if (--remaining == 0) done_cv.notify_all();
        }
    }

    void run(unsigned n, std::function<void(unsigned)> f) {
        {
            std::lock_guard<std::mutex> lock(m);
            while (threads.size() < n) {
                unsigned id = threads.size();
                threads.emplace_back([this, id] { worker(id); });
                threads.back().detach();
            }
            job = std::move(f);
            active = n;
            remaining = n;
            generation++;
        }
        start_cv.notify_all();
        std::unique_lock<std::mutex> lock(m);
        done_cv.wait(lock, [&] { return remaining == 0; });
    }
};

inline ThreadPool& pool() {
    static ThreadPool* p = new ThreadPool();
    return *p;
}

/** Runs kernel(args...) over grid × block, as cuLaunchKernel would. */
template <class... P, class... A>
void launch(dim3 grid, dim3 block, void (*kernel)(P...), A... args) {
    unsigned n = block.x * block.y * block.z;
    block_dim = block;
    grid_dim = grid;
    std::barrier<> barrier(n);
    block_barrier = &barrier;
    warp_barriers.clear();
    for (unsigned w = 0; w * 32 < n; w++) {
        warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(32u, n - w * 32)));
    }
    shuffle_slots.assign(n, 0);
    pool().run(n, [&](unsigned t) {
        linear_idx = t;
        thread_idx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
        for (unsigned bz = 0; bz < grid.z; bz++)
            for (unsigned by = 0; by < grid.y; by++)
                for (unsigned bx = 0; bx < grid.x; bx++) {
                    block_idx = {bx, by, bz};
                    kernel(args...);
                    barrier.arrive_and_wait();  // the next block reuses the __shared__ statics
                }
    });
    block_barrier = nullptr;
}
}  // namespace cuda_host

#define threadIdx (cuda_host::thread_idx)
#define blockIdx (cuda_host::block_idx)
#define blockDim (cuda_host::block_dim)
#define gridDim (cuda_host::grid_dim)
#define warpSize 32

inline void __syncthreads() { cuda_host::block_barrier->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_host::warp_sync(); }

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    int lane = cuda_host::linear_idx % 32;
    return cuda_host::exchange(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    int lane = cuda_host::linear_idx % 32;
    int src = lane ^ mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return cuda_host::exchange(v, src);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    int lane = cuda_host::linear_idx % 32;
    int src = lane + (int)delta;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
    return cuda_host::exchange(v, src);
}

inline float atomicAdd(float* address, float v) {
    std::atomic_ref<float> a(*address);
    float old = a.load(std::memory_order_relaxed);
    while (!a.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
    }
    return old;
}
inline int atomicAdd(int* address, int v) { return std::atomic_ref<int>(*address).fetch_add(v); }

using std::max;
using std::min;

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline int __float_as_int(float f) { return cuda_host::from_bits<int>(cuda_host::to_bits(f)); }
inline float __int_as_float(int i) { return cuda_host::from_bits<float>(cuda_host::to_bits(i)); }

// ------------------------------------------------------------------ bfloat16 (cuda_bf16.h)
struct __nv_bfloat16 {
    uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
/** Round to nearest even; NaN stays a (quiet) NaN, as cuda_bf16.h does. */
inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)((u >> 16) | 0x40)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return {(uint16_t)(u >> 16)};
}

// ------------------------------------------------------------------ wmma (mma.h)
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    T x[rows * cols];  // element (r, c) at r * cols + c, whatever the memory layout
};

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, T v) {
    for (auto& e : f.x) e = v;
}
template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm) {
    using F = fragment<Use, M, N, K, T, L>;
    for (int r = 0; r < F::rows; r++)
        for (int c = 0; c < F::cols; c++)
            f.x[r * F::cols + c] = std::is_same_v<L, col_major> ? p[c * ldm + r] : p[r * ldm + c];
    cuda_host::warp_sync();
}
template <int M, int N, int K, class TA, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TA, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    float out[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = c.x[i * N + j];
            for (int k = 0; k < K; k++) s += __bfloat162float(a.x[i * K + k]) * __bfloat162float(b.x[k * N + j]);
            out[i * N + j] = s;
        }
    std::memcpy(d.x, out, sizeof out);
}
template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t layout) {
    if (cuda_host::linear_idx % 32 == 0) {
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
    }
    cuda_host::warp_sync();
}
}  // namespace wmma
}  // namespace nvcuda
