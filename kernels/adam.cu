// adam.cu: Adam / AdamW over every parameter tensor in one launch, torch.optim.Adam's arithmetic:
//
//   p ← p · decay                         (decay = 1 - lr·wd for AdamW, else 1)
//   g ← grad + l2 · p_old                 (l2 = wd for Adam's L2 form, else 0)
//   m ← β1·m + (1-β1)·g        v ← β2·v + (1-β2)·g²
//   p ← p - step_size · m / (√v / √bc2 + ε)      step_size = lr / bc1, bc_i = 1 - β_i^t
//
// The bias corrections depend on each tensor's own step count t, so the host computes step_size and √bc2
// per tensor (in double, as the CPU reference) and passes them in the table.
// Launch: block b updates elements [(b - first_block)·E, …+E) of the tensor whose block range holds b (see
// common.cuh, slice_of_block); block = 256 threads.
#include "common.cuh"

struct AdamSlice
{
    float* param;
    const float* grad;
    float* m;
    float* v;
    long long count;
    float step_size;
    float bc2_sqrt;
    int first_block;
    int pad;
};

extern "C" __global__ void adam_update(
    const AdamSlice* __restrict__ slices, int tensors, long long elements_per_block,
    float beta1, float beta2, float eps, float decay, float l2)
{
    const AdamSlice s = slice_of_block(slices, tensors, blockIdx.x);
    const long long first = (long long)(blockIdx.x - s.first_block) * elements_per_block;
    const long long last = min(first + elements_per_block, s.count);
    for (long long i = first + threadIdx.x; i < last; i += blockDim.x)
    {
        const float p_old = s.param[i];
        const float g = s.grad[i] + l2 * p_old;
        const float m = beta1 * s.m[i] + (1.0f - beta1) * g;
        const float v = beta2 * s.v[i] + (1.0f - beta2) * g * g;
        s.m[i] = m;
        s.v[i] = v;
        s.param[i] = p_old * decay - s.step_size * m / (sqrtf(v) / s.bc2_sqrt + eps);
    }
}
