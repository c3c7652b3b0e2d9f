// common.cuh: what every ParaCuda kernel shares. It includes no CUDA toolkit header, so NVRTC from CUDA 11.8
// through 13 compiles each kernel file on its own; everything here is either an NVRTC built-in or defined below.
//
// Conventions
// - Tensors are dense, row-major float32 (activations may be bf16, see `act` below); an index into one is a 64-bit `long long` (a [500·197, 3072]
//   activation has 3e8 elements, past int range once multiplied by 4 bytes).
// - Entry points are `extern "C"` so their PTX names are the names the backend launches.
// - Reductions whose result a test compares against the CPU are deterministic: partial sums land in a
//   fixed place and are combined in a fixed order (never atomics on floats).
#pragma once

#define PC_WARP 32
#define PC_FULL_MASK 0xffffffffu

// Attention keeps a head vector in registers, lane l holding elements l, l + 32, …. The backend compiles the
// attention files once per head dimension (-DPC_HEAD_DIM=64), so the per-lane count is a compile-time
// constant: the arrays stay in registers and the loops unroll. Any head dim up to 256 (8 per lane).
#ifndef PC_HEAD_DIM
#define PC_HEAD_DIM 64
#endif
#define PC_HEAD_PER_LANE ((PC_HEAD_DIM + PC_WARP - 1) / PC_WARP)
static_assert(PC_HEAD_DIM > 0 && PC_HEAD_PER_LANE <= 8, "attention head dims run from 1 to 256");

// Whether lane `lane` holds head element e (lane + 32·e): all lanes do, except in the last chunk of a head
// dim that is not a multiple of 32.
__device__ __forceinline__ bool head_element(int lane, int e)
{
    return lane + e * PC_WARP < PC_HEAD_DIM;
}

// Dynamic shared memory: a kernel declares it with PC_DYNAMIC_SHARED(float, tile); the emulator provides its own.
#ifdef PC_EMULATOR
#define PC_DYNAMIC_SHARED(type, name) type* name = pc_emulator::dynamic_shared<type>()
#else
#define PC_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Kernels that give each row one warp: the row of the calling warp, and the thread's lane in it.
__device__ __forceinline__ long long warp_row()
{
    return (long long)blockIdx.x * (blockDim.x / PC_WARP) + threadIdx.x / PC_WARP;
}

// Ops with per-group parameters (a ParaFormer's branches run as one batch, each with its own γ, β or bias):
// element i of a tensor whose groups hold group_elems elements each uses row (i / group_elems) of a [groups, cols]
// parameter. One group (group_elems = all of them) is the plain broadcast.
__device__ __forceinline__ long long group_param(long long i, int cols, long long group_elems)
{
    return i / group_elems * cols + i % cols;
}

__device__ __forceinline__ int lane_id()
{
    return threadIdx.x % PC_WARP;
}

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = PC_WARP / 2; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(PC_FULL_MASK, v, offset);
    return v;
}

// Maximum over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = PC_WARP / 2; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(PC_FULL_MASK, v, offset));
    return v;
}

// Sum over a whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// The leading barrier lets a kernel call it several times: no warp overwrites the partials while another
// still reads the previous call's.
__device__ __forceinline__ float block_sum(float v)
{
    __shared__ float partial[PC_WARP];
    const int lane = threadIdx.x % PC_WARP;
    const int warp = threadIdx.x / PC_WARP;
    const int warps = blockDim.x / PC_WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    return warp_sum(lane < warps ? partial[lane] : 0.0f);
}

// Exact GELU, as PyTorch's default and the CPU backend: gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)).
__device__ __forceinline__ float gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

