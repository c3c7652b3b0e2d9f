// layernorm_backward.cu: gradients of LayerNorm (see layernorm_forward.cu) from the saved μ and rstd.
//
//   x̂ = (x - μ)·rstd        g = dy·γ
//   dx[r,c] = rstd_r · (g[c] - mean_c(g) - x̂[c] · mean_c(g·x̂))        (added to dx when accumulate ≠ 0)
//   dγ[c] = Σ_r dy[r,c]·x̂[r,c]        dβ[c] = Σ_r dy[r,c]
//
// With groups (branches batched, see layernorm_forward.cu), group g's rows use γ row g and give dγ, dβ row g.
// layernorm_backward_dx: one warp per row, as the forward (block = 32·W, grid = ceil(rows / W)).
// layernorm_backward_params_partial: dγ and dβ in two deterministic steps. Block (bx, by, g) sums columns
// 32·bx … 32·bx+31 over group g's rows [by·R, (by+1)·R) into partial[g·B + by, c] (block = 32 threads, one
// column each, so a warp reads 32 consecutive floats of a row; grid = (ceil(C/32), B = ceil(group_rows/R),
// groups)). sum_rows_finish in reductions.cu then adds each group's partials in row-block order.
#include "common.cuh"

extern "C" __global__ void layernorm_backward_dx(
    const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ gamma,
    const float* __restrict__ mean, const float* __restrict__ rstd, int rows, int cols, int group_rows, int accumulate,
    float* __restrict__ dx)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= rows)
        return;
    gamma += row / group_rows * cols;
    const long long offset = (long long)row * cols;
    const float mu = mean[row];
    const float rs = rstd[row];

    float sum_g = 0.0f;
    float sum_gx = 0.0f;
    for (int c = lane; c < cols; c += PC_WARP)
    {
        const float g = dy[offset + c] * gamma[c];
        sum_g += g;
        sum_gx += g * (x[offset + c] - mu) * rs;
    }
    const float mean_g = warp_sum(sum_g) / cols;
    const float mean_gx = warp_sum(sum_gx) / cols;

    for (int c = lane; c < cols; c += PC_WARP)
    {
        const float xhat = (x[offset + c] - mu) * rs;
        const float d = rs * (dy[offset + c] * gamma[c] - mean_g - xhat * mean_gx);
        // __fadd_rn: an accumulating launch adds the finished d, as a separate add would; a contracted
        // fma(rs, …, dx) would round once less and make the result depend on whether the gradient accumulated.
        dx[offset + c] = accumulate ? __fadd_rn(dx[offset + c], d) : d;
    }
}

extern "C" __global__ void layernorm_backward_params_partial(
    const float* __restrict__ dy, const float* __restrict__ x,
    const float* __restrict__ mean, const float* __restrict__ rstd,
    int group_rows, int cols, int rows_per_block,
    float* __restrict__ partial_gamma, float* __restrict__ partial_beta)
{
    const int c = blockIdx.x * PC_WARP + threadIdx.x;
    if (c >= cols)
        return;
    const long long group_first = (long long)blockIdx.z * group_rows;
    const long long first = group_first + (long long)blockIdx.y * rows_per_block;
    const long long last = min(first + rows_per_block, group_first + group_rows);
    float sum_gamma = 0.0f;
    float sum_beta = 0.0f;
    for (long long r = first; r < last; ++r)
    {
        const long long i = r * cols + c;
        sum_gamma += dy[i] * (x[i] - mean[r]) * rstd[r];
        sum_beta += dy[i];
    }
    const long long slot = ((long long)blockIdx.z * gridDim.y + blockIdx.y) * cols + c;
    if (partial_gamma)
        partial_gamma[slot] = sum_gamma;
    if (partial_beta)
        partial_beta[slot] = sum_beta;
}
