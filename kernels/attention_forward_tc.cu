// attention_forward_tc.cu: attention_forward (same inputs, outputs and math) with both products on the tensor
// cores in TF32, FlashAttention-2 style.
//
// Per (b, h) and query row i: s_ij = q_i·k_j / √Dh, out_i = Σ_j softmax(s_i)_j v_j, lse_i = log Σ_j exp(s_ij).
// A block takes 64 query rows of one (b, h), a warp 16 of them. The keys go by in tiles of 64, K and V staged
// in shared memory as TF32; per tile a warp computes its 16×64 scores with m16n8k8 mma (A = its queries,
// scaled by 1/√Dh, held in registers for the whole loop; B = Kᵀ), applies the online softmax in registers
// (running maximum m and sum l per row, the accumulator rescaled by exp(m_old − m_new)), and adds P·V with
// mma again. Keys past the end are masked to −∞; rows past the end compute and are not written.
//
// P goes from the scores' accumulator fragment straight into the A fragment of P·V without a shuffle: a lane
// holds scores of keys 2t and 2t+1 and the A fragment wants columns t and t+4, so within each 8-key step the
// product runs over the keys in the order (0, 2, 4, 6, 1, 3, 5, 7) — column t is key 2t, column t+4 key 2t+1 —
// and the B fragment reads V's rows in that same order. A sum over keys does not care about their order.
//
// Shared-memory rows are padded to Dh + 4 floats, which puts the 32 lanes' reads of a K fragment (key g, dim t)
// and of a V fragment (key 2t, dim g) into 32 different banks.
//
// Launch: grid (ceil(T / 64), B·H), block 128, dynamic shared memory 2·64·(Dh + 4) floats. Dh = PC_HEAD_DIM,
// a multiple of 8 up to 128.
#include "common.cuh"

#define TC_ROWS 64
#define TC_KEYS 64
#define TC_STRIDE (PC_HEAD_DIM + 4)
#define TC_STEPS (PC_HEAD_DIM / 8)
#define TC_NEG_INF __int_as_float(0xff800000)
static_assert(PC_HEAD_DIM % 8 == 0 && PC_HEAD_DIM <= 128, "the tensor-core attention takes head dims that are multiples of 8 up to 128");

