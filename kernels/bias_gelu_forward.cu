// bias_gelu_forward.cu: the MLP epilogue, y[r,c] = gelu(x[r,c] + b[c]) with the exact (erf) GELU of
// common.cuh; bias may be null.
// Launch: grid-stride over all rows·cols elements; block = 256, grid = min(ceil(n/256), 32·SMs).
#include "common.cuh"

extern "C" __global__ void bias_gelu_forward(const float* __restrict__ x, const float* __restrict__ bias, long long n, int cols, float* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = gelu(bias ? x[i] + bias[i % cols] : x[i]);
}
