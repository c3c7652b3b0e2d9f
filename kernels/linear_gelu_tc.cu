// linear_gelu_tc.cu: the MLP's first layer in one pass, a hand-written tensor-core GEMM with the bias and the
// exact GELU in its epilogue:
//
//   product[r, c] = Σ_k x[r, k] · w[c, k]          y[r, c] = gelu(product[r, c] + bias[c])
//
// (bias may be null), the same two outputs as a GEMM followed by bias_gelu_forward, whose backward keeps the
// product. With groups (branches batched), group z has its own x [rows, in], w [out, in], bias [out] and
// outputs, one after another. Products in TF32 (mma m16n8k8) or, compiled with PC_BF16, bf16 (mma m16n8k16);
// float32 accumulation.
// A block computes a 64×64 tile of one group, a warp 16 rows × 64 columns (8 accumulators); the inner dimension
// goes by in chunks of 32, x's and w's chunks staged in shared memory as TF32 floats (rows padded to 36) or bf16
// pairs (rows of 16 + 4 words), so a fragment read by the 32 lanes touches 32 banks. Everything past the edges
// is zeros.
// Launch: grid (ceil(out / 64), ceil(rows / 64), groups), block 128.
#include "common.cuh"

#define LG_TILE 64
#define LG_CHUNK 32
#if PC_BF16
typedef unsigned int LgOperand;          // two bf16 along the inner dimension
#define LG_STRIDE (LG_CHUNK / 2 + 4)     // words
#else
typedef float LgOperand;
#define LG_STRIDE (LG_CHUNK + 4)
#endif

extern "C" __global__ void __launch_bounds__(128) linear_gelu_tc(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                                                                 int rows, int in, int out, float* __restrict__ product, float* __restrict__ y)
{
    __shared__ LgOperand xs[LG_TILE * LG_STRIDE];
    __shared__ LgOperand ws[LG_TILE * LG_STRIDE];
    const long long group = blockIdx.z;
    x += group * rows * in;
    w += group * out * in;
    bias = bias ? bias + group * out : nullptr;
    product += group * rows * out;
    y += group * rows * out;
    const int row0 = blockIdx.y * LG_TILE;
    const int col0 = blockIdx.x * LG_TILE;
    const int warp = threadIdx.x / PC_WARP;
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;

    float acc[LG_TILE / 8][4] = {};
    for (int k0 = 0; k0 < in; k0 += LG_CHUNK)
    {
        __syncthreads(); // every warp is done with the previous chunk
#if PC_BF16
        for (int e = threadIdx.x; e < LG_TILE * LG_CHUNK / 2; e += blockDim.x)
        {
            const int r = e / (LG_CHUNK / 2);
            const int k = k0 + 2 * (e % (LG_CHUNK / 2));
            auto pair = [&](const float* m, int row, int limit)
            {
                const float* p = m + (long long)row * in + k;
                return row < limit ? pack_bf16x2(k < in ? p[0] : 0.0f, k + 1 < in ? p[1] : 0.0f) : 0u;
            };
            xs[r * LG_STRIDE + e % (LG_CHUNK / 2)] = pair(x, row0 + r, rows);
            ws[r * LG_STRIDE + e % (LG_CHUNK / 2)] = pair(w, col0 + r, out);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LG_CHUNK / 16; ++kk)
        {
            const unsigned int* ar = xs + (warp * 16 + g) * LG_STRIDE + kk * 8 + t;
            const unsigned int a[4] = {ar[0], ar[8 * LG_STRIDE], ar[4], ar[8 * LG_STRIDE + 4]};
#pragma unroll
            for (int n = 0; n < LG_TILE / 8; ++n)
            {
                const unsigned int* br = ws + (n * 8 + g) * LG_STRIDE + kk * 8 + t;
                const unsigned int b[2] = {br[0], br[4]};
                mma_bf16_m16n8k16(acc[n], a, b, acc[n]);
            }
        }
#else
        for (int e = threadIdx.x; e < LG_TILE * LG_CHUNK; e += blockDim.x)
        {
            const int r = e / LG_CHUNK;
            const int k = e % LG_CHUNK;
            const bool inside = k0 + k < in;
            xs[r * LG_STRIDE + k] = inside && row0 + r < rows ? to_tf32(x[(long long)(row0 + r) * in + k0 + k]) : 0.0f;
            ws[r * LG_STRIDE + k] = inside && col0 + r < out ? to_tf32(w[(long long)(col0 + r) * in + k0 + k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LG_CHUNK / 8; ++kk)
        {
            const float* ar = xs + (warp * 16 + g) * LG_STRIDE + kk * 8 + t;
            const float a[4] = {ar[0], ar[8 * LG_STRIDE], ar[4], ar[8 * LG_STRIDE + 4]};
#pragma unroll
            for (int n = 0; n < LG_TILE / 8; ++n)
            {
                const float* br = ws + (n * 8 + g) * LG_STRIDE + kk * 8 + t;
                const float b[2] = {br[0], br[4]};
                mma_tf32_m16n8k8(acc[n], a, b, acc[n]);
            }
        }
#endif
    }

#pragma unroll
    for (int n = 0; n < LG_TILE / 8; ++n)
    {
#pragma unroll
        for (int i = 0; i < 4; ++i)
        {
            const int r = row0 + warp * 16 + g + 8 * (i / 2);
            const int c = col0 + n * 8 + 2 * t + i % 2;
            if (r < rows && c < out)
            {
                const long long o = (long long)r * out + c;
                product[o] = acc[n][i];
                y[o] = gelu(bias ? acc[n][i] + bias[c] : acc[n][i]);
            }
        }
    }
}