// gelu'(x) = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π).
__device__ __forceinline__ float gelu_grad(float x)
{
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

// Multi-tensor launches (one launch over every parameter, say) describe each tensor by a slice struct with
// an int `first_block`: the exclusive prefix sum of the tensors' block counts. The tensor block b works on
// is the last one whose first_block ≤ b.
template <typename Slice>
__device__ __forceinline__ const Slice& slice_of_block(const Slice* slices, int tensors, int block)
{
    int lo = 0;
    int hi = tensors - 1;
    while (lo < hi)
    {
        const int mid = (lo + hi + 1) / 2;
        if (slices[mid].first_block <= block)
            lo = mid;
        else
            hi = mid - 1;
    }
    return slices[lo];
}

// Tensor cores, TF32 (sm_80 and later): one warp computes D = A·B + C for A 16×8, B 8×8, C and D 16×8, from
// fragments spread over its lanes as the PTX ISA lays them out for mma.m16n8k8 .tf32. With g = lane / 4 and
// t = lane % 4:  a = {A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4]},  b = {B[t][g], B[t+4][g]},
// c, d = {C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]}. Every lane of the warp must call it together.
// The emulated device implements the same layout (cuda_emulator.h), so a kernel that gets it wrong fails there.
__device__ __forceinline__ void mma_tf32_m16n8k8(float d[4], const float a[4], const float b[2], const float c[4])
{
#ifdef PC_EMULATOR
    pc_emulator::mma_tf32(__LINE__, d, a, b, c);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])), "r"(__float_as_uint(a[3])),
                   "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// Tensor cores, bf16 (sm_80 and later): one warp computes D = A·B + C for A 16×16 and B 16×8 in bf16, C and D
// 16×8 in float32, from fragments laid out as the PTX ISA has them for mma.m16n8k16 .bf16. Each 32-bit register
// holds two bf16, the one with the smaller column (A) or row (B) index in its low half. With g = lane / 4 and
// t = lane % 4:  a = {A[g][2t..2t+1], A[g+8][2t..2t+1], A[g][2t+8..2t+9], A[g+8][2t+8..2t+9]},
// b = {B[2t..2t+1][g], B[2t+8..2t+9][g]},  c, d as for mma_tf32_m16n8k8. Every lane of the warp must call it
// together. Two adjacent 16×8 accumulators (columns 0-7 and 8-15) are exactly the A fragment of the next product's
// 16 columns once packed with pack_bf16x2: {c0,c1}, {c2,c3} of the first, then of the second.
__device__ __forceinline__ void mma_bf16_m16n8k16(float d[4], const unsigned int a[4], const unsigned int b[2], const float c[4])
{
#ifdef PC_EMULATOR
    pc_emulator::mma_bf16(__LINE__, d, a, b, c);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                   "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// lo and hi rounded to bf16 (to nearest even; NaN stays NaN) and packed into one register, lo in the low half.
__device__ __forceinline__ unsigned int pack_bf16x2(float lo, float hi)
{
#ifdef PC_EMULATOR
    return pc_emulator::pack_bf16x2(lo, hi);
#else
    unsigned int packed;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(packed) : "f"(hi), "f"(lo));
    return packed;
#endif
}

// bf16 as stored: the upper half of a float32. Widening is exact; narrowing rounds to nearest even (NaN stays NaN).
__device__ __forceinline__ float bf16_to_float(unsigned short b)
{
    return __int_as_float((int)((unsigned int)b << 16));
}

__device__ __forceinline__ unsigned short float_to_bf16(float x)
{
#ifdef PC_EMULATOR
    return (unsigned short)pc_emulator::to_bf16_bits(x);
#else
    unsigned short b;
    asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(b) : "f"(x));
    return b;
#endif
}

// Activations in storage: float32, or bf16 in a file compiled with -DPC_STORE_BF16=1 (mixed precision). Kernels
// read them with load_act and write them with store_act; their arithmetic stays float32 either way.
#if PC_STORE_BF16
typedef unsigned short act;
#else
typedef float act;
#endif

__device__ __forceinline__ float load_act(const float* p)
{
    return *p;
}

__device__ __forceinline__ float load_act(const unsigned short* p)
{
    return bf16_to_float(*p);
}

__device__ __forceinline__ void store_act(float* p, float v)
{
    *p = v;
}

__device__ __forceinline__ void store_act(unsigned short* p, float v)
{
    *p = float_to_bf16(v);
}

// x rounded to TF32 (10 mantissa bits, to nearest, ties away from zero), as the tensor cores' inputs should be:
// given a plain float32 they would ignore its low 13 bits, a truncation.
__device__ __forceinline__ float to_tf32(float x)
{
#ifdef PC_EMULATOR
    return pc_emulator::to_tf32(x);
#else
    unsigned int bits;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(x));
    return __uint_as_float(bits);
#endif
}
