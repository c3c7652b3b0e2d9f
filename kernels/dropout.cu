// dropout.cu: y[i] = u_i ≥ p ? x[i] / (1 - p) : 0, with u_i uniform in [0, 1) from Philox4x32-10.
//
// The mask is a pure function of (seed, offset, i), bit-identical to the CPU backend's (Backends/Philox.cs):
// counter block i/4 = (c0, c1) = low and high words of i/4, (c2, c3) = low and high words of offset; key
// (k0, k1) = low and high words of seed; ten rounds; element i takes word i mod 4; u = (word >> 8) / 2^24.
// x and y are activations (float32, or bf16 built with -DPC_STORE_BF16=1).
// Launch: grid-stride over the counter blocks, one thread per 4 elements; block = 256.
#include "common.cuh"

struct Philox4
{
    unsigned int x, y, z, w;
};

__device__ __forceinline__ Philox4 philox4x32_10(unsigned long long seed, unsigned long long offset, unsigned long long block)
{
    unsigned int c0 = (unsigned int)block, c1 = (unsigned int)(block >> 32);
    unsigned int c2 = (unsigned int)offset, c3 = (unsigned int)(offset >> 32);
    unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
    for (int round = 0; round < 10; ++round)
    {
        const unsigned int hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        const unsigned int hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        const unsigned int n0 = hi1 ^ c1 ^ k0;
        const unsigned int n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    Philox4 r = {c0, c1, c2, c3};
    return r;
}

__device__ __forceinline__ float philox_uniform(unsigned int word)
{
    return (float)(word >> 8) * (1.0f / 16777216.0f);
}

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
