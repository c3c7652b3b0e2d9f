// cuda_emulator.h: runs ParaCuda's CUDA C kernels on the CPU for the emulated CUDA device
// (Backends/Cuda/Emulator). g++ compiles a kernel file with this header in front of it into a shared library;
// the device's C# half owns memory, streams and the launch checks, and calls pc_launch on the host thread
// that drains the launch's stream.
//
// A launch runs its blocks one after another, in a random order drawn from the launch's seed. A block's
// threads are fibers on that host thread, switched by a few instructions of assembly (no system call), and
// every time a thread waits (a barrier, a warp collective) the next thread to run is drawn at random from
// those that can: code that leans on an order the hardware does not promise (a block reading another
// block's output, a lane reading a neighbour's shared-memory write before the barrier) goes wrong here too.
// Checked, each as an error that names the kernel, the block and the lines involved:
// - a warp collective (shuffle, vote, __syncwarp, the tensor cores' mma.sync) whose mask names a lane that has
//   exited, that is not there, or that waits somewhere else (lanes must meet at the same call with the same
//   mask; an mma needs the whole warp);
// - __syncthreads reached at different lines by the threads of one block;
// - a block that can make no progress (threads waiting for each other at different places).
// Shared memory lives in thread_local statics (one block runs at a time per host thread): they are the only
// thread-local storage of the library, so each block starts with all of it, and the dynamic shared memory of
// PC_DYNAMIC_SHARED (common.cuh), filled with NaN bytes, as fresh shared memory holds garbage.
// Not modelled: memory ordering between blocks of one launch, timing, and anything the kernels here do not use.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <link.h>
#include <pthread.h>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define PC_EMULATOR 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __shared__ static thread_local
#define __launch_bounds__(...)

struct uint3
{
    unsigned int x, y, z;
};

namespace pc_emulator
{
// ---------------------------------------------------------------- fibers

// Saves the callee-saved registers, the SSE and x87 control words and the stack pointer into *save, then
// resumes the fiber whose stack pointer is `load` (as saved by an earlier switch, or prepared by start()).
extern "C" void pc_emulator_switch(void** save, void* load) __attribute__((visibility("hidden")));
#if defined(__x86_64__)
asm(".text\n"
    ".globl pc_emulator_switch\n"
    ".hidden pc_emulator_switch\n"
    ".type pc_emulator_switch,@function\n"
    "pc_emulator_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size pc_emulator_switch, .-pc_emulator_switch\n");
#else
#error "the CUDA emulator's fibers are written for x86-64"
#endif

// Each thread of a block runs on its own slice of a stack region the caller owns (one per host thread, shared
// by every kernel library): 64 KB a thread, ample for these kernels.
constexpr size_t stack_bytes = 64 * 1024;

enum class Wait
{
    none,
    barrier,
    warp,
};

struct Fiber
{
    void* sp = nullptr;
    bool done = false;
    Wait wait = Wait::none;
};

enum class Collective
{
    shfl,
    shfl_xor,
    shfl_down,
    shfl_up,
    ballot,
    any,
    all,
    syncwarp,
    mma,
    mma_bf16,
};

// One warp's collective in progress: the lanes that arrived, and what they brought.
struct WarpCall
{
    unsigned int arrived = 0;
    unsigned int mask = 0;
    int line = 0;
    Collective kind = Collective::syncwarp;
    unsigned long long value[32];
    int argument[32];
    int width[32];
    unsigned long long result[32];
    // An mma's fragments: each lane's a0..a3, b0, b1, c0..c3 in, d0..d3 out.
    float operands[32][10];
    float product[32][4];
};

struct Kernel;

struct State
{
    const Kernel* kernel = nullptr;
    void** args = nullptr;
    uint3 grid_dim{1, 1, 1};
    uint3 block_dim{1, 1, 1};
    uint3 block_idx{0, 0, 0};
    int threads = 0;
    int current = 0;
    int live = 0;
    unsigned long long rng = 0;
    void* scheduler_sp = nullptr;
    std::vector<Fiber> fibers;
    std::vector<int> runnable;
    // __syncthreads in progress
    std::vector<int> at_barrier;
    int barrier_line = 0;
    std::vector<WarpCall> warps;
    std::vector<unsigned int> exited; // per warp: lanes that have returned, or do not exist
    std::vector<unsigned char> dynamic_shared;
    std::string error;
    char* stacks = nullptr; // the caller's stack region for this launch

