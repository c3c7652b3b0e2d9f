// cast.cu: dtype conversion between float32 and bf16 (Cast). Launch: grid-stride over n; block = 256.
//
//   f32_to_bf16: dst[i] = bf16(src[i]), rounded to nearest even (cvt.rn.bf16.f32; NaN stays NaN)
//   bf16_to_f32: dst[i] = src[i], exact (a bf16 is the upper half of a float32)
#include "common.cuh"

extern "C" __global__ void f32_to_bf16(const float* __restrict__ src, long long n, unsigned short* __restrict__ dst)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dst[i] = float_to_bf16(src[i]);
}

extern "C" __global__ void bf16_to_f32(const unsigned short* __restrict__ src, long long n, float* __restrict__ dst)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dst[i] = bf16_to_float(src[i]);
}
