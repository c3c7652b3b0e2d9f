// branch_sum.cu: out = Σ_b x_b over the branches' token features (SumMany), added in branch order so the
// result does not depend on which branch finished first.
// `inputs` is a device array of `count` pointers to tensors of n floats each.
// Launch: grid-stride over n; block = 256.
#include "common.cuh"

extern "C" __global__ void branch_sum(const float* const* __restrict__ inputs, int count, long long n, float* __restrict__ out)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float sum = 0.0f;
        for (int b = 0; b < count; ++b)
            sum += inputs[b][i];
        out[i] = sum;
    }
}
