// tokens.cu: the token sequence of the patch embedding and its gradient.
//
//   assemble_tokens:                  tokens[b, 0] = cls + pos[0];  tokens[b, 1 + n] = emb[b, n] + pos[1 + n]
//   assemble_tokens_backward_patches: dEmb[b, n] (+)= dTokens[b, 1 + n]
//
// The parameter gradients are column sums over the batch, done by reductions.cu: dpos (+)= Σ_b dTokens[b]
// (rows B, cols T·D) and dcls (+)= Σ_b dTokens[b, 0] (rows B, cols D, row stride T·D).
// Launch: grid-stride over the output elements; block = 256.
#include "common.cuh"

extern "C" __global__ void assemble_tokens(const float* __restrict__ emb, const float* __restrict__ cls, const float* __restrict__ pos, int batch, int patches, int dim, float* __restrict__ tokens)
{
    const long long per_image = (long long)(patches + 1) * dim;
    const long long n = batch * per_image;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const int b = (int)(i / per_image);
        const long long j = i % per_image;
        const float base = j < dim ? cls[j] : emb[(long long)b * patches * dim + (j - dim)];
        tokens[i] = base + pos[j];
    }
}

extern "C" __global__ void assemble_tokens_backward_patches(const float* __restrict__ dtokens, int batch, int patches, int dim, int accumulate, float* __restrict__ demb)
{
    const long long per_image = (long long)patches * dim;
    const long long n = batch * per_image;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const long long b = i / per_image;
        const float g = dtokens[b * (per_image + dim) + dim + i % per_image];
        demb[i] = accumulate ? demb[i] + g : g;
    }
}
