using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

/// <summary>
/// The op set on the host. Split by concern over the CpuOps.*.cs files; each op states its math on
/// <see cref="Ops"/>. Loops run over raw pointers so they can be handed to worker threads, and
/// reductions combine fixed-size blocks in a fixed order so results are bit-identical run to run.
/// </summary>
internal sealed unsafe partial class CpuOps() : Ops(Device.Cpu)
{
    /// <summary>Rows per partial sum in column reductions (bias and LayerNorm parameter gradients).</summary>
    private const int ReductionBlock = 64;

    private static float* F(Tensor t) => (float*)((CpuStorage)t.Storage).Pointer + t.Offset;

    private static ushort* H(Tensor t) => (ushort*)((CpuStorage)t.Storage).Pointer + t.Offset;

    private static int* I(Tensor t) => (int*)((CpuStorage)t.Storage).Pointer + t.Offset;

    private static float* OrNull(Tensor? t) => t is null ? null : F(t);

    private static int Count(Tensor t) => checked((int)t.NumElements);

    private static int LastDim(Tensor t) => t.Shape[-1];

    private static int Rows(Tensor t) => LastDim(t) == 0 ? 0 : Count(t) / LastDim(t);

    private static TensorOpException Unsupported(string op, Tensor t) => new(op, $"{t.DType} is not supported on the CPU backend yet");

    /// <summary>Runs an elementwise body over chunks of [0, n), in parallel for large n.</summary>
    private static void Elementwise(int n, Action<int, int> body) => CpuParallel.For(n, 1, body);

    /// <summary>
    /// Column sums of a [rows, cols] matrix into <paramref name="output"/> (accumulating or not), in fixed
    /// blocks of rows whose partials are added in block order.
    /// </summary>
    private static void ColumnSums(float* x, int rows, int cols, float* output, bool accumulate)
    {
        var blocks = (rows + ReductionBlock - 1) / ReductionBlock;
        var partials = new float[(long)Math.Max(blocks, 1) * cols];
        fixed (float* p = partials)
        {
            var pp = p;
            CpuParallel.ForBlocks(rows, ReductionBlock, cols, (blk, r0, r1) =>
            {
                var dst = new Span<float>(pp + ((long)blk * cols), cols);
                for (var r = r0; r < r1; r++)
                {
                    TensorPrimitives.Add(dst, new ReadOnlySpan<float>(x + ((long)r * cols), cols), dst);
                }
            });
            var result = new Span<float>(output, cols);
            if (!accumulate)
            {
                result.Clear();
            }

            for (var blk = 0; blk < blocks; blk++)
            {
                TensorPrimitives.Add(result, new ReadOnlySpan<float>(p + ((long)blk * cols), cols), result);
            }
        }
    }

    /// <summary>Σ x over n elements, with float32 blocks combined in double in a fixed order.</summary>
    private static double Sum(float* x, long n, bool squares)
    {
        const int block = 16_384;
        var blocks = (int)((n + block - 1) / block);
        var partials = new double[blocks];
        CpuParallel.ForBlocks((int)Math.Min(n, int.MaxValue), block, 1, (blk, i0, i1) =>
        {
            var span = new ReadOnlySpan<float>(x + i0, i1 - i0);
            partials[blk] = squares ? TensorPrimitives.SumOfSquares(span) : TensorPrimitives.Sum(span);
        });
        var total = 0.0;
        foreach (var p in partials)
        {
            total += p;
        }

        return total;
    }
}
