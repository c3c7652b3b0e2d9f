// attention_tc.cuh: what the tensor-core attention kernels share (attention_forward_tc.cu,
// attention_backward_tc.cu): tile sizes, staging a tile of rows into shared memory, and a warp's A fragments,
// in TF32 (mma m16n8k8) or, compiled with PC_BF16, in bf16 (mma m16n8k16: twice the rate, 8 mantissa bits).
//
// A block works on 64 rows of one (b, h) (queries or keys, 16 per warp) against the other side's rows in tiles
// of 64 staged in shared memory. TF32: as floats rounded to TF32, rows padded to Dh + 4 floats, so that a
// fragment read (row g, column t) or (row 2t, column g) by the 32 lanes touches 32 different banks; one tile
// serves both as B = tileᵀ (scores) and B = tile (the products over its rows). bf16: as bf16 pairs, one 32-bit
// word per B register: by rows (pairs along Dh, rows padded to Dh/2 + 4 words) for B = tileᵀ, and by columns
// (pairs along the tile's rows, Dh rows of 32 + 4 words) for B = tile; again 32 banks per fragment read.
//
// A product over the rows of tile steps (P·V, Pᵀ·dO, dS·K, dSᵀ·Q) takes its A operand straight from the
// accumulator fragments of the scores without a shuffle, two 8-row steps at a time (tc_accumulate_pair).
// TF32: a lane holds columns 2t and 2t+1 of an accumulator and A's columns t and t+4, so each step's product
// runs over its rows in the order (0, 2, 4, 6, 1, 3, 5, 7): A = {c0, c2, c1, c3}, and B reads rows 2t and 2t+1.
// A sum over rows does not care about their order. bf16: A's layout packs columns 2t and 2t+1 in one register,
// so the two steps' accumulators are A as they are: {c0 c1, c2 c3} of the first, then of the second.
#pragma once
#include "common.cuh"

#define TC_ROWS 64
#define TC_STRIDE (PC_HEAD_DIM + 4)
#define TC_STEPS (PC_HEAD_DIM / 8)
#define TC_NEG_INF __int_as_float(0xff800000)
#define TC_LOG2E 1.4426950408889634f // scores are kept in log2 units: exp(s) = exp2(s·log2(e))
#define TC_LN2 0.69314718055994531f
static_assert(PC_HEAD_DIM % 8 == 0 && PC_HEAD_DIM <= 128, "the tensor-core attention takes head dims that are multiples of 8 up to 128");

#if PC_BF16
static_assert(PC_HEAD_DIM % 16 == 0, "the bf16 attention takes head dims that are multiples of 16");
#define TC_K 16
typedef unsigned int TcOperand;                        // two bf16
#define TC_WORDS (PC_HEAD_DIM / 2 + 4)                 // a by-rows tile's row, in words
#define TC_COLUMN_WORDS (TC_ROWS / 2 + 4)              // a by-columns tile's row (one of Dh), in words
#define TC_ROWS_TILE (TC_ROWS * TC_WORDS)              // words of a tile by rows
#define TC_COLUMNS_TILE (PC_HEAD_DIM * TC_COLUMN_WORDS) // words of a tile by columns
#else
#define TC_K 8
typedef float TcOperand; // one TF32
#define TC_ROWS_TILE (TC_ROWS * TC_STRIDE)
#endif
#define TC_KSTEPS (PC_HEAD_DIM / TC_K) // A fragments per 16 rows × Dh

// Where a block's (b, h) lives (blockIdx.y = b·H + h) and which rows this lane holds.
struct TcHead
{
    long long qkv;       // offset of (b, token 0, h)'s q in qkv; its k at + dim, its v at + 2·dim
    long long rows;      // offset of (b, token 0, h) in out and dout: rows `dim` apart
    long long head_rows; // offset of (b, h, token 0) in lse and delta
    long long stride;    // between tokens in qkv: 3·dim
    int dim;             // H·Dh
    int r0;              // this lane's rows of the block's 64: r0 and r0 + 8
    bool working;        // the warp's first row is inside; a warp wholly past the end only helps stage tiles
};

__device__ __forceinline__ TcHead tc_head(int tokens, int heads)
{
    TcHead head;
    const int h = blockIdx.y % heads;
    const long long b = blockIdx.y / heads;
    head.dim = heads * PC_HEAD_DIM;
    head.stride = 3LL * head.dim;
    head.qkv = b * tokens * head.stride + h * PC_HEAD_DIM;
    head.rows = b * tokens * head.dim + h * PC_HEAD_DIM;
    head.head_rows = (long long)blockIdx.y * tokens;
    const int first = blockIdx.x * TC_ROWS + threadIdx.x / PC_WARP * 16;
    head.r0 = first + lane_id() / 4;
    head.working = first < tokens;
    return head;
}