    // this library's thread-local block on this host thread: the kernels' __shared__ variables
    char* tls = nullptr;
    size_t tls_bytes = 0;
};

// The one thread-local of the emulator itself: a pointer, saved across the poisoning of the block.
inline State*& state_slot()
{
    static thread_local State* s = nullptr;
    return s;
}

// Frees a host thread's state when the thread ends (a pthread key: thread_local storage is poisoned per block).
inline pthread_key_t cleanup_key()
{
    static pthread_key_t key;
    static const int made = pthread_key_create(&key, [](void* s) { delete static_cast<State*>(s); });
    (void)made;
    return key;
}

inline State& state()
{
    State*& s = state_slot();
    if (!s)
    {
        s = new State();
        pthread_setspecific(cleanup_key(), s);
    }
    return *s;
}

inline unsigned long long next_random(State& s)
{
    // splitmix64: any seed gives a well-mixed stream
    unsigned long long z = (s.rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct Kernel
{
    const char* name;
    void (*thunk)(void* function, void** args);
    void* function;
    int params;
    int sizes[48];
    int kinds[48]; // 0 value, 1 pointer to const (read), 2 pointer (read and written)
};

inline std::vector<Kernel>& registry()
{
    static std::vector<Kernel> kernels;
    return kernels;
}

inline void fail(State& s, const std::string& message)
{
    if (s.error.empty())
    {
        char where[160];
        std::snprintf(where, sizeof where, "%s, block (%u, %u, %u): ", s.kernel ? s.kernel->name : "?", s.block_idx.x, s.block_idx.y, s.block_idx.z);
        s.error = where + message;
    }
}

inline int pick(State& s)
{
    const size_t i = (size_t)(next_random(s) % s.runnable.size());
    const int t = s.runnable[i];
    s.runnable[i] = s.runnable.back();
    s.runnable.pop_back();
    return t;
}

// The running fiber stops (blocked, finished, or one of a released group) and the next runnable one, drawn at
// random, continues; with none left (or after an error) control goes back to the scheduler.
inline void switch_away(State& s)
{
    Fiber& me = s.fibers[s.current];
    if (s.runnable.empty() || !s.error.empty())
    {
        pc_emulator_switch(&me.sp, s.scheduler_sp);
        return;
    }
    const int next = pick(s);
    if (next == s.current)
        return;
    s.current = next;
    pc_emulator_switch(&me.sp, s.fibers[next].sp);
}

inline std::string lanes(unsigned int bits)
{
    std::string text;
    for (int lane = 0; lane < 32; ++lane)
        if (bits & (1u << lane))
            text += (text.empty() ? "" : ",") + std::to_string(lane);
    return text;
}

inline void release_barrier(State& s)
{
    for (int t : s.at_barrier)
    {
        s.fibers[t].wait = Wait::none;
        s.runnable.push_back(t);
    }
    s.at_barrier.clear();
}

[[noreturn]] inline void fiber_main()
{
    State& s = state();
    s.kernel->thunk(s.kernel->function, s.args);
    const int t = s.current;
    s.fibers[t].done = true;
    --s.live;
    const int warp = t / 32;
    s.exited[warp] |= 1u << (t % 32);
    const WarpCall& call = s.warps[warp];
    if (call.arrived != 0 && (call.mask & (1u << (t % 32))))
        fail(s, "lane " + std::to_string(t % 32) + " of warp " + std::to_string(warp) + " returned while lanes " + lanes(call.arrived) +
                    " wait for it in a warp collective at line " + std::to_string(call.line) + " (mask names an exited lane)");
    if (!s.at_barrier.empty() && (int)s.at_barrier.size() >= s.live)
        release_barrier(s);
    switch_away(s);
    std::abort(); // a finished fiber is never resumed
}

// A fresh fiber's stack, laid out as pc_emulator_switch leaves a suspended one: control words, six saved
// registers, and fiber_main as the return address, aligned as the ABI wants at a function's entry.
inline void* start(char* stack_top)
{
    uintptr_t* sp = (uintptr_t*)stack_top;
    *--sp = 0; // padding: fiber_main starts with rsp ≡ 8 (mod 16), as after a call
    *--sp = (uintptr_t)&fiber_main;
    for (int r = 0; r < 6; ++r)
        *--sp = 0;
    *--sp = 0x037F00001F80ull; // MXCSR default (low word), x87 control word default (bytes 4-5)
    return sp;
}

inline int find_tls(dl_phdr_info* info, size_t, void* data)
{
    const uintptr_t self = (uintptr_t)&pc_emulator_switch;
    bool ours = false;
    size_t bytes = 0;
    for (int i = 0; i < info->dlpi_phnum; ++i)
    {
        const auto& header = info->dlpi_phdr[i];
        const uintptr_t start = info->dlpi_addr + header.p_vaddr;
        if (header.p_type == PT_LOAD && self >= start && self < start + header.p_memsz)
            ours = true;
        if (header.p_type == PT_TLS)
            bytes = header.p_memsz;
    }
    if (!ours)
        return 0;
    auto* s = static_cast<State*>(data);
    s->tls = static_cast<char*>(info->dlpi_tls_data);
    s->tls_bytes = bytes;
    return 1;
}

// Fills the block's shared memory with NaN bytes, keeping the emulator's own pointer.
inline void poison_shared(State& s)
{
    if (!s.tls)
        dl_iterate_phdr(find_tls, &s);
    if (s.tls)
    {
        State* keep = state_slot();
        std::memset(s.tls, 0xFF, s.tls_bytes);
        state_slot() = keep;
    }
    if (!s.dynamic_shared.empty())
        std::memset(s.dynamic_shared.data(), 0xFF, s.dynamic_shared.size());
}

inline void describe_deadlock(State& s)
{
    std::string text = "no thread can continue:";
    if (!s.at_barrier.empty())
        text += " " + std::to_string(s.at_barrier.size()) + " thread(s) wait at __syncthreads (line " + std::to_string(s.barrier_line) + ")";
    for (size_t w = 0; w < s.warps.size(); ++w)
        if (s.warps[w].arrived)
            text += "; lanes " + lanes(s.warps[w].arrived) + " of warp " + std::to_string(w) + " wait in a warp collective at line " +
                    std::to_string(s.warps[w].line) + " for lanes " + lanes(s.warps[w].mask & ~s.warps[w].arrived);
    fail(s, text + " (a collective or barrier whose participants diverged)");
}

inline void run_block(State& s)
{
    const int n = s.threads;
    const int warps = (n + 31) / 32;
    s.fibers.assign(n, Fiber());
    s.runnable.clear();
    s.at_barrier.clear();
    s.warps.assign(warps, WarpCall());
    s.exited.assign(warps, 0u);
    if (n % 32)
        s.exited[warps - 1] = ~((1u << (n % 32)) - 1);
    s.live = n;
    for (int t = 0; t < n; ++t)
    {
        s.fibers[t].sp = start(s.stacks + (size_t)(t + 1) * stack_bytes);
        s.runnable.push_back(t);
    }
    poison_shared(s);
    s.current = pick(s);
    pc_emulator_switch(&s.scheduler_sp, s.fibers[s.current].sp);
    if (s.error.empty() && s.live > 0)
        describe_deadlock(s);
}

// ---------------------------------------------------------------- block and warp synchronisation

inline void sync_threads(int line)
{
    State& s = state();
    if (s.at_barrier.empty())
        s.barrier_line = line;
    else if (s.barrier_line != line)
        fail(s, "__syncthreads reached at line " + std::to_string(s.barrier_line) + " by some threads and at line " + std::to_string(line) + " by others");
    s.fibers[s.current].wait = Wait::barrier;
    s.at_barrier.push_back(s.current);
    if ((int)s.at_barrier.size() >= s.live)
        release_barrier(s);
    switch_away(s);
}

// The value the tensor cores read from a float32 register given to a TF32 mma: its top 19 bits (sign, 8
// exponent bits, 10 mantissa bits); the low 13 are ignored.
inline double tf32_operand(float x)
{
    unsigned int bits;
    std::memcpy(&bits, &x, 4);
    bits &= 0xFFFFE000u;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 over the warp's fragments, laid out as the PTX ISA says
// ("Matrix Fragments for mma.m16n8k8", .tf32): with g = lane / 4 and t = lane % 4, lane holds
//   A (16×8): a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
//   B (8×8):  b0 = B[t][g], b1 = B[t+4][g]
//   C, D (16×8): c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1].
// The products of TF32 values are exact in double; the sum is rounded to float32 once (the hardware's order
// of accumulation is unspecified, so tests compare with TF32 tolerances).
template <int K>
inline void multiply_fragments(WarpCall& call, const double (&a)[16][K], const double (&b)[K][8])
{
    // C and D (16×8), both mma shapes: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1].
    for (int lane = 0; lane < 32; ++lane)
    {
        const int g = lane / 4, t = lane % 4;
        for (int r = 0; r < 4; ++r)
        {
            const int row = g + 8 * (r / 2), col = 2 * t + r % 2;
            double sum = call.operands[lane][6 + r];
            for (int k = 0; k < K; ++k)
                sum += a[row][k] * b[k][col];
            call.product[lane][r] = (float)sum;
        }
    }
}

inline void finish_mma(WarpCall& call)
{
    double a[16][8], b[8][8];
    for (int lane = 0; lane < 32; ++lane)
    {
        const int g = lane / 4, t = lane % 4;
        const float* f = call.operands[lane];
        a[g][t] = tf32_operand(f[0]);
        a[g + 8][t] = tf32_operand(f[1]);
        a[g][t + 4] = tf32_operand(f[2]);
        a[g + 8][t + 4] = tf32_operand(f[3]);
        b[t][g] = tf32_operand(f[4]);
        b[t + 4][g] = tf32_operand(f[5]);
    }
    multiply_fragments(call, a, b);
}

// The float32 value of a bf16 held in 16 bits.
inline double bf16_value(unsigned int bits16)
{
    const unsigned int bits = bits16 << 16;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, laid out as the PTX ISA says ("Matrix Fragments for
// mma.m16n8k16", .bf16): with g = lane / 4 and t = lane % 4, each register holds two bf16 (the smaller index in
// the low half) and lane holds
//   A (16×16): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9], a3 = A[g+8][2t+8, 2t+9]
//   B (16×8):  b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C, D (16×8): as for the TF32 mma.
// bf16 products are exact in double; the sum is rounded to float32 once.
inline void finish_mma_bf16(WarpCall& call)
{
    double a[16][16], b[16][8];
    for (int lane = 0; lane < 32; ++lane)
    {
        const int g = lane / 4, t = lane % 4;
        unsigned int r[6];
        std::memcpy(r, call.operands[lane], sizeof r);
        const int rows[4] = {g, g + 8, g, g + 8};
        for (int i = 0; i < 4; ++i)
        {
            const int col = 2 * t + (i >= 2 ? 8 : 0);
            a[rows[i]][col] = bf16_value(r[i] & 0xFFFFu);
            a[rows[i]][col + 1] = bf16_value(r[i] >> 16);
        }
        for (int i = 0; i < 2; ++i)
        {
            const int row = 2 * t + 8 * i;
            b[row][g] = bf16_value(r[4 + i] & 0xFFFFu);
            b[row + 1][g] = bf16_value(r[4 + i] >> 16);
        }
    }
    multiply_fragments(call, a, b);
}

inline void finish_collective(State& s, WarpCall& call, int warp)
{
    if (call.kind == Collective::mma)
        finish_mma(call);
    if (call.kind == Collective::mma_bf16)
        finish_mma_bf16(call);
    unsigned int ballot = 0;
    for (int lane = 0; lane < 32; ++lane)
        if ((call.mask & (1u << lane)) && call.value[lane])
            ballot |= 1u << lane;
    for (int lane = 0; lane < 32; ++lane)
    {
        if (!(call.mask & (1u << lane)))
            continue;
        const int width = call.width[lane];
        const int base = lane & ~(width - 1);
        const int offset = lane - base;
        int source = lane;
        switch (call.kind)
        {
        case Collective::shfl:
            source = base + (call.argument[lane] & (width - 1));
            break;
        case Collective::shfl_xor:
            source = base + ((offset ^ call.argument[lane]) & (width - 1));
            break;
        case Collective::shfl_down:
            source = offset + call.argument[lane] < width ? lane + call.argument[lane] : lane;
            break;
        case Collective::shfl_up:
            source = offset - call.argument[lane] >= 0 ? lane - call.argument[lane] : lane;
            break;
        default:
            break;
        }
        if (!(call.mask & (1u << source)))
        {
            fail(s, "lane " + std::to_string(lane) + " of warp " + std::to_string(warp) + " reads lane " + std::to_string(source) + " in a shuffle at line " +
                        std::to_string(call.line) + ", which its mask does not name (the result is undefined)");
            return;
        }
        switch (call.kind)
        {
        case Collective::ballot:
            call.result[lane] = ballot;
            break;
        case Collective::any:
            call.result[lane] = ballot != 0;
            break;
        case Collective::all:
            call.result[lane] = ballot == call.mask;
            break;
        case Collective::syncwarp:
            call.result[lane] = 0;
            break;
        default:
            call.result[lane] = call.value[source];
            break;
        }
        s.fibers[warp * 32 + lane].wait = Wait::none;
        s.runnable.push_back(warp * 32 + lane);
    }
    call.arrived = 0;
}

inline unsigned long long collective(int line, Collective kind, unsigned int mask, unsigned long long value, int argument, int width)
{
    State& s = state();
    const int t = s.current;
    const int warp = t / 32;
    const int lane = t % 32;
    WarpCall& call = s.warps[warp];
    if (!(mask & (1u << lane)))
        fail(s, "lane " + std::to_string(lane) + " of warp " + std::to_string(warp) + " calls a warp collective at line " + std::to_string(line) + " with a mask that leaves it out");
    else if (mask & s.exited[warp])
        fail(s, "warp collective at line " + std::to_string(line) + " in warp " + std::to_string(warp) + ": its mask names lanes " + lanes(mask & s.exited[warp]) +
                    ", which have exited or do not exist");
    else if (width <= 0 || width > 32 || (width & (width - 1)))
        fail(s, "shuffle width " + std::to_string(width) + " at line " + std::to_string(line) + " is not a power of two up to 32");
    else if (call.arrived == 0)
    {
        call.mask = mask;
        call.line = line;
        call.kind = kind;
    }
    else if (call.mask != mask || call.line != line || call.kind != kind)
        fail(s, "lanes of warp " + std::to_string(warp) + " diverged: lanes " + lanes(call.arrived) + " are in a warp collective at line " + std::to_string(call.line) +
                    " while lane " + std::to_string(lane) + " called one at line " + std::to_string(line) + (call.mask != mask ? " with another mask" : ""));
    if (!s.error.empty())
    {
        switch_away(s);
        return 0;
    }
    call.value[lane] = value;
    call.argument[lane] = argument;
    call.width[lane] = width;
    call.arrived |= 1u << lane;
    s.fibers[t].wait = Wait::warp;
    if (call.arrived == mask)
        finish_collective(s, call, warp);
    switch_away(s);
    return call.result[lane];
}

template <typename T>
inline unsigned long long to_bits(T v)
{
    static_assert(sizeof(T) <= 8, "a shuffle moves at most 64 bits");
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    return bits;
}

template <typename T>
inline T from_bits(unsigned long long bits)
{
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

template <typename T>
inline T shuffle(int line, Collective kind, unsigned int mask, T v, int argument, int width)
{
    return from_bits<T>(collective(line, kind, mask, to_bits(v), argument, width));
}

// One warp's m16n8k8 TF32 product D = A·B + C (see finish_mma), met by all 32 lanes at the same line.
inline void mma_tf32(int line, float d[4], const float a[4], const float b[2], const float c[4])
{
    State& s = state();
    float* operands = s.warps[s.current / 32].operands[s.current % 32];
    for (int i = 0; i < 4; ++i)
    {
        operands[i] = a[i];
        operands[6 + i] = c[i];
    }
    operands[4] = b[0];
    operands[5] = b[1];
    collective(line, Collective::mma, 0xffffffffu, 0, 0, 32);
    const float* product = s.warps[s.current / 32].product[s.current % 32];
    for (int i = 0; i < 4; ++i)
        d[i] = product[i];
}

// One warp's m16n8k16 bf16 product D = A·B + C (see finish_mma_bf16), met by all 32 lanes at the same line.
inline void mma_bf16(int line, float d[4], const unsigned int a[4], const unsigned int b[2], const float c[4])
{
    State& s = state();
    float* operands = s.warps[s.current / 32].operands[s.current % 32];
    std::memcpy(operands, a, 4 * sizeof(unsigned int));
    std::memcpy(operands + 4, b, 2 * sizeof(unsigned int));
    for (int i = 0; i < 4; ++i)
        operands[6 + i] = c[i];
    collective(line, Collective::mma_bf16, 0xffffffffu, 0, 0, 32);
    const float* product = s.warps[s.current / 32].product[s.current % 32];
    for (int i = 0; i < 4; ++i)
        d[i] = product[i];
}

// cvt.rn.bf16.f32: the top 16 bits of float32, rounded to nearest even; NaN becomes the canonical 0x7FFF.
inline unsigned int to_bf16_bits(float x)
{
    unsigned int bits;
    std::memcpy(&bits, &x, 4);
    if (std::isnan(x))
        return 0x7FFFu;
    return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

// cvt.rn.bf16x2.f32 d, hi, lo.
inline unsigned int pack_bf16x2(float lo, float hi)
{
    return to_bf16_bits(lo) | (to_bf16_bits(hi) << 16);
}

// cvt.rna.tf32.f32: float32 rounded to TF32's 10 mantissa bits, to nearest with ties away from zero.
inline float to_tf32(float x)
{
    if (!std::isfinite(x))
        return x;
    unsigned int bits;
    std::memcpy(&bits, &x, 4);
    bits = (bits + 0x1000u) & 0xFFFFE000u;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
}

template <typename T>
inline T* dynamic_shared()
{
    return reinterpret_cast<T*>(state().dynamic_shared.data());
}

// ---------------------------------------------------------------- registration and launch

template <typename T>
constexpr int param_kind()
{
    if constexpr (std::is_pointer_v<T>)
        return std::is_const_v<std::remove_pointer_t<T>> ? 1 : 2;
    else
        return 0;
}

template <typename... A, size_t... I>
inline void invoke(void (*f)(A...), void** args, std::index_sequence<I...>)
{
    f(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

struct Registration
{
    template <typename... A>
    Registration(const char* name, void (*f)(A...))
    {
        static_assert(sizeof...(A) <= 48, "at most 48 kernel parameters");
        Kernel k{};
        k.name = name;
        k.function = reinterpret_cast<void*>(f);
        k.thunk = [](void* function, void** args) { invoke(reinterpret_cast<void (*)(A...)>(function), args, std::index_sequence_for<A...>()); };
        k.params = (int)sizeof...(A);
        const int sizes[] = {(int)sizeof(A)..., 0};
        const int kinds[] = {param_kind<A>()..., 0};
        for (int i = 0; i < k.params; ++i)
        {
            k.sizes[i] = sizes[i];
            k.kinds[i] = kinds[i];
        }
        registry().push_back(k);
    }
};
} // namespace pc_emulator

// ---------------------------------------------------------------- what NVRTC would provide

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
#define warpSize 32

#define __syncthreads() pc_emulator::sync_threads(__LINE__)
#define __syncwarp(...) pc_emulator::collective(__LINE__, pc_emulator::Collective::syncwarp, pc_emulator_mask_or_full(__VA_ARGS__), 0, 0, 32)
#define __shfl_sync(mask, v, lane, ...) pc_emulator::shuffle(__LINE__, pc_emulator::Collective::shfl, mask, v, lane, pc_emulator_width(__VA_ARGS__))
#define __shfl_xor_sync(mask, v, lanes, ...) pc_emulator::shuffle(__LINE__, pc_emulator::Collective::shfl_xor, mask, v, lanes, pc_emulator_width(__VA_ARGS__))
#define __shfl_down_sync(mask, v, delta, ...) pc_emulator::shuffle(__LINE__, pc_emulator::Collective::shfl_down, mask, v, delta, pc_emulator_width(__VA_ARGS__))
#define __shfl_up_sync(mask, v, delta, ...) pc_emulator::shuffle(__LINE__, pc_emulator::Collective::shfl_up, mask, v, delta, pc_emulator_width(__VA_ARGS__))
#define __ballot_sync(mask, p) ((unsigned int)pc_emulator::collective(__LINE__, pc_emulator::Collective::ballot, mask, (p) ? 1 : 0, 0, 32))
#define __any_sync(mask, p) ((int)pc_emulator::collective(__LINE__, pc_emulator::Collective::any, mask, (p) ? 1 : 0, 0, 32))
#define __all_sync(mask, p) ((int)pc_emulator::collective(__LINE__, pc_emulator::Collective::all, mask, (p) ? 1 : 0, 0, 32))

inline int pc_emulator_width() { return 32; }
inline int pc_emulator_width(int width) { return width; }
inline unsigned int pc_emulator_mask_or_full() { return 0xffffffffu; }
inline unsigned int pc_emulator_mask_or_full(unsigned int mask) { return mask; }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

inline int atomicAdd(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
inline unsigned int atomicAdd(unsigned int* address, unsigned int value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
inline float atomicAdd(float* address, float value)
{
    float old = *address;
    float desired;
    do
        desired = old + value;
    while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}

inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __int_as_float(int bits)
{
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
inline int __float_as_int(float f)
{
    int bits;
    std::memcpy(&bits, &f, 4);
    return bits;
}

template <typename T>
inline T min(T a, T b)
{
    return b < a ? b : a;
}

template <typename T>
inline T max(T a, T b)
{
    return a < b ? b : a;
}

// ---------------------------------------------------------------- the library's exports

// The library is built with hidden visibility (and no GNU-unique symbols), so every kernel file loaded into
// the process keeps its own registry; only these functions are exported.
#define PC_EXPORT extern "C" __attribute__((visibility("default")))

PC_EXPORT int pc_kernel_count() { return (int)pc_emulator::registry().size(); }

PC_EXPORT const char* pc_kernel_name(int kernel) { return pc_emulator::registry()[kernel].name; }

// Parameter count, and each parameter's size and kind (0 value, 1 read-only pointer, 2 pointer).
PC_EXPORT int pc_kernel_params(int kernel, int* sizes, int* kinds, int capacity)
{
    const auto& k = pc_emulator::registry()[kernel];
    for (int i = 0; i < k.params && i < capacity; ++i)
    {
        sizes[i] = k.sizes[i];
        kinds[i] = k.kinds[i];
    }
    return k.params;
}

// Runs one launch; args[i] points at the bytes of parameter i, as for cuLaunchKernel. `stacks` holds 64 KB
// per thread of a block, 16-byte aligned. Returns 0, or 1 with the problem in `error`. The caller has checked
// the geometry against the device's limits.
PC_EXPORT int pc_launch(int kernel, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz,
                         unsigned int shared_bytes, void** args, void* stacks, unsigned long long seed, char* error, int error_capacity)
{
    auto& s = pc_emulator::state();
    s.kernel = &pc_emulator::registry()[kernel];
    s.args = args;
    s.grid_dim = uint3{gx, gy, gz};
    s.block_dim = uint3{bx, by, bz};
    s.threads = (int)(bx * by * bz);
    s.rng = seed;
    s.error.clear();
    s.dynamic_shared.assign(shared_bytes, 0xFF);
    s.stacks = static_cast<char*>(stacks);
    const unsigned long long blocks = (unsigned long long)gx * gy * gz;
    std::vector<unsigned long long> order(blocks);
    for (unsigned long long b = 0; b < blocks; ++b)
        order[b] = b;
    for (unsigned long long b = blocks; b > 1; --b)
        std::swap(order[b - 1], order[pc_emulator::next_random(s) % b]);
    for (unsigned long long b : order)
    {
        s.block_idx = uint3{(unsigned int)(b % gx), (unsigned int)(b / gx % gy), (unsigned int)(b / ((unsigned long long)gx * gy))};
        pc_emulator::run_block(s);
        if (!s.error.empty())
        {
            std::snprintf(error, (size_t)error_capacity, "%s", s.error.c_str());
            return 1;
        }
    }
    return 0;
}

#define PC_EMULATOR_REGISTER(f) static pc_emulator::Registration pc_registration_##f(#f, &f);
