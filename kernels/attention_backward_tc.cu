// attention_backward_tc.cu: attention_backward_dq and attention_backward_dkdv (attention_backward.cu, same
// math, same inputs and outputs) with every product on the tensor cores in TF32 (bf16 with PC_BF16). With p_ij = exp(s_ij − lse_i),
// s_ij = q_i·k_j/√Dh and δ_i = dout_i·out_i (attention_backward_rows):
//   dp_ij = dout_i·v_j,   ds_ij = p_ij·(dp_ij − δ_i),
//   dq_i = (1/√Dh) Σ_j ds_ij k_j,   dk_j = (1/√Dh) Σ_i ds_ij q_i,   dv_j = Σ_i p_ij dout_i.
// Two kernels, no atomics (the result is deterministic); both recompute the probabilities:
//   attention_backward_dq_tc:   a block per 64 query rows of one (b, h), a warp per 16; K and V tiles staged;
//                               S = Q·Kᵀ and dP = dO·Vᵀ with Q and dO held as A fragments, then dQ += dS·K.
//   attention_backward_dkdv_tc: a block per 64 key rows, a warp per 16; Q and dO tiles staged with their
//                               lse and δ; Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ with K and V held as A fragments, then
//                               dV += Pᵀ·dO and dK += dSᵀ·Q.
// attention_tc.cuh holds the tiles and fragments. Scores are computed in log2 units (the A fragments scaled by
// log2(e)/√Dh, p = exp2(s − lse·log2(e))). Columns past the end get probability 0, and 8-column steps wholly
// past it are skipped; a warp whose rows are all past the end only helps stage the tiles.
//
// Launch: grid (ceil(T / 64), B·H), block 128; delta [B, H, T] from attention_backward_rows. Dynamic shared
// memory: TF32, two tiles of 64·(Dh + 4) floats (each serves both products); bf16, dq: K and V by rows and K by
// columns, dkdv: Q and dO by rows and by columns (TC_ROWS_TILE and TC_COLUMNS_TILE words each); dkdv then 2·64
// floats for lse and δ.
#include "attention_tc.cuh"

extern "C" __global__ void __launch_bounds__(128) attention_backward_dq_tc(const act* __restrict__ qkv, const act* __restrict__ dout, const float* __restrict__ lse,
                                                                          const float* __restrict__ delta, int batch, int tokens, int heads, act* __restrict__ dqkv)
{
    PC_DYNAMIC_SHARED(TcOperand, shared);
    TcOperand* ks = shared;
    TcOperand* vs = shared + TC_ROWS_TILE;
#if PC_BF16
    TcOperand* kc = vs + TC_ROWS_TILE; // K by columns, for dS·K
#else
    TcOperand* kc = ks;
#endif
    const TcHead head = tc_head(tokens, heads);
    const int dim = head.dim;
    const act* q = qkv + head.qkv;
    const int t = lane_id() % 4;
    const int r0 = head.r0;
    const float scale = 1.0f / sqrtf((float)PC_HEAD_DIM);
    const float lse0 = r0 < tokens ? lse[head.head_rows + r0] * TC_LOG2E : 0.0f;
    const float lse1 = r0 + 8 < tokens ? lse[head.head_rows + r0 + 8] * TC_LOG2E : 0.0f;
    const float delta0 = r0 < tokens ? delta[head.head_rows + r0] : 0.0f;
    const float delta1 = r0 + 8 < tokens ? delta[head.head_rows + r0 + 8] : 0.0f;

    TcOperand qa[TC_KSTEPS][4];
    TcOperand da[TC_KSTEPS][4];
    tc_row_fragments(qa, q, head.stride, r0, tokens, scale * TC_LOG2E);
    tc_row_fragments(da, dout + head.rows, dim, r0, tokens, 1.0f);
    float dq[TC_STEPS][4];
    tc_zero(dq);

    for (int k0 = 0; k0 < tokens; k0 += TC_ROWS)
    {
        __syncthreads();
        tc_stage_rows(ks, q + dim, head.stride, k0, tokens);
        tc_stage_rows(vs, q + 2 * dim, head.stride, k0, tokens);
#if PC_BF16
        tc_stage_columns(kc, q + dim, head.stride, k0, tokens);
#endif
        __syncthreads();
#pragma unroll 1
        for (int n = 0; head.working && n < TC_ROWS / 8 && k0 + n * 8 < tokens; n += 2)
        {
            float s[2][4] = {}, dp[2][4] = {}, ds[2][4];
            tc_two_steps(s, dp, qa, ks, da, vs, n, k0, tokens);
#pragma unroll
            for (int h = 0; h < 2; ++h)
            {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                {
                    const bool inside = k0 + (n + h) * 8 + 2 * t + j % 2 < tokens;
                    const float p = inside ? exp2f(s[h][j] - (j < 2 ? lse0 : lse1)) : 0.0f;
                    ds[h][j] = p * (dp[h][j] - (j < 2 ? delta0 : delta1));
                }
            }
            tc_accumulate_pair(dq, ds[0], ds[1], kc, n);
        }
    }

    tc_store_rows(dqkv + head.qkv, head.stride, dq, r0, tokens, scale, scale);
}

