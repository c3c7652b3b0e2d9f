// attention_forward_tc.cu: attention_forward (same inputs, outputs and math) with both products on the tensor
// cores in TF32 (or bf16, compiled with PC_BF16), FlashAttention-2 style.
//
// Per (b, h) and query row i: s_ij = q_i·k_j / √Dh, out_i = Σ_j softmax(s_i)_j v_j, lse_i = log Σ_j exp(s_ij).
// A block takes 64 query rows of one (b, h), a warp 16 of them. The keys go by in tiles of 64, K and V staged
// in shared memory; per tile a warp computes its 16×64 scores with mma (A = its queries, scaled by
// log2(e)/√Dh so that exp2 of a score is exp of the true one, held in registers for the whole loop; B = Kᵀ),
// applies the online softmax in registers (running maximum m and sum l per row, the accumulator rescaled by
// 2^(m_old − m_new)), and adds P·V with mma again (attention_tc.cuh: tiles, fragments, and how P passes from
// one product to the next). Keys past the end are masked to −∞ and 8-key steps wholly past it skipped; a warp
// whose rows are all past the end only helps stage the tiles.
//
// Launch: grid (ceil(T / 64), B·H), block 128, dynamic shared memory for K by rows and V by columns (TF32: two
// tiles of 64·(Dh + 4) floats; bf16: TC_ROWS_TILE + TC_COLUMNS_TILE words). Dh = PC_HEAD_DIM, a multiple of 8
// (16 for bf16) up to 128.
#include "attention_tc.cuh"

extern "C" __global__ void __launch_bounds__(128) attention_forward_tc(const act* __restrict__ qkv, int batch, int tokens, int heads, act* __restrict__ out, float* __restrict__ lse)
{
    PC_DYNAMIC_SHARED(TcOperand, shared);
    TcOperand* ks = shared;
    TcOperand* vs = shared + TC_ROWS_TILE;
    const TcHead head = tc_head(tokens, heads);
    const int dim = head.dim;
    const act* q = qkv + head.qkv;
    const int t = lane_id() % 4;
    const int r0 = head.r0;

    TcOperand qa[TC_KSTEPS][4];
    tc_row_fragments(qa, q, head.stride, r0, tokens, TC_LOG2E / sqrtf((float)PC_HEAD_DIM));
    float o[TC_STEPS][4];
    tc_zero(o);
    float m0 = TC_NEG_INF, m1 = TC_NEG_INF, l0 = 0.0f, l1 = 0.0f;

    for (int k0 = 0; k0 < tokens; k0 += TC_ROWS)
    {
        __syncthreads(); // every warp is done with the previous tile
        tc_stage_rows(ks, q + dim, head.stride, k0, tokens);
#if PC_BF16
        tc_stage_columns(vs, q + 2 * dim, head.stride, k0, tokens);
#else
        tc_stage_rows(vs, q + 2 * dim, head.stride, k0, tokens);
#endif
        __syncthreads();
        if (!head.working)
            continue;

        float s[TC_ROWS / 8][4];
        float x0 = m0, x1 = m1;
#pragma unroll
        for (int n = 0; n < TC_ROWS / 8; ++n)
        {
            if (k0 + n * 8 < tokens)
                tc_times_tile_transposed(s[n], qa, ks, n);
#pragma unroll
            for (int j = 0; j < 2; ++j)
            {
                if (k0 + n * 8 + 2 * t + j >= tokens)
                    s[n][j] = s[n][2 + j] = TC_NEG_INF;
                x0 = fmaxf(x0, s[n][j]);
                x1 = fmaxf(x1, s[n][2 + j]);
            }
        }
        // A row's 64 scores are spread over the 4 lanes of its group.
        x0 = fmaxf(x0, __shfl_xor_sync(PC_FULL_MASK, x0, 1));
        x0 = fmaxf(x0, __shfl_xor_sync(PC_FULL_MASK, x0, 2));
        x1 = fmaxf(x1, __shfl_xor_sync(PC_FULL_MASK, x1, 1));
        x1 = fmaxf(x1, __shfl_xor_sync(PC_FULL_MASK, x1, 2));
        const float c0 = exp2f(m0 - x0);
        const float c1 = exp2f(m1 - x1);
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
        for (int n = 0; n < TC_ROWS / 8; n += 2)
        {
            if (k0 + n * 8 >= tokens)
                break;
            float p[2][4];
#pragma unroll
            for (int h = 0; h < 2; ++h)
            {
                // Keys past the end hold −∞: their probabilities are 0.
                p[h][0] = exp2f(s[n + h][0] - x0);
                p[h][1] = exp2f(s[n + h][1] - x0);
                p[h][2] = exp2f(s[n + h][2] - x1);
                p[h][3] = exp2f(s[n + h][3] - x1);
                l0 += p[h][0] + p[h][1];
                l1 += p[h][2] + p[h][3];
            }
            tc_accumulate_pair(o, p[0], p[1], vs, n);
        }
    }

    l0 += __shfl_xor_sync(PC_FULL_MASK, l0, 1);
    l0 += __shfl_xor_sync(PC_FULL_MASK, l0, 2);
    l1 += __shfl_xor_sync(PC_FULL_MASK, l1, 1);
    l1 += __shfl_xor_sync(PC_FULL_MASK, l1, 2);
    tc_store_rows(out + head.rows, dim, o, r0, tokens, 1.0f / l0, 1.0f / l1);
    if (lse && t == 0 && r0 < tokens)
        lse[head.head_rows + r0] = (m0 + log2f(l0)) * TC_LN2;
    if (lse && t == 0 && r0 + 8 < tokens)
        lse[head.head_rows + r0 + 8] = (m1 + log2f(l1)) * TC_LN2;
}
