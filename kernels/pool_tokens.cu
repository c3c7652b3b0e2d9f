// pool_tokens.cu: x [B, T, D] → out [B, D], the head's input.
//
//   cls:  out[b, d] = x[b, 0, d]                    mean: out[b, d] = (Σ_t x[b, t, d]) · (1/T), t in order
//   backward: dx[b, t, d] (+)= w_t · dout[b, d],   w_t = [t = 0] (cls) or 1/T (mean); with accumulate, tokens
//   whose weight is 0 are left untouched
//
// mean is 1, cls is 0, as the Pooling enum. Launch: forward one thread per (b, d); backward one per (b, t, d);
// grid-stride, block = 256.
#include "common.cuh"

extern "C" __global__ void pool_tokens_forward(const float* __restrict__ x, int batch, int tokens, int dim, int mean, float* __restrict__ out)
{
    const long long n = (long long)batch * dim;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const long long b = i / dim;
        const int d = (int)(i % dim);
        const float* column = x + b * tokens * dim + d;
        float v = column[0];
        if (mean)
        {
            for (int t = 1; t < tokens; ++t)
                v += column[(long long)t * dim];
            v *= 1.0f / tokens;
        }
        out[i] = v;
    }
}

extern "C" __global__ void pool_tokens_backward(const float* __restrict__ dout, int batch, int tokens, int dim, int mean, int accumulate, float* __restrict__ dx)
{
    const long long n = (long long)batch * tokens * dim;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const long long b = i / ((long long)tokens * dim);
        const int t = (int)(i / dim % tokens);
        const int d = (int)(i % dim);
        const float weight = mean ? 1.0f / tokens : (t == 0 ? 1.0f : 0.0f);
        const float g = weight * dout[b * dim + d];
        if (!accumulate)
            dx[i] = g;
        else if (weight != 0.0f)
            dx[i] = __fadd_rn(dx[i], g); // never contracted with the product above (layernorm_backward.cu says why)
    }
}