extern "C" __global__ void __launch_bounds__(128) attention_backward_dkdv_tc(const act* __restrict__ qkv, const act* __restrict__ dout, const float* __restrict__ lse,
                                                                            const float* __restrict__ delta, int batch, int tokens, int heads, act* __restrict__ dqkv)
{
    PC_DYNAMIC_SHARED(TcOperand, shared);
    TcOperand* qs = shared;
    TcOperand* dos = shared + TC_ROWS_TILE;
#if PC_BF16
    TcOperand* qc = dos + TC_ROWS_TILE; // Q and dO by columns, for dSᵀ·Q and Pᵀ·dO
    TcOperand* doc = qc + TC_COLUMNS_TILE;
    float* lses = reinterpret_cast<float*>(doc + TC_COLUMNS_TILE);
#else
    TcOperand* qc = qs;
    TcOperand* doc = dos;
    float* lses = dos + TC_ROWS_TILE;
#endif
    float* deltas = lses + TC_ROWS;
    const TcHead head = tc_head(tokens, heads); // the rows here are keys
    const int dim = head.dim;
    const act* q = qkv + head.qkv;
    const int t = lane_id() % 4;
    const float scale = 1.0f / sqrtf((float)PC_HEAD_DIM);

    TcOperand ka[TC_KSTEPS][4];
    TcOperand va[TC_KSTEPS][4];
    tc_row_fragments(ka, q + dim, head.stride, head.r0, tokens, scale * TC_LOG2E);
    tc_row_fragments(va, q + 2 * dim, head.stride, head.r0, tokens, 1.0f);
    float dk[TC_STEPS][4];
    float dv[TC_STEPS][4];
    tc_zero(dk);
    tc_zero(dv);

    for (int i0 = 0; i0 < tokens; i0 += TC_ROWS)
    {
        __syncthreads();
        tc_stage_rows(qs, q, head.stride, i0, tokens);
        tc_stage_rows(dos, dout + head.rows, dim, i0, tokens);
#if PC_BF16
        tc_stage_columns(qc, q, head.stride, i0, tokens);
        tc_stage_columns(doc, dout + head.rows, dim, i0, tokens);
#endif
        for (int i = threadIdx.x; i < TC_ROWS; i += blockDim.x)
        {
            lses[i] = i0 + i < tokens ? lse[head.head_rows + i0 + i] * TC_LOG2E : 0.0f;
            deltas[i] = i0 + i < tokens ? delta[head.head_rows + i0 + i] : 0.0f;
        }
        __syncthreads();
#pragma unroll 1
        for (int n = 0; head.working && n < TC_ROWS / 8 && i0 + n * 8 < tokens; n += 2)
        {
            float s[2][4] = {}, dp[2][4] = {}, p[2][4], ds[2][4];
            tc_two_steps(s, dp, ka, qs, va, dos, n, i0, tokens);
#pragma unroll
            for (int h = 0; h < 2; ++h)
            {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                {
                    const int column = (n + h) * 8 + 2 * t + j % 2;
                    p[h][j] = i0 + column < tokens ? exp2f(s[h][j] - lses[column]) : 0.0f;
                    ds[h][j] = p[h][j] * (dp[h][j] - deltas[column]);
                }
            }
            tc_accumulate_pair(dv, p[0], p[1], doc, n);
            tc_accumulate_pair(dk, ds[0], ds[1], qc, n);
        }
    }

    tc_store_rows(dqkv + head.qkv + dim, head.stride, dk, head.r0, tokens, scale, scale);
    tc_store_rows(dqkv + head.qkv + 2 * dim, head.stride, dv, head.r0, tokens, 1.0f, 1.0f);
}
