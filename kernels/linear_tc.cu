// linear_tc.cu: a linear layer's forward GEMM, hand-written on the tensor cores, with its epilogue fused:
//
//   linear_gelu_tc:  product[r, c] = Σ_k x[r, k] · w[c, k]      y[r, c] = gelu(product[r, c] + bias[c])
//   linear_bias_tc:  y[r, c] = Σ_k x[r, k] · w[c, k] + bias[c]
//   linear_dgelu_tc: dpre[r, c] = (Σ_k dy[r, k] · w[k, c]) · keep(r, c) / (1 − p) · gelu'(pre[r, c] + bias[c])
//
// (bias may be null). linear_gelu_tc is the MLP's first layer with the same two outputs as a GEMM followed by
// bias_gelu_forward (backward keeps the product); linear_bias_tc any other layer's forward (the MLP's second).
// linear_dgelu_tc is the MLP's backward from the second layer's output gradient dy [rows, in] and weight w [in, out]
// back through the dropout (keep from philox.cuh, element r·out + c of the group's [rows, out]; p = 0: none) and the
// GELU to the first layer's product: the GEMM, dropout's backward and bias_gelu_backward in one pass. With
// bias_partial, each block also writes the column sums of its 64 rows of dpre (as stored) where sum_rows_partial
// would, [group, row block, out], for sum_rows_finish to complete the bias gradient. With groups (branches batched), group z has its own x (dy),
// w, bias and outputs, one after another; the dropout's element index runs on across groups. Products in TF32 (mma m16n8k8) or, compiled with PC_BF16, bf16 (mma m16n8k16); float32 accumulation.
// x, w, product and y are activations (`act`: float32, or bf16 built with -DPC_STORE_BF16=1); with
// -DPC_OUTPUT_F32=1 as well, y (and product) are float32 from bf16 operands, as a layer feeding the float32 residual.
// A block computes a 64×64 tile of one group, a warp 16 rows × 64 columns (8 accumulators); the inner dimension
// goes by in chunks of 32, x's and w's chunks staged in shared memory as TF32 floats (rows padded to 36) or bf16
// pairs (rows of 16 + 4 words), so a fragment read by the 32 lanes touches 32 banks. Everything past the edges
// is zeros.
// Launch: grid (ceil(out / 64), ceil(rows / 64), groups), block 128.
#include "philox.cuh"

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

// acc (this warp's 16 rows × the block's 64 columns) = x · wᵀ for the block's tile of one group, w stored [out, in]
// (or x · w with w stored [in, out] when W_IN_OUT).
template <bool W_IN_OUT>
__device__ __forceinline__ void lt_tile_product(float (&acc)[LT_TILE / 8][4], const act* __restrict__ x, const act* __restrict__ w, int rows, int in, int out, int row0, int col0)
{
    // Element (c, k) of wᵀ's tile, as stored.
    auto w_at = [&](int c, int k) { return load_act(W_IN_OUT ? w + (long long)k * out + c : w + (long long)c * in + k); };
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
            const act* xr = x + (long long)(row0 + r) * in + k;
            xs[r * LT_STRIDE + e % (LT_CHUNK / 2)] = row0 + r < rows ? pack_bf16x2(k < in ? load_act(xr) : 0.0f, k + 1 < in ? load_act(xr + 1) : 0.0f) : 0u;
            const int c = col0 + r;
            ws[r * LT_STRIDE + e % (LT_CHUNK / 2)] = c < out ? pack_bf16x2(k < in ? w_at(c, k) : 0.0f, k + 1 < in ? w_at(c, k + 1) : 0.0f) : 0u;
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
            ws[r * LT_STRIDE + k] = inside && col0 + r < out ? to_tf32(w_at(col0 + r, k0 + k)) : 0.0f;
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
    lt_tile_product<false>(acc, x, w, rows, in, out, row0, col0);
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
    lt_tile_product<false>(acc, x, w, rows, in, out, row0, col0);
    lt_epilogue(acc, rows, out, row0, col0, [&](long long o, int c, float v) { store_act(y + o, bias ? v + bias[c] : v); });
}

extern "C" __global__ void __launch_bounds__(128) linear_dgelu_tc(const act* __restrict__ dy, const act* __restrict__ w, const act* __restrict__ pre, const float* __restrict__ bias,
                                                                  int rows, int in, int out, float p, unsigned long long seed, unsigned long long offset,
                                                                  const unsigned int* __restrict__ offset_base, act* __restrict__ dpre, float* __restrict__ bias_partial)
{
    const long long group = blockIdx.z;
    const long long first = group * rows * out; // the group's first element in the dropout's numbering
    dy += group * rows * in;
    w += group * in * out;
    bias = bias ? bias + group * out : nullptr;
    pre += first;
    dpre += first;
    if (offset_base != nullptr)
        offset += (unsigned long long)offset_base[0] | ((unsigned long long)offset_base[1] << 32);
    const float scale = 1.0f / (1.0f - p);
    const int row0 = blockIdx.y * LT_TILE;
    const int col0 = blockIdx.x * LT_TILE;
    float acc[LT_TILE / 8][4] = {};
    lt_tile_product<true>(acc, dy, w, rows, in, out, row0, col0);
    // This thread's share of the block's column sums of dpre as stored (two rows of columns 2t, 2t + 1 of each step).
    float sums[LT_TILE / 8][2] = {};
    lt_epilogue(acc, rows, out, row0, col0, [&](long long o, int c, float v)
    {
        const float kept = p > 0.0f ? (dropout_keeps(seed, offset, first + o, p) ? v * scale : 0.0f) : v;
        const float x = load_act(pre + o);
        store_act(dpre + o, kept * gelu_grad(bias ? x + bias[c] : x));
        sums[(c - col0) / 8][(c - col0) % 2] += load_act(dpre + o);
    });
    if (bias_partial == nullptr)
        return;

    // The bias gradient's first reduction step, as sum_rows_partial would take it over this block's 64 rows: lanes of
    // one column (the same t) add across g, the four warps in order through shared memory.
    __shared__ float warp_sums[4][LT_TILE];
    const int warp = threadIdx.x / PC_WARP;
    const int g = lane_id() / 4;
    const int t = lane_id() % 4;
#pragma unroll
    for (int n = 0; n < LT_TILE / 8; ++n)
    {
#pragma unroll
        for (int j = 0; j < 2; ++j)
        {
            float v = sums[n][j];
            for (int step = 4; step < PC_WARP; step <<= 1)
                v += __shfl_xor_sync(PC_FULL_MASK, v, step);
            if (g == 0)
                warp_sums[warp][n * 8 + 2 * t + j] = v;
        }
    }
    __syncthreads();
    if (threadIdx.x < LT_TILE && col0 + (int)threadIdx.x < out)
        bias_partial[(group * gridDim.y + blockIdx.y) * out + col0 + threadIdx.x] =
            warp_sums[0][threadIdx.x] + warp_sums[1][threadIdx.x] + warp_sums[2][threadIdx.x] + warp_sums[3][threadIdx.x];
}