// A 16 × Dh accumulator, zeroed.
__device__ __forceinline__ void tc_zero(float (&acc)[TC_STEPS][4])
{
#pragma unroll
    for (int n = 0; n < TC_STEPS; ++n)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
}

#if PC_BF16
// Rows first .. first + 63 of a [tokens, Dh] matrix whose rows are `stride` floats apart, as bf16 pairs along Dh
// (the B operand of a product with the tile transposed); rows past the end become zeros.
__device__ __forceinline__ void tc_stage_rows(TcOperand* tile, const act* rows, long long stride, int first, int tokens)
{
    for (int e = threadIdx.x; e < TC_ROWS * PC_HEAD_DIM / 2; e += blockDim.x)
    {
        const int r = e / (PC_HEAD_DIM / 2);
        const int w = e % (PC_HEAD_DIM / 2);
        const act* x = rows + (long long)(first + r) * stride + 2 * w;
#if PC_STORE_BF16
        // Stored bf16 pairs are already the packed register (offsets and strides are even: 4-byte aligned).
        tile[r * TC_WORDS + w] = first + r < tokens ? *reinterpret_cast<const unsigned int*>(x) : 0u;
#else
        tile[r * TC_WORDS + w] = first + r < tokens ? pack_bf16x2(x[0], x[1]) : 0u;
#endif
    }
}

// The same rows as bf16 pairs along the rows, one tile row per column of the matrix (the B operand of a
// product over the tile's rows).
__device__ __forceinline__ void tc_stage_columns(TcOperand* tile, const act* rows, long long stride, int first, int tokens)
{
    for (int e = threadIdx.x; e < TC_ROWS / 2 * PC_HEAD_DIM; e += blockDim.x)
    {
        const int d = e % PC_HEAD_DIM;
        const int w = e / PC_HEAD_DIM;
        const int r = first + 2 * w;
        const float lo = r < tokens ? load_act(rows + (long long)r * stride + d) : 0.0f;
        const float hi = r + 1 < tokens ? load_act(rows + (long long)(r + 1) * stride + d) : 0.0f;
        tile[d * TC_COLUMN_WORDS + w] = pack_bf16x2(lo, hi);
    }
}
#else
// Rows first .. first + 63 of a [tokens, Dh] matrix whose rows are `stride` floats apart, into `tile` as TF32;
// rows past the end become zeros. The one layout serves both products.
__device__ __forceinline__ void tc_stage_rows(TcOperand* tile, const act* rows, long long stride, int first, int tokens)
{
    for (int e = threadIdx.x; e < TC_ROWS * PC_HEAD_DIM; e += blockDim.x)
    {
        const int r = e / PC_HEAD_DIM;
        const int d = e % PC_HEAD_DIM;
        tile[r * TC_STRIDE + d] = first + r < tokens ? to_tf32(load_act(rows + (long long)(first + r) * stride + d)) : 0.0f;
    }
}
#endif

// The A fragments, times `scale`, of rows r0 and r0 + 8 of a [tokens, Dh] matrix (r0 = this warp's first row +
// g), one per TC_K-wide step over Dh; rows past the end are zeros.
__device__ __forceinline__ void tc_row_fragments(TcOperand (&a)[TC_KSTEPS][4], const act* rows, long long stride, int r0, int tokens, float scale)
{
    const int t = lane_id() % 4;
    const int r1 = r0 + 8;
    auto at = [&](int r, int d) { return r < tokens ? load_act(rows + r * stride + d) * scale : 0.0f; };
#pragma unroll
    for (int kk = 0; kk < TC_KSTEPS; ++kk)
    {
#if PC_BF16
        const int d = kk * 16 + 2 * t;
        a[kk][0] = pack_bf16x2(at(r0, d), at(r0, d + 1));
        a[kk][1] = pack_bf16x2(at(r1, d), at(r1, d + 1));
        a[kk][2] = pack_bf16x2(at(r0, d + 8), at(r0, d + 9));
        a[kk][3] = pack_bf16x2(at(r1, d + 8), at(r1, d + 9));
#else
        const int d = kk * 8 + t;
        a[kk][0] = to_tf32(at(r0, d));
        a[kk][1] = to_tf32(at(r1, d));
        a[kk][2] = to_tf32(at(r0, d + 4));
        a[kk][3] = to_tf32(at(r1, d + 4));
#endif
    }
}

