// classify.cu: predictions and the count of correct ones.
//
//   argmax_rows:   indices[r] = the first j with the largest x[r, j]; a NaN never wins (a NaN row reports its
//                  first finite maximum), as the CPU backend
//   count_correct: count[0] += #{r : argmax logits[r] = labels[r]} (the caller zeroes count; integer adds
//                  are exact, so the atomic keeps the result deterministic)
//
// Launch: one thread per row (class counts are small, and the sequential scan fixes the tie order);
// grid-stride, block = 256.
#include "common.cuh"

__device__ __forceinline__ int first_argmax(const float* row, int classes)
{
    int best = 0;
    for (int j = 1; j < classes; ++j)
        if (row[j] > row[best] || row[best] != row[best])
            best = j;
    return best;
}

extern "C" __global__ void argmax_rows(const float* __restrict__ x, int rows, int classes, int* __restrict__ indices)
{
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x)
        indices[r] = first_argmax(x + (long long)r * classes, classes);
}

extern "C" __global__ void count_correct(const float* __restrict__ logits, const int* __restrict__ labels, int rows, int classes, int* __restrict__ count)
{
    int correct = 0;
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x)
        correct += first_argmax(logits + (long long)r * classes, classes) == labels[r] ? 1 : 0;
    for (int offset = PC_WARP / 2; offset > 0; offset >>= 1)
        correct += __shfl_xor_sync(PC_FULL_MASK, correct, offset);
    if (threadIdx.x % PC_WARP == 0 && correct != 0)
        atomicAdd(count, correct);
}
