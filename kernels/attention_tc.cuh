// attention_tc.cuh: what the tensor-core attention kernels share (attention_forward_tc.cu,
// attention_backward_tc.cu): tile sizes, staging a tile of rows into shared memory, and a warp's A fragments.
//
// A block works on 64 rows of one (b, h) (queries or keys, 16 per warp) against the other side's rows in tiles
// of 64, staged in shared memory as TF32 with rows padded to Dh + 4 floats: a fragment read (row g, column t)
// or (row 2t, column g) by the 32 lanes then touches 32 different banks.
//
// A product over the 8 rows of a tile step (P·V, Pᵀ·dO, dS·K, dSᵀ·Q) takes its A operand straight from the
// accumulator fragment of the scores without a shuffle: a lane holds columns 2t and 2t+1 of the accumulator,
// and A's column t and t+4, so the product runs over the step's rows in the order (0, 2, 4, 6, 1, 3, 5, 7):
// A = {c0, c2, c1, c3}, and the B operand reads rows 2t and 2t+1 (tc_permuted_b). A sum over rows does not
// care about their order.
#pragma once
#include "common.cuh"

#define TC_ROWS 64
#define TC_STRIDE (PC_HEAD_DIM + 4)
#define TC_STEPS (PC_HEAD_DIM / 8)
#define TC_NEG_INF __int_as_float(0xff800000)
#define TC_LOG2E 1.4426950408889634f // scores are kept in log2 units: exp(s) = exp2(s·log2(e))
#define TC_LN2 0.69314718055994531f
static_assert(PC_HEAD_DIM % 8 == 0 && PC_HEAD_DIM <= 128, "the tensor-core attention takes head dims that are multiples of 8 up to 128");

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

// Rows first .. first + 63 of a [tokens, Dh] matrix whose rows are `stride` floats apart, into `tile` as TF32;
// rows past the end become zeros.
__device__ __forceinline__ void tc_stage(float* tile, const float* rows, long long stride, int first, int tokens)
{
    for (int e = threadIdx.x; e < TC_ROWS * PC_HEAD_DIM; e += blockDim.x)
    {
        const int r = e / PC_HEAD_DIM;
        const int d = e % PC_HEAD_DIM;
        tile[r * TC_STRIDE + d] = first + r < tokens ? to_tf32(rows[(long long)(first + r) * stride + d]) : 0.0f;
    }
}

// The A fragments, times `scale` and as TF32, of rows r0 and r0 + 8 of a [tokens, Dh] matrix (r0 = this warp's
// first row + g), one per 8-wide step over Dh; rows past the end are zeros.
__device__ __forceinline__ void tc_row_fragments(float (&a)[TC_STEPS][4], const float* rows, long long stride, int r0, int tokens, float scale)
{
    const int t = lane_id() % 4;
    const int r1 = r0 + 8;
#pragma unroll
    for (int kk = 0; kk < TC_STEPS; ++kk)
    {
        const int d = kk * 8 + t;
        a[kk][0] = r0 < tokens ? to_tf32(rows[r0 * stride + d] * scale) : 0.0f;
        a[kk][1] = r1 < tokens ? to_tf32(rows[r1 * stride + d] * scale) : 0.0f;
        a[kk][2] = r0 < tokens ? to_tf32(rows[r0 * stride + d + 4] * scale) : 0.0f;
        a[kk][3] = r1 < tokens ? to_tf32(rows[r1 * stride + d + 4] * scale) : 0.0f;
    }
}

// acc (16 × 8 columns n·8 ..) = A (16 × Dh, fragments a) · tileᵀ: the tile's rows are the columns.
__device__ __forceinline__ void tc_times_tile_transposed(float acc[4], const float (&a)[TC_STEPS][4], const float* tile, int n)
{
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
    acc[0] = acc[1] = acc[2] = acc[3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < TC_STEPS; ++kk)
    {
        const float* row = tile + (n * 8 + g) * TC_STRIDE + kk * 8 + t;
        const float b[2] = {row[0], row[4]};
        mma_tf32_m16n8k8(acc, a[kk], b, acc);
    }
}

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

// Writes rows r0 and r0 + 8 (when inside) of a 16 × Dh accumulator, times scale0 and scale1, into a [tokens, Dh]
// matrix whose rows are `stride` floats apart.
__device__ __forceinline__ void tc_store_rows(float* rows, long long stride, const float (&acc)[TC_STEPS][4], int r0, int tokens, float scale0, float scale1)
{
    const int t = lane_id() % 4;
#pragma unroll
    for (int half = 0; half < 2; ++half)
    {
        const int r = r0 + 8 * half;
        if (r >= tokens)
            continue;
        float* row = rows + r * stride + 2 * t;
        const float scale = half == 0 ? scale0 : scale1;
#pragma unroll
        for (int dn = 0; dn < TC_STEPS; ++dn)
        {
            row[dn * 8] = acc[dn][2 * half] * scale;
            row[dn * 8 + 1] = acc[dn][2 * half + 1] * scale;
        }
    }
}