// acc (16 × 8 columns n·8 ..) = A (16 × Dh, fragments a) · tileᵀ: the tile's rows are the columns.
__device__ __forceinline__ void tc_times_tile_transposed(float acc[4], const TcOperand (&a)[TC_KSTEPS][4], const TcOperand* tile, int n)
{
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
    acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < TC_KSTEPS; ++kk)
    {
#if PC_BF16
        const unsigned int* row = tile + (n * 8 + g) * TC_WORDS + kk * 8 + t; // a by-rows tile
        const unsigned int b[2] = {row[0], row[4]};
        mma_bf16_m16n8k16(acc, a[kk], b, acc);
#else
        const float* row = tile + (n * 8 + g) * TC_STRIDE + kk * 8 + t;
        const float b[2] = {row[0], row[4]};
        mma_tf32_m16n8k8(acc, a[kk], b, acc);
#endif
    }
}

// The backward's two products for tile steps n and n + 1: s = a · a_tileᵀ (scores) and dp = b · b_tileᵀ (dP). A step
// wholly past the end (first + its rows ≥ tokens) is skipped and keeps the zeros the caller gave it.
__device__ __forceinline__ void tc_two_steps(float (&s)[2][4], float (&dp)[2][4], const TcOperand (&a)[TC_KSTEPS][4], const TcOperand* a_tile,
                                             const TcOperand (&b)[TC_KSTEPS][4], const TcOperand* b_tile, int n, int first, int tokens)
{
#pragma unroll
    for (int h = 0; h < 2; ++h)
    {
        if (first + (n + h) * 8 >= tokens)
            break;
        tc_times_tile_transposed(s[h], a, a_tile, n + h);
        tc_times_tile_transposed(dp[h], b, b_tile, n + h);
    }
}

#if !PC_BF16
// out (16 × Dh) += C · tile rows n·8 .. n·8 + 7, where c is a 16 × 8 accumulator fragment (see the permutation above).
__device__ __forceinline__ void tc_accumulate_times_tile(float (&out)[TC_STEPS][4], const float c[4], const float* tile, int n)
{
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
    const float a[4] = {to_tf32(c[0]), to_tf32(c[2]), to_tf32(c[1]), to_tf32(c[3])};
    const float* row = tile + (n * 8 + 2 * t) * TC_STRIDE + g;
#pragma unroll
    for (int dn = 0; dn < TC_STEPS; ++dn)
    {
        const float b[2] = {row[dn * 8], row[TC_STRIDE + dn * 8]};
        mma_tf32_m16n8k8(out[dn], a, b, out[dn]);
    }
}
#endif

// out (16 × Dh) += [C D] · tile rows n·8 .. n·8 + 15, where c and d are the 16 × 8 accumulator fragments of tile
// steps n and n + 1 (zeros for a step past the end, whose staged rows are zeros too). bf16: a by-columns tile.
__device__ __forceinline__ void tc_accumulate_pair(float (&out)[TC_STEPS][4], const float c[4], const float d[4], const TcOperand* tile, int n)
{
#if PC_BF16
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
    const unsigned int a[4] = {pack_bf16x2(c[0], c[1]), pack_bf16x2(c[2], c[3]), pack_bf16x2(d[0], d[1]), pack_bf16x2(d[2], d[3])};
    const unsigned int* column = tile + g * TC_COLUMN_WORDS + n * 4 + t;
#pragma unroll
    for (int dn = 0; dn < TC_STEPS; ++dn)
    {
        const unsigned int b[2] = {column[dn * 8 * TC_COLUMN_WORDS], column[dn * 8 * TC_COLUMN_WORDS + 4]};
        mma_bf16_m16n8k16(out[dn], a, b, out[dn]);
    }
#else
    tc_accumulate_times_tile(out, c, tile, n);
    tc_accumulate_times_tile(out, d, tile, n + 1);
#endif
}

// Writes rows r0 and r0 + 8 (when inside) of a 16 × Dh accumulator, times scale0 and scale1, into a [tokens, Dh]
// matrix whose rows are `stride` floats apart.
__device__ __forceinline__ void tc_store_rows(act* rows, long long stride, const float (&acc)[TC_STEPS][4], int r0, int tokens, float scale0, float scale1)
{
    const int t = lane_id() % 4;
#pragma unroll
    for (int half = 0; half < 2; ++half)
    {
        const int r = r0 + 8 * half;
        if (r >= tokens)
            continue;
        act* row = rows + r * stride + 2 * t;
        const float scale = half == 0 ? scale0 : scale1;
#pragma unroll
        for (int dn = 0; dn < TC_STEPS; ++dn)
        {
            store_act(row + dn * 8, acc[dn][2 * half] * scale);
            store_act(row + dn * 8 + 1, acc[dn][2 * half + 1] * scale);
        }
    }
}
