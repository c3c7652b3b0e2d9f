// adam.cu: Adam / AdamW over every parameter tensor in one launch, torch.optim.Adam's arithmetic:
//
//   p ← p · decay                         (decay = 1 - lr·wd for AdamW, else 1)
//   g ← grad + l2 · p_old                 (l2 = wd for Adam's L2 form, else 0)
//   m ← β1·m + (1-β1)·g        v ← β2·v + (1-β2)·g²
//   p ← p - step_size · m / (√v / √bc2 + ε)      step_size = lr / bc1, bc_i = 1 - β_i^t
//
// Each tensor counts its own steps in device memory (a parameter without a gradient is skipped and keeps its
// count), and the learning rate may come from device memory too: the update reads both when it runs, so a
// captured training step replayed again and again keeps counting. adam_update uses t = count + 1 with the bias
// corrections in double, as the CPU reference computes them; adam_count then stores t.
// Launch: adam_update: block b updates elements [(b - first_block)·E, …+E) of the tensor whose block range
// holds b (see common.cuh, slice_of_block); block = 256 threads. adam_count: one thread per tensor.
#include "common.cuh"

struct AdamSlice
{
    float* param;
    const float* grad;
    float* m;
    float* v;
    int* step;
    long long count;
    int first_block;
    int pad;
};

extern "C" __global__ void adam_update(
    const AdamSlice* __restrict__ slices, int tensors, long long elements_per_block, const float* __restrict__ lr_on_device,
    float lr_given, float beta1, float beta2, float eps, float weight_decay, int decoupled)
{
    const AdamSlice s = slice_of_block(slices, tensors, blockIdx.x);
    const double t = (double)(*s.step + 1);
    const float lr = lr_on_device != nullptr ? *lr_on_device : lr_given;
    const float step_size = (float)((double)lr / (1.0 - pow((double)beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)beta2, t));
    // Rounded as the CPU rounds 1 - lr·wd: a contracted fma would differ in the last bit.
    const float decay = decoupled ? __fsub_rn(1.0f, __fmul_rn(lr, weight_decay)) : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
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
        s.param[i] = p_old * decay - step_size * m / (sqrtf(v) / bc2_sqrt + eps);
    }
}

extern "C" __global__ void adam_count(const AdamSlice* __restrict__ slices, int tensors)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < tensors)
        *slices[i].step += 1;
}
