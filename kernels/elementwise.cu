// elementwise.cu: the op set's plain element-wise ops. Launch: grid-stride over n; block = 256.
//
//   add:          out[i] = a[i] + b[i]                 (out may alias a or b)
//   scale:        out[i] = alpha · x[i]                (out may alias x)
//   bias_rows:    c[r, j] = beta · c[r, j] + bias[j]   (beta = 0: bias[j], c's old contents unread, even NaN);
//                 a GEMM's bias, put in place before cuBLAS accumulates the product onto c with beta = 1; a
//                 batched GEMM's C [groups, m, n] takes bias row g in group g (group_elems = m·n; n for one)
//   copy_strided: dst[i] = src[Σ_a index_a(i) · stride_a] for a view of rank ≤ 6 (the host pads the shape with
//                 leading 1s), element i of dst in row-major order; 32-bit elements of any type
//
// add, scale and bias_rows read and write activations (`act`): float32, or bf16 in the -DPC_STORE_BF16=1 build.
#include "common.cuh"

extern "C" __global__ void add(const act* a, const act* b, long long n, act* out)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store_act(out + i, load_act(a + i) + load_act(b + i));
}

extern "C" __global__ void scale(const act* x, float alpha, long long n, act* out)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        store_act(out + i, alpha * load_act(x + i));
}

extern "C" __global__ void bias_rows(const float* __restrict__ bias, float beta, long long n, int cols, long long group_elems, act* __restrict__ c)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const float b = bias[group_param(i, cols, group_elems)];
        store_act(c + i, beta == 0.0f ? b : beta * load_act(c + i) + b);
    }
}

extern "C" __global__ void copy_strided(
    const unsigned int* __restrict__ src, long long n,
    long long d0, long long d1, long long d2, long long d3, long long d4, long long d5,
    long long s0, long long s1, long long s2, long long s3, long long s4, long long s5,
    unsigned int* __restrict__ dst)
{
    const long long dims[6] = {d0, d1, d2, d3, d4, d5};
    const long long strides[6] = {s0, s1, s2, s3, s4, s5};
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        long long rest = i;
        long long offset = 0;
#pragma unroll
        for (int a = 5; a >= 0; --a)
        {
            offset += rest % dims[a] * strides[a];
            rest /= dims[a];
        }
        dst[i] = src[offset];
    }
}
