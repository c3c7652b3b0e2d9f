// dropout.cu: y[i] = u_i ≥ p ? x[i] / (1 - p) : 0, with u_i uniform in [0, 1) from Philox4x32-10.
//
// The mask is a pure function of (seed, offset, i), bit-identical to the CPU backend's (philox.cuh).
// x and y are activations (float32, or bf16 built with -DPC_STORE_BF16=1).
// Launch: grid-stride over the counter blocks, one thread per 4 elements; block = 256.
#include "philox.cuh"

extern "C" __global__ void dropout_forward(
    const act* __restrict__ x, long long n, float p, unsigned long long seed, unsigned long long offset,
    const unsigned int* __restrict__ offset_base, act* __restrict__ y)
{
    if (offset_base != nullptr)
        offset += (unsigned long long)offset_base[0] | ((unsigned long long)offset_base[1] << 32);
    const float scale = 1.0f / (1.0f - p);
    const long long blocks = (n + 3) / 4;
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; b < blocks; b += (long long)gridDim.x * blockDim.x)
    {
        const Philox4 r = philox4x32_10(seed, offset, (unsigned long long)b);
        const unsigned int words[4] = {r.x, r.y, r.z, r.w};
        for (int k = 0; k < 4; ++k)
        {
            const long long i = b * 4 + k;
            if (i < n)
                store_act(y + i, philox_uniform(words[k]) >= p ? load_act(x + i) * scale : 0.0f);
        }
    }
}