extern "C" __global__ void __launch_bounds__(128) attention_forward_tc(const float* __restrict__ qkv, int batch, int tokens, int heads, float* __restrict__ out, float* __restrict__ lse)
{
    PC_DYNAMIC_SHARED(float, shared);
    float* ks = shared;
    float* vs = shared + TC_KEYS * TC_STRIDE;
    const int h = blockIdx.y % heads;
    const long long b = blockIdx.y / heads;
    const int dim = heads * PC_HEAD_DIM;
    const long long stride = 3LL * dim;
    const float* base = qkv + b * tokens * stride + h * PC_HEAD_DIM;
    const int lane = threadIdx.x % PC_WARP;
    const int g = lane / 4;
    const int t = lane % 4;
    const int r0 = blockIdx.x * TC_ROWS + threadIdx.x / PC_WARP * 16 + g; // this lane's rows: r0 and r0 + 8
    const int r1 = r0 + 8;
    const float scale = 1.0f / sqrtf((float)PC_HEAD_DIM);

    float qa[TC_STEPS][4];
#pragma unroll
    for (int kk = 0; kk < TC_STEPS; ++kk)
    {
        const int d = kk * 8 + t;
        qa[kk][0] = r0 < tokens ? to_tf32(base[r0 * stride + d] * scale) : 0.0f;
        qa[kk][1] = r1 < tokens ? to_tf32(base[r1 * stride + d] * scale) : 0.0f;
        qa[kk][2] = r0 < tokens ? to_tf32(base[r0 * stride + d + 4] * scale) : 0.0f;
        qa[kk][3] = r1 < tokens ? to_tf32(base[r1 * stride + d + 4] * scale) : 0.0f;
    }

    float o[TC_STEPS][4];
#pragma unroll
    for (int n = 0; n < TC_STEPS; ++n)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m0 = TC_NEG_INF, m1 = TC_NEG_INF, l0 = 0.0f, l1 = 0.0f;

    for (int k0 = 0; k0 < tokens; k0 += TC_KEYS)
    {
        __syncthreads(); // every warp is done with the previous tile
        for (int e = threadIdx.x; e < TC_KEYS * PC_HEAD_DIM; e += blockDim.x)
        {
            const int key = e / PC_HEAD_DIM;
            const int d = e % PC_HEAD_DIM;
            const bool inside = k0 + key < tokens;
            const float* row = base + (k0 + key) * stride + d;
            ks[key * TC_STRIDE + d] = inside ? to_tf32(row[dim]) : 0.0f;
            vs[key * TC_STRIDE + d] = inside ? to_tf32(row[2 * dim]) : 0.0f;
        }
        __syncthreads();

        float s[TC_KEYS / 8][4];
#pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n)
        {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < TC_STEPS; ++kk)
            {
                const float* k = ks + (n * 8 + g) * TC_STRIDE + kk * 8 + t;
                const float bk[2] = {k[0], k[4]};
                mma_tf32_m16n8k8(s[n], qa[kk], bk, s[n]);
            }
        }

        float x0 = m0, x1 = m1;
#pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n)
#pragma unroll
            for (int j = 0; j < 2; ++j)
            {
                if (k0 + n * 8 + 2 * t + j >= tokens)
                    s[n][j] = s[n][2 + j] = TC_NEG_INF;
                x0 = fmaxf(x0, s[n][j]);
                x1 = fmaxf(x1, s[n][2 + j]);
            }
        // A row's 64 scores are spread over the 4 lanes of its group.
        x0 = fmaxf(x0, __shfl_xor_sync(PC_FULL_MASK, x0, 1));
        x0 = fmaxf(x0, __shfl_xor_sync(PC_FULL_MASK, x0, 2));
        x1 = fmaxf(x1, __shfl_xor_sync(PC_FULL_MASK, x1, 1));
        x1 = fmaxf(x1, __shfl_xor_sync(PC_FULL_MASK, x1, 2));
        const float c0 = expf(m0 - x0);
        const float c1 = expf(m1 - x1);
        l0 *= c0;
        l1 *= c1;
#pragma unroll
        for (int n = 0; n < TC_STEPS; ++n)
        {
            o[n][0] *= c0;
            o[n][1] *= c0;
            o[n][2] *= c1;
            o[n][3] *= c1;
        }
        m0 = x0;
        m1 = x1;

#pragma unroll
        for (int n = 0; n < TC_KEYS / 8; ++n)
        {
            const float p[4] = {expf(s[n][0] - x0), expf(s[n][1] - x0), expf(s[n][2] - x1), expf(s[n][3] - x1)};
            l0 += p[0] + p[1];
            l1 += p[2] + p[3];
            const float pa[4] = {to_tf32(p[0]), to_tf32(p[2]), to_tf32(p[1]), to_tf32(p[3])};
            const float* v = vs + (n * 8 + 2 * t) * TC_STRIDE + g;
#pragma unroll
            for (int dn = 0; dn < TC_STEPS; ++dn)
            {
                const float bv[2] = {v[dn * 8], v[TC_STRIDE + dn * 8]};
                mma_tf32_m16n8k8(o[dn], pa, bv, o[dn]);
            }
        }
    }

    l0 += __shfl_xor_sync(PC_FULL_MASK, l0, 1);
    l0 += __shfl_xor_sync(PC_FULL_MASK, l0, 2);
    l1 += __shfl_xor_sync(PC_FULL_MASK, l1, 1);
    l1 += __shfl_xor_sync(PC_FULL_MASK, l1, 2);
    const long long head_rows = (long long)blockIdx.y * tokens;
    if (r0 < tokens)
    {
        float* row = out + (b * tokens + r0) * dim + h * PC_HEAD_DIM + 2 * t;
#pragma unroll
        for (int dn = 0; dn < TC_STEPS; ++dn)
        {
            row[dn * 8] = o[dn][0] / l0;
            row[dn * 8 + 1] = o[dn][1] / l0;
        }
        if (lse && t == 0)
            lse[head_rows + r0] = m0 + logf(l0);
    }
    if (r1 < tokens)
    {
        float* row = out + (b * tokens + r1) * dim + h * PC_HEAD_DIM + 2 * t;
#pragma unroll
        for (int dn = 0; dn < TC_STEPS; ++dn)
        {
            row[dn * 8] = o[dn][2] / l1;
            row[dn * 8 + 1] = o[dn][3] / l1;
        }
        if (lse && t == 0)
            lse[head_rows + r1] = m1 + logf(l1);
    }
}
