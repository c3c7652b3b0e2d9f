// bias_gelu_forward.cu: the MLP epilogue, y[r,c] = gelu(x[r,c] + b[c]) with the exact (erf) GELU of
// common.cuh; bias may be null. With groups (branches batched), the rows of group g add bias row g: the
// elements come in groups of group_elems, bias is [groups, cols] (group_elems = n for one group).
// Launch: grid-stride over all rows·cols elements; block = 256, grid = min(ceil(n/256), 32·SMs).
#include "common.cuh"

extern "C" __global__ void bias_gelu_forward(const float* __restrict__ x, const float* __restrict__ bias, long long n, int cols, long long group_elems, float* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = gelu(bias ? x[i] + bias[group_param(i, cols, group_elems)] : x[i]);
}
