// bias_gelu_backward.cu: dx[r,c] = dy[r,c] · gelu'(x[r,c] + b[c]) (see common.cuh for gelu').
// The bias gradient db[c] = Σ_r dx[r,c] is then two launches of reductions.cu (sum_rows_partial,
// sum_rows_finish) over dx, deterministic and honouring accumulate.
// x, dy and dx are activations (float32, or bf16 built with -DPC_STORE_BF16=1): the bias gradient sums dx as stored.
// Launch: grid-stride, as bias_gelu_forward.
#include "common.cuh"

extern "C" __global__ void bias_gelu_backward(const act* __restrict__ x, const float* __restrict__ bias, const act* __restrict__ dy, long long n, int cols, long long group_elems, act* __restrict__ dx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const float v = load_act(x + i);
        store_act(dx + i, load_act(dy + i) * gelu_grad(bias ? v + bias[group_param(i, cols, group_elems)] : v));
    }
}
