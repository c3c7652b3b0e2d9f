// cross_entropy.cu: softmax cross-entropy per row of logits [N, K] with integer labels.
//
//   forward:  loss[r] = log Σ_k exp(z[r,k]) - z[r, y_r]      (computed as m + log Σ exp(z - m), m = max_k z)
//   backward: dz[r,k] = g · (softmax(z[r])[k] - [k = y_r]),  g = dloss[0] · scale
//
// dloss is the gradient of the scalar that the per-row losses were reduced to (a mean passes scale = 1/N),
// read on the device so no host round trip is needed. Datasets check their labels when they load; a label
// outside [0, K) that got here anyway gives a NaN loss and NaN gradients (which stop training), never a read
// outside the row.
// Launch: one warp per row; block = 32·W threads, grid = ceil(N / W).
#include "common.cuh"

__device__ __forceinline__ void row_max_and_sum(const float* z, int classes, int lane, float* max_out, float* sum_out)
{
    float m = -3.402823466e38f;
    for (int k = lane; k < classes; k += PC_WARP)
        m = fmaxf(m, z[k]);
    m = warp_max(m);
    float s = 0.0f;
    for (int k = lane; k < classes; k += PC_WARP)
        s += expf(z[k] - m);
    *max_out = m;
    *sum_out = warp_sum(s);
}

extern "C" __global__ void cross_entropy_forward(const float* __restrict__ logits, const int* __restrict__ labels, int rows, int classes, float* __restrict__ losses)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= rows)
        return;
    const float* z = logits + (long long)row * classes;
    float m;
    float s;
    row_max_and_sum(z, classes, lane, &m, &s);
    const int label = labels[row];
    if (lane == 0)
        losses[row] = label >= 0 && label < classes ? m + logf(s) - z[label] : __int_as_float(0x7fc00000);
}

extern "C" __global__ void cross_entropy_backward(const float* __restrict__ logits, const int* __restrict__ labels, const float* __restrict__ dloss, float scale, int rows, int classes, float* __restrict__ dlogits)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= rows)
        return;
    const float* z = logits + (long long)row * classes;
    float* dz = dlogits + (long long)row * classes;
    float m;
    float s;
    row_max_and_sum(z, classes, lane, &m, &s);
    const int label = labels[row];
    const float g = label >= 0 && label < classes ? dloss[0] * scale : __int_as_float(0x7fc00000);
    for (int k = lane; k < classes; k += PC_WARP)
        dz[k] = g * (expf(z[k] - m) / s - (k == label ? 1.0f : 0.0f));
}
