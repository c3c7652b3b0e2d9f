// bias_gelu_backward.cu: dx[r,c] = dy[r,c] · gelu'(x[r,c] + b[c]) (see common.cuh for gelu').
// The bias gradient db[c] = Σ_r dx[r,c] is then two launches of reductions.cu (sum_rows_partial,
// sum_rows_finish) over dx, deterministic and honouring accumulate.
// Launch: grid-stride, as bias_gelu_forward.
#include "common.cuh"

extern "C" __global__ void bias_gelu_backward(const float* __restrict__ x, const float* __restrict__ bias, const float* __restrict__ dy, long long n, int cols, long long group_elems, float* __restrict__ dx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dx[i] = dy[i] * gelu_grad(bias ? x[i] + bias[group_param(i, cols, group_elems)] : x[i]);
}
