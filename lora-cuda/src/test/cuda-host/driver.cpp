// Test driver for the host emulation: runs a script of kernel launches over host buffers.
// Usage: driver SCRIPT OUTPUT, or driver --serve - (see serve below). Everything little-endian.
// SCRIPT: "LCH1", int32 buffer count, per buffer {int64 byte length, bytes},
//         int32 launch count, per launch {int32 name length, name, int32 grid[3], int32 block[3],
//         int32 argument count, per argument {int8 kind, payload}}, kinds: 'p' int32 buffer index
//         (-1: null) and int64 byte offset, 'i' int32, 'l' int64, 'f' float32, 'd' float64.
// OUTPUT: int32 buffer count, per buffer {int64 byte length, bytes}, after all launches.
// Each argument's kind must match the kernel's C parameter type exactly (as the slot sizes given
// to cuLaunchKernel must), else the driver exits with status 3 naming the kernel and argument.
#define LORA_CUDA_HOST 1
#include "adamw.cu"
#include "attention.cu"
#include "elementwise.cu"
#include "embedding.cu"
#include "loss.cu"
#include "lora.cu"
#include "matmul.cu"
#include "norm.cu"
#include "ops.cu"
#include "quant4.cu"
#include "rope.cu"
#include "swiglu.cu"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <utility>

struct Arg {
    char kind;
    void* p;
    long long i;
    double f;
};

static std::string current;

[[noreturn]] static void fail(const std::string& what) {
    std::fprintf(stderr, "driver: %s\n", what.c_str());
    std::exit(3);
}

template <class T>
static T convert(const Arg& a, size_t index) {
    auto expect = [&](char k) {
        if (a.kind != k)
            fail(current + ": argument " + std::to_string(index) + " has kind '" + a.kind + "' but the kernel takes '" + k + "'");
    };
    if constexpr (std::is_pointer_v<T>) {
        expect('p');
        return (T)a.p;
    } else if constexpr (std::is_same_v<T, int>) {
        expect('i');
        return (int)a.i;
    } else if constexpr (std::is_same_v<T, long long>) {
        expect('l');
        return a.i;
    } else if constexpr (std::is_same_v<T, float>) {
        expect('f');
        return (float)a.f;
    } else {
        static_assert(std::is_same_v<T, double>);
        expect('d');
        return a.f;
    }
}

template <class... P, size_t... I>
static void call(void (*k)(P...), dim3 g, dim3 b, const std::vector<Arg>& a, std::index_sequence<I...>) {
    cuda_host::launch(g, b, k, convert<P>(a[I], I)...);
}

using Entry = std::function<void(dim3, dim3, const std::vector<Arg>&)>;

template <class... P>
static Entry entry(void (*k)(P...)) {
    return [k](dim3 g, dim3 b, const std::vector<Arg>& a) {
        if (a.size() != sizeof...(P))
            fail(current + ": " + std::to_string(a.size()) + " arguments, the kernel takes " + std::to_string(sizeof...(P)));
        call(k, g, b, a, std::index_sequence_for<P...>{});
    };
}

#define KERNEL(name) {#name, entry(name)}

