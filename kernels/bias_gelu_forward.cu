// bias_gelu_forward.cu: the MLP epilogue, y[r,c] = gelu(x[r,c] + b[c]) with the exact (erf) GELU of
// common.cuh; bias may be null. With groups (branches batched), the rows of group g add bias row g: the
// elements come in groups of group_elems, bias is [groups, cols] (group_elems = n for one group).
// x and y are activations (`act`: float32, or bf16 built with -DPC_STORE_BF16=1); bias stays float32.
// Launch: grid-stride over all rows·cols elements; block = 256, grid = min(ceil(n/256), 32·SMs).
#include "common.cuh"

extern "C" __global__ void bias_gelu_forward(const act* __restrict__ x, const float* __restrict__ bias, long long n, int cols, long long group_elems, act* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const float v = load_act(x + i);
        store_act(y + i, gelu(bias ? v + bias[group_param(i, cols, group_elems)] : v));
    }
}
