// layernorm_forward.cu: LayerNorm over the last dimension, keeping the statistics backward needs.
//
//   μ_r = (1/C) Σ_c x[r,c]        σ²_r = (1/C) Σ_c (x[r,c] - μ_r)²        rstd_r = 1/√(σ²_r + ε)
//   y[r,c] = (x[r,c] - μ_r) · rstd_r · γ[c] + β[c]
//
// Two passes over the row (mean, then squared deviations), as the CPU reference, to avoid the cancellation
// of E[x²] - E[x]²; the second pass reads the row from L1/L2.
// With a residual (fused into the add before it), x + residual is written to sum and normalised: the same
// numbers as the add and the LayerNorm one after another, in one pass over memory.
// With groups (a ParaFormer's branches batched), the rows come in groups of group_rows and group g normalises with
// γ and β row g of [groups, cols]; group_rows = rows for one group.
// Launch: one warp per row; block = 32·W threads (W warps, W rows), grid = ceil(rows / W).
#include "common.cuh"

extern "C" __global__ void layernorm_forward(
    const float* x, const float* __restrict__ residual, const float* __restrict__ gamma, const float* __restrict__ beta,
    float eps, int rows, int cols, int group_rows,
    float* sum_out, float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= rows)
        return;
    if (residual)
    {
        // Each lane writes the elements it reads back below: no other thread touches them.
        for (int c = lane; c < cols; c += PC_WARP)
            sum_out[row * cols + c] = x[row * cols + c] + residual[row * cols + c];
        x = sum_out;
    }
    gamma += row / group_rows * cols;
    beta += row / group_rows * cols;
    const float* xr = x + (long long)row * cols;
    float* yr = y + (long long)row * cols;

    float sum = 0.0f;
    for (int c = lane; c < cols; c += PC_WARP)
        sum += xr[c];
    const float mu = warp_sum(sum) / cols;

    float squares = 0.0f;
    for (int c = lane; c < cols; c += PC_WARP)
    {
        const float d = xr[c] - mu;
        squares += d * d;
    }
    const float rs = 1.0f / sqrtf(warp_sum(squares) / cols + eps);

    for (int c = lane; c < cols; c += PC_WARP)
        yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    if (lane == 0)
    {
        mean[row] = mu;
        rstd[row] = rs;
    }
}