// Serve mode (driver --serve -): a device that stays alive between operations, commands on stdin,
// replies on stdout, all little-endian. Buffers are host allocations addressed by their address.
//   'A' i64 bytes                         -> i64 address (zeroed memory, 16 bytes of slack)
//   'F' i64 address                       free
//   'U' i64 address, i64 bytes, bytes     copy host -> device
//   'D' i64 address, i64 bytes            -> bytes
//   'C' i64 dst, i64 src, i64 bytes       device -> device copy
//   'L' launch as in a script, except that a pointer argument is {'p', i64 address} (0: null)
//   'S'                                   -> 'k' once everything before it has run
//   'Q'                                   exit
// A pointer outside every live allocation, or a kernel argument of the wrong kind, ends the
// driver with status 3 and the reason on stderr.
static int serve(std::map<std::string, Entry>& kernels) {
    std::map<uintptr_t, size_t> live;  // address -> bytes
    auto rd = [](void* p, size_t n) {
        if (std::fread(p, 1, n, stdin) != n) std::exit(0);  // the Java side closed the pipe
    };
    auto i32 = [&] { int32_t v; rd(&v, 4); return v; };
    auto i64 = [&] { int64_t v; rd(&v, 8); return v; };
    auto wr = [](const void* p, size_t n) {
        if (std::fwrite(p, 1, n, stdout) != n) std::exit(4);
    };
    auto inside = [&](uintptr_t a, size_t n, const std::string& what) {
        auto it = live.upper_bound(a);
        if (it == live.begin()) fail(what + ": address outside every allocation");
        --it;
        if (a + n > it->first + it->second) fail(what + ": " + std::to_string(n) + " bytes at offset " +
                                                 std::to_string(a - it->first) + " overrun an allocation of " +
                                                 std::to_string(it->second));
    };
    for (;;) {
        char op;
        rd(&op, 1);
        switch (op) {
            case 'A': {
                int64_t n = i64();
                char* p = (char*)std::calloc(n + 16, 1);
                if (p == nullptr) fail("out of memory allocating " + std::to_string(n) + " bytes");
                live[(uintptr_t)p] = n;
                int64_t a = (int64_t)(uintptr_t)p;
                wr(&a, 8);
                std::fflush(stdout);
                break;
            }
            case 'F': {
                uintptr_t a = (uintptr_t)i64();
                if (live.erase(a) != 1) fail("free of an address that is not a live allocation");
                std::free((void*)a);
                break;
            }
            case 'U': {
                uintptr_t a = (uintptr_t)i64();
                int64_t n = i64();
                inside(a, n, "upload");
                rd((void*)a, n);
                break;
            }
            case 'D': {
                uintptr_t a = (uintptr_t)i64();
                int64_t n = i64();
                inside(a, n, "download");
                wr((void*)a, n);
                std::fflush(stdout);
                break;
            }
            case 'C': {
                uintptr_t d = (uintptr_t)i64();
                uintptr_t s = (uintptr_t)i64();
                int64_t n = i64();
                inside(d, n, "copy destination");
                inside(s, n, "copy source");
                std::memmove((void*)d, (void*)s, n);
                break;
            }
            case 'L': {
                std::string name(i32(), '\0');
                rd(name.data(), name.size());
                current = name;
                int g[3], b[3];
                for (int& x : g) x = i32();
                for (int& x : b) x = i32();
                std::vector<Arg> args(i32());
                for (auto& a : args) {
                    rd(&a.kind, 1);
                    a.p = nullptr;
                    switch (a.kind) {
                        case 'p': {
                            uintptr_t addr = (uintptr_t)i64();
                            if (addr != 0) inside(addr, 0, name + " pointer argument");
                            a.p = (void*)addr;
                            break;
                        }
                        case 'i': a.i = i32(); break;
                        case 'l': a.i = i64(); break;
                        case 'f': { float f; rd(&f, 4); a.f = f; break; }
                        case 'd': { double d; rd(&d, 8); a.f = d; break; }
                        default: fail(name + ": unknown argument kind");
                    }
                }
                auto it = kernels.find(name);
                if (it == kernels.end()) fail("no kernel named " + name);
                it->second(dim3(g[0], g[1], g[2]), dim3(b[0], b[1], b[2]), args);
                break;
            }
            case 'S': wr("k", 1); std::fflush(stdout); break;
            case 'Q': return 0;
            default: fail(std::string("unknown serve command ") + op);
        }
    }
}

