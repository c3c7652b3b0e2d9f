// philox.cuh: the dropout mask, shared by dropout.cu and the kernels that apply it in an epilogue.
//
// Philox4x32-10 as the CPU backend has it (Backends/Philox.cs), so masks are bit-identical: counter block i/4 =
// (c0, c1) = low and high words of i/4, (c2, c3) = low and high words of offset; key (k0, k1) = low and high words
// of seed; ten rounds; element i takes word i mod 4; u = (word >> 8) / 2^24, kept when u ≥ p.
#pragma once
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

// Whether element i survives dropout with probability p under (seed, offset): one Philox block per call.
__device__ __forceinline__ bool dropout_keeps(unsigned long long seed, unsigned long long offset, long long i, float p)
{
    const Philox4 r = philox4x32_10(seed, offset, (unsigned long long)(i / 4));
    const unsigned int words[4] = {r.x, r.y, r.z, r.w};
    return philox_uniform(words[i % 4]) >= p;
}
