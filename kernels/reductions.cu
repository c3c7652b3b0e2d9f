// reductions.cu: deterministic sums that several ops share.
//
// sum_rows_partial: the rows come in groups of G (one group: all rows; several: a ParaFormer's branches batched,
//   each summed on its own). partial[g·B + b, c] = Σ_{r ∈ group g's rows [b·R, (b+1)·R)} x[r·stride + c] (the
//   column sums of a block of R rows; stride = cols for a dense matrix, larger to sum a column slice such as
//   token 0 of every image). Blocks never straddle groups, so a group's sums are those it would have alone.
//   Block = 32 threads, one column each; grid = (ceil(C/32), B = ceil(G/R), groups). x is an activation
//   (float32, or bf16 built with -DPC_STORE_BF16=1); the sums are float32.
// sum_rows_finish: out[g, c] = (accumulate ? out[g, c] : 0) + Σ_b partial[g·B + b, c], b in increasing order.
//   Used for bias gradients (SumRows), dγ/dβ of LayerNorm, dbias of bias+GELU, dcls and dpos of the tokens.
//   Block = 256 threads, one column each; grid = ceil(C/256).
// sum_partial / sum_finish: Σ x or Σ x² over one or many tensors, one launch each: block b of the partial
//   kernel covers elements [b·E, (b+1)·E) of the tensor whose block range holds b (see slice_of_block in
//   common.cuh) and writes one partial; the finish kernel (one block) adds the partials in block order and
//   writes scale·Σ or √Σ (SumAll). Block = 256 threads.
// sum_slices_finish: each tensor's own total, *out of its slice = Σ of its blocks' partials in order, one
//   thread per tensor (SumOfSquares): a tensor's sum is the same whichever tensors share the launch.
// scale_by_norm: every tensor x *= min(1, max_norm / (norm + 1e-6)), reading norm on the device so
//   clipping needs no host round trip (ClipByNorm). Same block layout as sum_partial.
#include "common.cuh"

extern "C" __global__ void sum_rows_partial(const act* __restrict__ x, int group_rows, int cols, long long row_stride, int rows_per_block, float* __restrict__ partial)
{
    const int c = blockIdx.x * PC_WARP + threadIdx.x;
    if (c >= cols)
        return;
    const long long group_first = (long long)blockIdx.z * group_rows;
    const long long first = group_first + (long long)blockIdx.y * rows_per_block;
    const long long last = min(first + rows_per_block, group_first + group_rows);
    float sum = 0.0f;
    for (long long r = first; r < last; ++r)
        sum += load_act(x + r * row_stride + c);
    partial[((long long)blockIdx.z * gridDim.y + blockIdx.y) * cols + c] = sum;
}

extern "C" __global__ void sum_rows_finish(const float* __restrict__ partial, int blocks, int cols, int groups, int accumulate, float* __restrict__ out)
{
    const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= (long long)groups * cols)
        return;
    const long long g = i / cols;
    const int c = (int)(i % cols);
    float sum = accumulate ? out[i] : 0.0f;
    for (int b = 0; b < blocks; ++b)
        sum += partial[(g * blocks + b) * cols + c];
    out[i] = sum;
}

// One tensor of a multi-tensor launch: its data, its length, the first block that works on it, and where
// sum_slices_finish puts its total (unused by the other kernels).
struct TensorSlice
{
    float* data;
    long long count;
    int first_block;
    int pad;
    float* out;
};

extern "C" __global__ void sum_partial(const TensorSlice* __restrict__ slices, int tensors, long long elements_per_block, int squares, float* __restrict__ partial)
{
    const TensorSlice s = slice_of_block(slices, tensors, blockIdx.x);
    const long long first = (long long)(blockIdx.x - s.first_block) * elements_per_block;
    const long long last = min(first + elements_per_block, s.count);
    float sum = 0.0f;
    for (long long i = first + threadIdx.x; i < last; i += blockDim.x)
        sum += squares ? s.data[i] * s.data[i] : s.data[i];
    sum = block_sum(sum);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = sum;
}

extern "C" __global__ void sum_finish(const float* __restrict__ partial, int blocks, float scale, int square_root, float* __restrict__ out)
{
    // One block; thread t adds partials t, t + blockDim, … in order, then a fixed-shape tree combines them.
    float sum = 0.0f;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x)
        sum += partial[b];
    sum = block_sum(sum);
    if (threadIdx.x == 0)
        out[0] = square_root ? sqrtf(sum) : sum * scale;
}

extern "C" __global__ void sum_slices_finish(const float* __restrict__ partial, const TensorSlice* __restrict__ slices, int tensors, int blocks)
{
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < tensors; t += gridDim.x * blockDim.x)
    {
        const int last = t + 1 < tensors ? slices[t + 1].first_block : blocks;
        float sum = 0.0f;
        for (int b = slices[t].first_block; b < last; ++b)
            sum += partial[b];
        *slices[t].out = sum;
    }
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
