// attention_backward.cu: gradient of attention_forward, recomputing the probabilities from lse.
//
// With p_ij = exp(s_ij - lse_i), s_ij = q_i·k_j/√Dh, δ_i = dout_i·out_i:
//   dp_ij = dout_i·v_j        ds_ij = p_ij · (dp_ij - δ_i)
//   dq_i = (1/√Dh) Σ_j ds_ij k_j        dk_j = (1/√Dh) Σ_i ds_ij q_i        dv_j = Σ_i p_ij dout_i
// written into dqkv in qkv's packed layout.
//
// Three launches, none with atomics, so the result is deterministic:
//   attention_backward_rows: one warp per (b, h, i): δ_i into delta [B, H, T], and lse_i into lse when
//     compute_lse ≠ 0 (the forward did not keep it)
//   attention_backward_dq:   one warp per (b, h, i): loops over keys j
//   attention_backward_dkdv: one warp per (b, h, j): loops over queries i
// Block = 32·W threads, grid = ceil(B·H·T / W); lane layout, Dh = PC_HEAD_DIM and activation types (qkv, out,
// dout, dqkv) as attention_forward.cu.
#include "common.cuh"

// One (batch, head) pair's rows: q, k, v of token t in qkv, and its row in out or dout.
struct HeadView
{
    const act* base; // q of token 0 of this (b, h); k at +dim, v at +2·dim; token stride 3·dim
    long long out_row; // offset of (b, token 0, h) in out/dout: token stride dim
    int dim;
    float scale;

    __device__ const act* q(int t) const { return base + (long long)t * 3 * dim; }
    __device__ const act* k(int t) const { return q(t) + dim; }
    __device__ const act* v(int t) const { return q(t) + 2 * dim; }
    __device__ const act* in(const act* rows, int t) const { return rows + out_row + (long long)t * dim; }
};

__device__ __forceinline__ HeadView head_view(const act* qkv, long long row, int tokens, int heads)
{
    HeadView view;
    const int h = (int)(row / tokens % heads);
    const long long b = row / ((long long)tokens * heads);
    view.dim = heads * PC_HEAD_DIM;
    view.base = qkv + b * tokens * 3 * view.dim + h * PC_HEAD_DIM;
    view.out_row = b * tokens * view.dim + h * PC_HEAD_DIM;
    view.scale = 1.0f / sqrtf((float)PC_HEAD_DIM);
    return view;
}

// The dot product of two head-dimension vectors read lane-wise (lane l: elements l, l + 32, …); every lane
// gets the total.
__device__ __forceinline__ float row_dot(const act* a, const act* b, int lane)
{
    float partial = 0.0f;
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
        if (head_element(lane, e))
            partial += load_act(a + lane + e * PC_WARP) * load_act(b + lane + e * PC_WARP);
    return warp_sum(partial);
}

// p_ij and ds_ij for query i (q, its output gradient g, lse_i, δ_i) and key j (k, v).
struct ProbabilityAndGradient
{
    float p;
    float ds;
};

__device__ __forceinline__ ProbabilityAndGradient probability_and_gradient(const HeadView& view, const act* q, const act* g, float lse_i, float delta_i, const act* k, const act* v, int lane)
{
    ProbabilityAndGradient r;
    r.p = expf(row_dot(q, k, lane) * view.scale - lse_i);
    r.ds = r.p * (row_dot(g, v, lane) - delta_i);
    return r;
}

extern "C" __global__ void attention_backward_rows(const act* __restrict__ qkv, const act* __restrict__ out, const act* __restrict__ dout, int batch, int tokens, int heads, int compute_lse, float* __restrict__ lse, float* __restrict__ delta)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= (long long)batch * heads * tokens)
        return;
    const int i = (int)(row % tokens);
    const HeadView view = head_view(qkv, row, tokens, heads);
    const float d = row_dot(view.in(dout, i), view.in(out, i), lane);
    float log_sum = 0.0f;
    if (compute_lse)
    {
        const act* q = view.q(i);
        float m = -3.402823466e38f;
        float l = 0.0f;
        for (int j = 0; j < tokens; ++j)
        {
            const float s = row_dot(q, view.k(j), lane) * view.scale;
            const float m_new = fmaxf(m, s);
            l = l * expf(m - m_new) + expf(s - m_new);
            m = m_new;
        }
        log_sum = m + logf(l);
    }
    if (lane == 0)
    {
        delta[row] = d;
        if (compute_lse)
            lse[row] = log_sum;
    }
}

extern "C" __global__ void attention_backward_dq(const act* __restrict__ qkv, const act* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta, int batch, int tokens, int heads, act* __restrict__ dqkv)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= (long long)batch * heads * tokens)
        return;
    const int i = (int)(row % tokens);
    const HeadView view = head_view(qkv, row, tokens, heads);
    const act* q = view.q(i);
    const act* g = view.in(dout, i);
    const float lse_i = lse[row];
    const float delta_i = delta[row];

    float dq[PC_HEAD_PER_LANE];
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
        dq[e] = 0.0f;
    for (int j = 0; j < tokens; ++j)
    {
        const act* k = view.k(j);
        const ProbabilityAndGradient pg = probability_and_gradient(view, q, g, lse_i, delta_i, k, view.v(j), lane);
#pragma unroll
        for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
            if (head_element(lane, e))
                dq[e] += pg.ds * load_act(k + lane + e * PC_WARP);
    }

    act* target = dqkv + (q - qkv);
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
        if (head_element(lane, e))
            store_act(target + lane + e * PC_WARP, dq[e] * view.scale);
}

extern "C" __global__ void attention_backward_dkdv(const act* __restrict__ qkv, const act* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ delta, int batch, int tokens, int heads, act* __restrict__ dqkv)
{
    const long long row = warp_row();
    const int lane = lane_id();
    if (row >= (long long)batch * heads * tokens)
        return;
    const int j = (int)(row % tokens);
    const long long first_row = row - j; // (b, h, token 0) in lse and delta
    const HeadView view = head_view(qkv, row, tokens, heads);
    const act* k = view.k(j);
    const act* v = view.v(j);

    float dk[PC_HEAD_PER_LANE];
    float dv[PC_HEAD_PER_LANE];
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
    {
        dk[e] = 0.0f;
        dv[e] = 0.0f;
    }
    for (int i = 0; i < tokens; ++i)
    {
        const act* q = view.q(i);
        const act* g = view.in(dout, i);
        const ProbabilityAndGradient pg = probability_and_gradient(view, q, g, lse[first_row + i], delta[first_row + i], k, v, lane);
#pragma unroll
        for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
            if (head_element(lane, e))
            {
                dk[e] += pg.ds * load_act(q + lane + e * PC_WARP);
                dv[e] += pg.p * load_act(g + lane + e * PC_WARP);
            }
    }

    act* dk_target = dqkv + (k - qkv);
    act* dv_target = dqkv + (v - qkv);
#pragma unroll
    for (int e = 0; e < PC_HEAD_PER_LANE; ++e)
        if (head_element(lane, e))
        {
            store_act(dk_target + lane + e * PC_WARP, dk[e] * view.scale);
            store_act(dv_target + lane + e * PC_WARP, dv[e]);
        }
}
