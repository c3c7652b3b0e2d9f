// branch_sum.cu: out = Σ_b x_b over the branches' token features (SumMany), added in branch order so the
// result does not depend on which branch finished first, and bit for bit as the CPU backend adds them
// (x0, then + x1, + x2, …). Up to 8 inputs travel as arguments (no pointer table to upload); the host adds
// more by further launches with accumulate = 1, which continue the same order from out.
// Launch: grid-stride over n; block = 256.
#include "common.cuh"

#define PC_BRANCH_SUM_INPUTS 8

extern "C" __global__ void branch_sum(
    const float* __restrict__ x0, const float* __restrict__ x1, const float* __restrict__ x2, const float* __restrict__ x3,
    const float* __restrict__ x4, const float* __restrict__ x5, const float* __restrict__ x6, const float* __restrict__ x7,
    int count, int accumulate, long long n, float* __restrict__ out)
{
    const float* const xs[PC_BRANCH_SUM_INPUTS] = {x0, x1, x2, x3, x4, x5, x6, x7};
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        float sum = accumulate ? out[i] + x0[i] : x0[i];
#pragma unroll
        for (int b = 1; b < PC_BRANCH_SUM_INPUTS; ++b)
            if (b < count)
                sum += xs[b][i];
        out[i] = sum;
    }
}
