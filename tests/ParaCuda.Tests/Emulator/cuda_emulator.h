// cuda_emulator.h: runs ParaCuda's CUDA C kernels on the CPU, so CI (no GPU) can check their arithmetic and
// indexing against the CPU backend. Included ahead of a kernel file (g++ -include), it supplies what NVRTC
// would: the execution-space keywords, thread and block indices, barriers, warp shuffles, atomics and the
// math functions the kernels use.
//
// Model: the blocks of a launch run one after another; the threads of a block are cooperative fibers
// (ucontext) on one OS thread, switched only at __syncthreads() and warp shuffles. That makes __shared__
// memory a plain static (one block is alive at a time), races impossible, and runs deterministic. A
// thread that returns early leaves every barrier it has not reached, as on the GPU.
// Not modelled: memory ordering, timing, or anything the kernels here do not use.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>
#include <ucontext.h>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct uint3
{
    unsigned int x, y, z;
};

namespace pc_emulator
{
struct Barrier
{
    int arrived = 0;
    long long generation = 0;
};

struct State
{
    uint3 block_dim{1, 1, 1};
    uint3 grid_dim{1, 1, 1};
    uint3 block_idx{0, 0, 0};
    int threads = 0;
    int current = 0;
    int live = 0;
    std::vector<int> done;
    std::vector<int> warp_live;
    std::vector<ucontext_t> contexts;
    std::vector<std::vector<char>> stacks;
    ucontext_t scheduler;
    Barrier block_barrier;
    std::vector<Barrier> warp_barriers;
    std::vector<unsigned long long> exchange;
    std::function<void()> body;
};

inline State& state()
{
    static State s;
    return s;
}

inline void yield()
{
    State& s = state();
    swapcontext(&s.contexts[s.current], &s.scheduler);
}

inline void wait(Barrier& b, int participants)
{
    const long long generation = b.generation;
    if (++b.arrived >= participants)
    {
        b.arrived = 0;
        ++b.generation;
        return;
    }
    while (b.generation == generation)
        yield();
}

inline void release_if_complete(Barrier& b, int participants)
{
    if (b.arrived > 0 && b.arrived >= participants)
    {
        b.arrived = 0;
        ++b.generation;
    }
}

inline void fiber_entry()
{
    State& s = state();
    s.body();
    const int t = s.current;
    s.done[t] = 1;
    --s.live;
    const int warp = t / 32;
    --s.warp_live[warp];
    release_if_complete(s.block_barrier, s.live);
    release_if_complete(s.warp_barriers[warp], s.warp_live[warp]);
    swapcontext(&s.contexts[t], &s.scheduler);
}

inline void run_block(const std::function<void()>& body)
{
    State& s = state();
    const int n = s.threads;
    const int warps = (n + 31) / 32;
    const size_t stack_bytes = 256 * 1024;
    s.body = body;
    s.live = n;
    s.done.assign(n, 0);
    s.warp_live.assign(warps, 0);
    for (int t = 0; t < n; ++t)
        ++s.warp_live[t / 32];
    s.block_barrier = Barrier();
    s.warp_barriers.assign(warps, Barrier());
    s.exchange.assign((size_t)warps * 32, 0);
    s.contexts.resize(n);
    s.stacks.resize(n);
    for (int t = 0; t < n; ++t)
    {
        s.stacks[t].resize(stack_bytes);
        getcontext(&s.contexts[t]);
        s.contexts[t].uc_stack.ss_sp = s.stacks[t].data();
        s.contexts[t].uc_stack.ss_size = stack_bytes;
        s.contexts[t].uc_link = nullptr;
        makecontext(&s.contexts[t], fiber_entry, 0);
    }
    while (s.live > 0)
        for (int t = 0; t < n; ++t)
            if (!s.done[t])
            {
                s.current = t;
                swapcontext(&s.scheduler, &s.contexts[t]);
            }
}

inline unsigned long long shuffle_xor(unsigned long long bits, int offset)
{
    State& s = state();
    const int t = s.current;
    const int warp = t / 32;
    const int lane = t % 32;
    s.exchange[(size_t)warp * 32 + lane] = bits;
    wait(s.warp_barriers[warp], s.warp_live[warp]);
    const unsigned long long partner = s.exchange[(size_t)warp * 32 + (lane ^ offset)];
    wait(s.warp_barriers[warp], s.warp_live[warp]);
    return partner;
}
} // namespace pc_emulator

// The CUDA built-in variables, read through the scheduler's current fiber.
struct pc_thread_index
{
    operator uint3() const
    {
        const auto& s = pc_emulator::state();
        const unsigned int t = (unsigned int)s.current;
        return uint3{t % s.block_dim.x, t / s.block_dim.x % s.block_dim.y, t / (s.block_dim.x * s.block_dim.y)};
    }
};
#define threadIdx (static_cast<uint3>(pc_thread_index()))
#define blockIdx (pc_emulator::state().block_idx)
#define blockDim (pc_emulator::state().block_dim)
#define gridDim (pc_emulator::state().grid_dim)

inline void __syncthreads()
{
    auto& s = pc_emulator::state();
    pc_emulator::wait(s.block_barrier, s.live);
}

inline float __shfl_xor_sync(unsigned int, float v, int offset)
{
    unsigned int bits;
    std::memcpy(&bits, &v, 4);
    bits = (unsigned int)pc_emulator::shuffle_xor(bits, offset);
    float r;
    std::memcpy(&r, &bits, 4);
    return r;
}

inline int __shfl_xor_sync(unsigned int, int v, int offset)
{
    return (int)(unsigned int)pc_emulator::shuffle_xor((unsigned int)v, offset);
}

inline int atomicAdd(int* address, int value)
{
    const int old = *address;
    *address = old + value;
    return old;
}

inline unsigned int __umulhi(unsigned int a, unsigned int b)
{
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}

template <typename T>
inline T min(T a, T b)
{
    return b < a ? b : a;
}

namespace pc_emulator
{
// Calls kernel f with the launch's arguments: args[i] points at the bytes of parameter i, as for
// cuLaunchKernel.
template <typename... A, size_t... I>
inline void invoke(void (*f)(A...), void** args, std::index_sequence<I...>)
{
    f(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

struct Kernel
{
    const char* name;
    std::function<void(void**)> call;
};

inline std::vector<Kernel>& registry()
{
    static std::vector<Kernel> kernels;
    return kernels;
}

struct Registration
{
    template <typename... A>
    Registration(const char* name, void (*f)(A...))
    {
        registry().push_back({name, [f](void** args) { invoke(f, args, std::index_sequence_for<A...>()); }});
    }
};
} // namespace pc_emulator

// The one export of an emulated kernel file: launch `name` over the grid; returns 0, or 1 for an unknown name.
extern "C" int pc_launch(const char* name, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, void** args)
{
    for (auto& kernel : pc_emulator::registry())
    {
        if (std::strcmp(kernel.name, name) != 0)
            continue;
        auto& s = pc_emulator::state();
        s.grid_dim = uint3{gx, gy, gz};
        s.block_dim = uint3{bx, by, bz};
        s.threads = (int)(bx * by * bz);
        for (unsigned int z = 0; z < gz; ++z)
            for (unsigned int y = 0; y < gy; ++y)
                for (unsigned int x = 0; x < gx; ++x)
                {
                    s.block_idx = uint3{x, y, z};
                    pc_emulator::run_block([&kernel, args] { kernel.call(args); });
                }
        return 0;
    }
    return 1;
}

#define PC_EMULATOR_REGISTER(f) static pc_emulator::Registration pc_registration_##f(#f, &f);
