// patchify.cu: images [B, C, H, W] → patches [B, (H/p)·(W/p), p·p·C], patch n = (row, col) in raster order,
// its features in (p1, p2, c) order: the reference's 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'.
//
//   patches[b, pr·cols + pc, (p1·p + p2)·C + c] = images[b, c, pr·p + p1, pc·p + p2]
//
// Launch: grid-stride over the output elements (consecutive threads write consecutive features); block = 256.
#include "common.cuh"

extern "C" __global__ void patchify(const float* __restrict__ images, int batch, int channels, int height, int width, int patch, float* __restrict__ patches)
{
    const int cols = width / patch;
    const int features = patch * patch * channels;
    const long long per_image = (long long)(height / patch) * cols * features;
    const long long n = batch * per_image;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    {
        const int b = (int)(i / per_image);
        const long long rest = i % per_image;
        const int token = (int)(rest / features);
        const int f = (int)(rest % features);
        const int c = f % channels;
        const int p2 = (f / channels) % patch;
        const int p1 = f / (channels * patch);
        const int y = (token / cols) * patch + p1;
        const int x = (token % cols) * patch + p2;
        patches[i] = images[(((long long)b * channels + c) * height + y) * width + x];
    }
}