int main(int argc, char** argv) {
    if (argc != 3) fail("usage: driver SCRIPT OUTPUT | driver --serve -");
    std::map<std::string, Entry> kernels = {
        KERNEL(adamw),          KERNEL(attn_fwd),       KERNEL(attn_bwd_delta), KERNEL(attn_bwd_dq),
        KERNEL(attn_bwd_dkdv),  KERNEL(embedding_f32),  KERNEL(embedding_bf16), KERNEL(embedding_bwd),
        KERNEL(ce_fwd),         KERNEL(ce_reduce),      KERNEL(ce_bwd),         KERNEL(lora_bf16),
        KERNEL(lora_4bit),      KERNEL(matmul_f32),     KERNEL(matmul_bf16_tc), KERNEL(rmsnorm_fwd),
        KERNEL(rmsnorm_bwd_dx), KERNEL(rmsnorm_bwd_dw), KERNEL(dequant4_f32),   KERNEL(dequant4_bf16),
        KERNEL(gemm4_f32),      KERNEL(rope),           KERNEL(swiglu_fwd),     KERNEL(swiglu_bwd),
        KERNEL(add_f32),        KERNEL(fill_f32),       KERNEL(random_f32),     KERNEL(random_bf16),
        KERNEL(random_u8),      KERNEL(strided_f32),    KERNEL(ew_f32),         KERNEL(glu_bwd),
        KERNEL(add_row),        KERNEL(sum_rows),       KERNEL(reduce_f64),     KERNEL(reduce_final),
        KERNEL(softmax_fwd),    KERNEL(softmax_bwd),    KERNEL(ce_bwd_scaled),  KERNEL(rope_partial),
        KERNEL(layernorm_fwd),  KERNEL(layernorm_bwd_dx), KERNEL(layernorm_bwd_dwdb), KERNEL(sgd_f32),
    };
    if (std::string(argv[1]) == "--serve") return serve(kernels);
    std::ifstream in(argv[1], std::ios::binary);
    auto rd = [&](void* p, size_t n) {
        if (!in.read((char*)p, n)) fail(std::string("truncated script ") + argv[1]);
    };
    auto i32 = [&] { int32_t v; rd(&v, 4); return v; };
    auto i64 = [&] { int64_t v; rd(&v, 8); return v; };
    char magic[4];
    rd(magic, 4);
    if (std::memcmp(magic, "LCH1", 4) != 0) fail("not a driver script");
    std::vector<std::vector<char>> buffers(i32());
    for (auto& b : buffers) {
        b.resize(i64() + 16);  // slack so that an empty buffer still has an address
        rd(b.data(), b.size() - 16);
    }
    int launches = i32();
    for (int l = 0; l < launches; l++) {
        std::string name(i32(), '\0');
        rd(name.data(), name.size());
        current = name;
        int g[3], b[3];
        for (int& x : g) x = i32();
        for (int& x : b) x = i32();
        std::vector<Arg> args(i32());
        for (auto& a : args) {
            rd(&a.kind, 1);
            a.p = nullptr;
            switch (a.kind) {
                case 'p': {
                    int idx = i32();
                    long long offset = i64();
                    if (idx >= (int)buffers.size()) fail(name + ": buffer index out of range");
                    if (idx >= 0 && (offset < 0 || offset > (long long)buffers[idx].size() - 16))
                        fail(name + ": pointer offset " + std::to_string(offset) + " outside its buffer");
                    a.p = idx < 0 ? nullptr : buffers[idx].data() + offset;
                    break;
                }
                case 'i': a.i = i32(); break;
                case 'l': a.i = i64(); break;
                case 'f': { float f; rd(&f, 4); a.f = f; break; }
                case 'd': { double d; rd(&d, 8); a.f = d; break; }
                default: fail(name + ": unknown argument kind");
            }
        }
        auto it = kernels.find(name);
        if (it == kernels.end()) fail("no kernel named " + name);
        it->second(dim3(g[0], g[1], g[2]), dim3(b[0], b[1], b[2]), args);
    }
    std::ofstream out(argv[2], std::ios::binary);
    int32_t n = buffers.size();
    out.write((char*)&n, 4);
    for (auto& buf : buffers) {
        int64_t len = buf.size() - 16;
        out.write((char*)&len, 8);
        out.write(buf.data(), len);
    }
    return out ? 0 : 4;
}
