// linear_tc.cu: a linear layer's forward GEMM, hand-written on the tensor cores, with its epilogue fused:
//
//   linear_gelu_tc:  product[r, c] = Σ_k x[r, k] · w[c, k]      y[r, c] = gelu(product[r, c] + bias[c])
//   linear_bias_tc:  y[r, c] = Σ_k x[r, k] · w[c, k] + bias[c]
//
// (bias may be null). linear_gelu_tc is the MLP's first layer with the same two outputs as a GEMM followed by
// bias_gelu_forward (backward keeps the product); linear_bias_tc any other layer's forward (the MLP's second).
// With groups (branches batched), group z has its own x [rows, in], w [out, in], bias [out] and outputs, one after
// another. Products in TF32 (mma m16n8k8) or, compiled with PC_BF16, bf16 (mma m16n8k16); float32 accumulation.
// x, w, product and y are activations (`act`: float32, or bf16 built with -DPC_STORE_BF16=1); with
// -DPC_OUTPUT_F32=1 as well, y (and product) are float32 from bf16 operands, as a layer feeding the float32 residual.
// A block computes a 64×64 tile of one group, a warp 16 rows × 64 columns (8 accumulators); the inner dimension
// goes by in chunks of 32, x's and w's chunks staged in shared memory as TF32 floats (rows padded to 36) or bf16
// pairs (rows of 16 + 4 words), so a fragment read by the 32 lanes touches 32 banks. Everything past the edges
// is zeros.
// Launch: grid (ceil(out / 64), ceil(rows / 64), groups), block 128.
#include "common.cuh"

#define LT_TILE 64
#define LT_CHUNK 32
#if PC_BF16
typedef unsigned int LtOperand;          // two bf16 along the inner dimension
#define LT_STRIDE (LT_CHUNK / 2 + 4)     // words
#else
typedef float LtOperand;
#define LT_STRIDE (LT_CHUNK + 4)
#endif
#if PC_OUTPUT_F32
typedef float lt_out;
#else
typedef act lt_out;
#endif

// acc (this warp's 16 rows × the block's 64 columns) = x · wᵀ for the block's tile of one group.
__device__ __forceinline__ void lt_tile_product(float (&acc)[LT_TILE / 8][4], const act* __restrict__ x, const act* __restrict__ w, int rows, int in, int out, int row0, int col0)
{
    __shared__ LtOperand xs[LT_TILE * LT_STRIDE];
    __shared__ LtOperand ws[LT_TILE * LT_STRIDE];
    const int warp = threadIdx.x / PC_WARP;
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
    for (int k0 = 0; k0 < in; k0 += LT_CHUNK)
    {
        __syncthreads(); // every warp is done with the previous chunk
#if PC_BF16
        for (int e = threadIdx.x; e < LT_TILE * LT_CHUNK / 2; e += blockDim.x)
        {
            const int r = e / (LT_CHUNK / 2);
            const int k = k0 + 2 * (e % (LT_CHUNK / 2));
            auto pair = [&](const act* m, int row, int limit)
            {
                const act* p = m + (long long)row * in + k;
                return row < limit ? pack_bf16x2(k < in ? load_act(p) : 0.0f, k + 1 < in ? load_act(p + 1) : 0.0f) : 0u;
            };
            xs[r * LT_STRIDE + e % (LT_CHUNK / 2)] = pair(x, row0 + r, rows);
            ws[r * LT_STRIDE + e % (LT_CHUNK / 2)] = pair(w, col0 + r, out);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LT_CHUNK / 16; ++kk)
        {
            const unsigned int* ar = xs + (warp * 16 + g) * LT_STRIDE + kk * 8 + t;
            const unsigned int a[4] = {ar[0], ar[8 * LT_STRIDE], ar[4], ar[8 * LT_STRIDE + 4]};
#pragma unroll
            for (int n = 0; n < LT_TILE / 8; ++n)
            {
                const unsigned int* br = ws + (n * 8 + g) * LT_STRIDE + kk * 8 + t;
                const unsigned int b[2] = {br[0], br[4]};
                mma_bf16_m16n8k16(acc[n], a, b, acc[n]);
            }
        }
#else
        for (int e = threadIdx.x; e < LT_TILE * LT_CHUNK; e += blockDim.x)
        {
            const int r = e / LT_CHUNK;
            const int k = e % LT_CHUNK;
            const bool inside = k0 + k < in;
            xs[r * LT_STRIDE + k] = inside && row0 + r < rows ? to_tf32(load_act(x + (long long)(row0 + r) * in + k0 + k)) : 0.0f;
            ws[r * LT_STRIDE + k] = inside && col0 + r < out ? to_tf32(load_act(w + (long long)(col0 + r) * in + k0 + k)) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LT_CHUNK / 8; ++kk)
        {
            const float* ar = xs + (warp * 16 + g) * LT_STRIDE + kk * 8 + t;
            const float a[4] = {ar[0], ar[8 * LT_STRIDE], ar[4], ar[8 * LT_STRIDE + 4]};
#pragma unroll
            for (int n = 0; n < LT_TILE / 8; ++n)
            {
                const float* br = ws + (n * 8 + g) * LT_STRIDE + kk * 8 + t;
                const float b[2] = {br[0], br[4]};
                mma_tf32_m16n8k8(acc[n], a, b, acc[n]);
            }
        }
#endif
    }
}

