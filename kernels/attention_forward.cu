// attention_forward.cu: multi-head self-attention on packed projections, flash-style (the T×T scores are
// never stored).
//
// qkv [B, T, 3·H·Dh] holds q, k, v side by side, each split into H heads of Dh. Per (b, h) and query row i:
//   s_j = q_i·k_j / √Dh,   out_i = Σ_j softmax(s)_j · v_j,   lse_i = log Σ_j exp(s_j)   (lse [B, H, T] may be null)
// computed in one pass over the keys with the online softmax: a running maximum m, a running sum
// l = Σ exp(s_j - m) and an accumulator acc = Σ exp(s_j - m)·v_j, both rescaled by exp(m_old - m_new) when
// the maximum grows; out_i = acc / l, lse_i = m + log l.
//
// Launch: one warp per (b, h, i); block = 32·W threads, grid = ceil(B·H·T / W). Lane l holds head-dimension
// elements l, l + 32, … of the Dh = PC_HEAD_DIM this module was compiled for (see common.cuh). qkv and out are
// activations (`act`: float32, or bf16 built with -DPC_STORE_BF16=1); lse and all arithmetic are float32.
// Correct first: each key costs one warp reduction; a tiled tensor-core version belongs to the perf work.
#include "common.cuh"

extern "C" __global__ void attention_forward(const act* __restrict__ qkv, int batch, int tokens, int heads, act* __restrict__ out, float* __restrict__ lse)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= (long long)batch * heads * tokens)
        return;
    const int i = (int)(row % tokens);
    const int h = (int)(row / tokens % heads);
    const long long b = row / ((long long)tokens * heads);
    const int dim = heads * PC_HEAD_DIM;
    const float scale = 1.0f / sqrtf((float)PC_HEAD_DIM);
    const act* base = qkv + b * tokens * 3 * dim + h * PC_HEAD_DIM;

    float q[PC_HEAD_PER_LANE];
    float acc[PC_HEAD_PER_LANE];
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
    {
        q[e] = head_element(lane, e) ? load_act(base + (long long)i * 3 * dim + lane + e * PC_WARP) : 0.0f;
        acc[e] = 0.0f;
    }

    float m = -3.402823466e38f;
    float l = 0.0f;
    for (int j = 0; j < tokens; ++j)
    {
        const act* k = base + (long long)j * 3 * dim + dim;
        const act* v = k + dim;
        float partial = 0.0f;
#pragma unroll
        for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
            if (head_element(lane, e))
                partial += q[e] * load_act(k + lane + e * PC_WARP);
        const float s = warp_sum(partial) * scale;
        const float m_new = fmaxf(m, s);
        const float correction = expf(m - m_new);
        const float weight = expf(s - m_new);
        l = l * correction + weight;
#pragma unroll
        for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
            if (head_element(lane, e))
                acc[e] = acc[e] * correction + weight * load_act(v + lane + e * PC_WARP);
        m = m_new;
    }

    act* o = out + (b * tokens + i) * dim + h * PC_HEAD_DIM;
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
        if (head_element(lane, e))
            store_act(o + lane + e * PC_WARP, acc[e] / l);
    if (lse && lane == 0)
        lse[row] = m + logf(l);
}
