using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void LayerNormCore(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        float* px = F(x), py = F(y), pg = F(gamma), pb = F(beta), pm = F(mean), pr = F(rstd);
        var cols = LastDim(x);
        CpuParallel.For(Rows(x), cols * 6, (r0, r1) =>
        {
            var g = new ReadOnlySpan<float>(pg, cols);
            var b = new ReadOnlySpan<float>(pb, cols);
            for (var r = r0; r < r1; r++)
            {
                var row = new ReadOnlySpan<float>(px + ((long)r * cols), cols);
                var outRow = new Span<float>(py + ((long)r * cols), cols);

                // Two passes (mean, then squared deviations) avoid the cancellation of E[x²] - E[x]².
                var mu = TensorPrimitives.Sum(row) / cols;
                TensorPrimitives.Subtract(row, mu, outRow);
                var variance = TensorPrimitives.SumOfSquares(outRow) / cols;
                var rs = 1f / MathF.Sqrt(variance + eps);
                TensorPrimitives.Multiply(outRow, rs, outRow);
                TensorPrimitives.FusedMultiplyAdd(outRow, g, b, outRow);
                pm[r] = mu;
                pr[r] = rs;
            }
        });
    }

    protected override void LayerNormBackwardCore(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, GradOut dx, GradOut dgamma, GradOut dbeta)
    {
        float* pdy = F(dy), px = F(x), pg = F(gamma), pm = F(mean), pr = F(rstd), pdx = OrNull(dx.Tensor);
        var accumulateDx = dx.Accumulate;
        var cols = LastDim(x);
        var rows = Rows(x);
        var blocks = (rows + ReductionBlock - 1) / ReductionBlock;

        // Per block of rows: partial dgamma and dbeta, combined in block order below.
        var partialGamma = dgamma.Tensor is null ? null : new float[(long)blocks * cols];
        var partialBeta = dbeta.Tensor is null ? null : new float[(long)blocks * cols];
        CpuParallel.ForBlocks(rows, ReductionBlock, cols * 10, (blk, r0, r1) =>
        {
            var xhat = new float[cols];
            var g = new float[cols];
            var gamma1 = new ReadOnlySpan<float>(pg, cols);
            for (var r = r0; r < r1; r++)
            {
                var offset = (long)r * cols;
                var dyRow = new ReadOnlySpan<float>(pdy + offset, cols);
                TensorPrimitives.Subtract(new ReadOnlySpan<float>(px + offset, cols), pm[r], xhat);
                TensorPrimitives.Multiply(xhat, pr[r], xhat);
                if (partialGamma is not null)
                {
                    var pgRow = partialGamma.AsSpan(blk * cols, cols);
                    TensorPrimitives.FusedMultiplyAdd(dyRow, xhat, pgRow, pgRow);
                }

                if (partialBeta is not null)
                {
                    var pbRow = partialBeta.AsSpan(blk * cols, cols);
                    TensorPrimitives.Add(pbRow, dyRow, pbRow);
                }

                if (pdx == null)
                {
                    continue;
                }

                // dx = rstd · (g - mean(g) - x̂ · mean(g·x̂)), g = dy·gamma.
                TensorPrimitives.Multiply(dyRow, gamma1, g);
                var meanG = TensorPrimitives.Sum(g) / cols;
                var meanGx = TensorPrimitives.Dot(g, xhat) / cols;
                TensorPrimitives.MultiplyAdd(xhat, -meanGx, g, g);
                TensorPrimitives.Subtract(g, meanG, g);
                var dxRow = new Span<float>(pdx + offset, cols);
                if (accumulateDx)
                {
                    TensorPrimitives.MultiplyAdd(g, pr[r], dxRow, dxRow);
                }
                else
                {
                    TensorPrimitives.Multiply(g, pr[r], dxRow);
                }
            }
        });

        if (dgamma.Tensor is { } dg)
        {
            fixed (float* p = partialGamma)
            {
                ColumnSums(p, blocks, cols, F(dg), dgamma.Accumulate);
            }
        }

        if (dbeta.Tensor is { } db)
        {
            fixed (float* p = partialBeta)
            {
                ColumnSums(p, blocks, cols, F(db), dbeta.Accumulate);
            }
        }
    }
}