// Calls store(offset, column, value) for each element of the warp's accumulators inside the matrix.
template <typename Store>
__device__ __forceinline__ void lt_epilogue(const float (&acc)[LT_TILE / 8][4], int rows, int out, int row0, int col0, Store store)
{
    const int warp = threadIdx.x / PC_WARP;
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
#pragma unroll
    for (int n = 0; n < LT_TILE / 8; ++n)
    {
#pragma unroll
        for (int i = 0; i < 4; ++i)
        {
            const int r = row0 + warp * 16 + g + 8 * (i / 2);
            const int c = col0 + n * 8 + 2 * t + i % 2;
            if (r < rows && c < out)
                store((long long)r * out + c, c, acc[n][i]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) linear_gelu_tc(const act* __restrict__ x, const act* __restrict__ w, const float* __restrict__ bias,
                                                                 int rows, int in, int out, lt_out* __restrict__ product, lt_out* __restrict__ y)
{
    const long long group = blockIdx.z;
    x += group * rows * in;
    w += group * out * in;
    bias = bias ? bias + group * out : nullptr;
    product += group * rows * out;
    y += group * rows * out;
    const int row0 = blockIdx.y * LT_TILE;
    const int col0 = blockIdx.x * LT_TILE;
    float acc[LT_TILE / 8][4] = {};
    lt_tile_product(acc, x, w, rows, in, out, row0, col0);
    // GELU reads the product as stored, so the output is the bias_gelu_forward of what backward will see.
    lt_epilogue(acc, rows, out, row0, col0, [&](long long o, int c, float v)
    {
        store_act(product + o, v);
        const float kept = load_act(product + o);
        store_act(y + o, gelu(bias ? kept + bias[c] : kept));
    });
}

extern "C" __global__ void __launch_bounds__(128) linear_bias_tc(const act* __restrict__ x, const act* __restrict__ w, const float* __restrict__ bias,
                                                                 int rows, int in, int out, lt_out* __restrict__ y)
{
    const long long group = blockIdx.z;
    x += group * rows * in;
    w += group * out * in;
    bias = bias ? bias + group * out : nullptr;
    y += group * rows * out;
    const int row0 = blockIdx.y * LT_TILE;
    const int col0 = blockIdx.x * LT_TILE;
    float acc[LT_TILE / 8][4] = {};
    lt_tile_product(acc, x, w, rows, in, out, row0, col0);
    lt_epilogue(acc, rows, out, row0, col0, [&](long long o, int c, float v) { store_act(y + o, bias ? v + bias[c] : v); });
}
