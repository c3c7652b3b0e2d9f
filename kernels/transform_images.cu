// transform_images.cu: stored image bytes → model input on the device (TransformImages), so a batch travels as
// bytes plus three small integers per image instead of floats. Per image b, channel c, output pixel (y, x):
//
//   along each axis, output position i maps through the mirror (columns only) and the crop offset to position
//   p = (flip ? S-1-i : i) + offset of the S-long resized axis; outside [0, S) the pixel is padding (black);
//   inside, source = max((p + ½)·in/S − ½, 0), taps i0 = min(⌊source⌋, in−1), i1 = min(i0+1, in−1), weight
//   w = source − i0 (bilinear, align_corners=false);
//   top = u[x0] + (u[x1] − u[x0])·wx on the upper row, bottom likewise on the lower, then
//   out = (top + (bottom − top)·wy)·scale[c] + black[c],   scale = 1/(255·std), black = −mean/std.
//
// The same operations in the same order as the CPU (Backends/ImageTransform.cs), with the round-to-nearest
// intrinsics so the compiler fuses nothing into an FMA: the device's images equal the CPU's bit for bit.
// draws [B, 3] holds (top, left, flip). At most 4 channels. Launch: grid-stride over the outputs; block = 256.
#include "common.cuh"

// Source taps and weight for output position i of one axis; false when it falls in the padding.
__device__ __forceinline__ bool axis_tap(int input, int size, int i, int offset, bool mirror, int* i0, int* i1, float* w)
{
    const int p = (mirror ? size - 1 - i : i) + offset;
    if (p < 0 || p >= size)
        return false;
    const float ratio = __fdiv_rn((float)input, (float)size);
    const float source = fmaxf(__fsub_rn(__fmul_rn(__fadd_rn((float)p, 0.5f), ratio), 0.5f), 0.0f);
    *i0 = min((int)source, input - 1);
    *i1 = min(*i0 + 1, input - 1);
    *w = __fsub_rn(source, (float)*i0);
    return true;
}

__device__ __forceinline__ float lerp_bytes(const unsigned char* row, int x0, int x1, float w)
{
    return __fadd_rn((float)row[x0], __fmul_rn((float)(row[x1] - row[x0]), w));
}

extern "C" __global__ void transform_images(
    const unsigned char* __restrict__ pixels, const int* __restrict__ draws, int batch, int channels, int height, int width, int size,
    float scale0, float scale1, float scale2, float scale3, float black0, float black1, float black2, float black3, float* __restrict__ images)
{
    const float scales[4] = {scale0, scale1, scale2, scale3};
    const float blacks[4] = {black0, black1, black2, black3};
    const long long plane = (long long)size * size;
    const long long n = (long long)batch * channels * plane;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const int x = (int)(i % size);
        const int y = (int)(i / size % size);
        const int c = (int)(i / plane % channels);
        const long long b = i / (plane * channels);
        const int* draw = draws + 3 * b;
        int y0, y1, x0, x1;
        float wy, wx;
        float value = blacks[c];
        if (axis_tap(height, size, y, draw[0], false, &y0, &y1, &wy) && axis_tap(width, size, x, draw[1], draw[2] != 0, &x0, &x1, &wx))
        {
            const unsigned char* image = pixels + ((long long)b * channels + c) * height * width;
            const float top = lerp_bytes(image + (long long)y0 * width, x0, x1, wx);
            const float bottom = lerp_bytes(image + (long long)y1 * width, x0, x1, wx);
            value = __fadd_rn(__fmul_rn(__fadd_rn(top, __fmul_rn(__fsub_rn(bottom, top), wy)), scales[c]), blacks[c]);
        }
        images[i] = value;
    }
}
