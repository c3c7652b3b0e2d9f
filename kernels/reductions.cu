// reductions.cu: deterministic sums that several ops share.
//
// sum_rows_partial: partial[b, c] = Σ_{r ∈ [b·R, (b+1)·R)} x[r, c]  (the column sums of a block of R rows).
//   Block = 32 threads, one column each; grid = (ceil(C/32), ceil(rows/R)).
// sum_rows_finish: out[c] = (accumulate ? out[c] : 0) + Σ_b partial[b, c], b in increasing order.
//   Used for bias gradients (SumRows), dγ/dβ of LayerNorm, dbias of bias+GELU.
//   Block = 256 threads, one column each; grid = ceil(C/256).
// sum_squares_partial / sum_squares_finish: Σ x² over many tensors in one launch each (global grad norm):
//   block b of the partial kernel covers elements [b·E, (b+1)·E) of the tensor whose block range holds b
//   (first_block is the exclusive prefix sum of each tensor's block count) and writes one partial; the
//   finish kernel adds the partials in block order and writes √Σ. Block = 256 threads.
// scale_by_norm: every tensor x *= min(1, max_norm / (norm + 1e-6)), reading norm on the device so
//   clipping needs no host round trip (ClipByNorm). Same block layout as sum_squares_partial.
#include "common.cuh"

extern "C" __global__ void sum_rows_partial(const float* __restrict__ x, int rows, int cols, int rows_per_block, float* __restrict__ partial)
{
    const int c = blockIdx.x * PC_WARP + threadIdx.x;
    if (c >= cols)
        return;
    const int first = blockIdx.y * rows_per_block;
    const int last = min(first + rows_per_block, rows);
    float sum = 0.0f;
    for (int r = first; r < last; ++r)
        sum += x[(long long)r * cols + c];
    partial[(long long)blockIdx.y * cols + c] = sum;
}

extern "C" __global__ void sum_rows_finish(const float* __restrict__ partial, int blocks, int cols, int accumulate, float* __restrict__ out)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols)
        return;
    float sum = accumulate ? out[c] : 0.0f;
    for (int b = 0; b < blocks; ++b)
        sum += partial[(long long)b * cols + c];
    out[c] = sum;
}

// One tensor of a multi-tensor launch: its data, its length and the first block that works on it.
struct TensorSlice
{
    float* data;
    long long count;
    int first_block;
    int pad;
};

extern "C" __global__ void sum_squares_partial(const TensorSlice* __restrict__ slices, int tensors, long long elements_per_block, float* __restrict__ partial)
{
    const TensorSlice s = slice_of_block(slices, tensors, blockIdx.x);
    const long long first = (long long)(blockIdx.x - s.first_block) * elements_per_block;
    const long long last = min(first + elements_per_block, s.count);
    float sum = 0.0f;
    for (long long i = first + threadIdx.x; i < last; i += blockDim.x)
        sum += s.data[i] * s.data[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = sum;
}

extern "C" __global__ void sum_squares_finish(const float* __restrict__ partial, int blocks, float* __restrict__ norm)
{
    // One block; thread t adds partials t, t + blockDim, … in order, then a fixed-shape tree combines them.
    float sum = 0.0f;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
        sum += partial[b];
    sum = block_sum(sum);
    if (threadIdx.x == 0)
        norm[0] = sqrtf(sum);
}

extern "C" __global__ void scale_by_norm(const TensorSlice* __restrict__ slices, int tensors, long long elements_per_block, const float* __restrict__ norm, float max_norm)
{
    const float coefficient = max_norm / (norm[0] + 1e-6f);
    if (coefficient >= 1.0f)
        return;
    const TensorSlice s = slice_of_block(slices, tensors, blockIdx.x);
    const long long first = (long long)(blockIdx.x - s.first_block) * elements_per_block;
    const long long last = min(first + elements_per_block, s.count);
    for (long long i = first + threadIdx.x; i < last; i += blockDim.x)
        s.data[i] *= coefficient;
}
