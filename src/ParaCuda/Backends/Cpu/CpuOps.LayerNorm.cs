using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void LayerNormCore(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd) =>
        NormalizeRows(x, null, null, gamma, beta, eps, y, mean, rstd);

    protected override void AddLayerNormCore(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps, Tensor sum, Tensor y, Tensor mean, Tensor rstd) =>
        NormalizeRows(a, b, sum, gamma, beta, eps, y, mean, rstd);

    /// <summary>LayerNorm of x's rows, or of x + residual's (written to sum first) when a residual is given.</summary>
    private static void NormalizeRows(Tensor x, Tensor? residual, Tensor? sum, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        float* px = F(x), py = F(y), pg = F(gamma), pb = F(beta), pm = F(mean), pr = F(rstd), pres = OrNull(residual), psum = OrNull(sum);
        var cols = LastDim(x);
        var groupRows = Rows(x) / Groups(gamma);
        CpuParallel.For(Rows(x), cols * 6, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                var group = (long)(r / groupRows) * cols;
                var g = new ReadOnlySpan<float>(pg + group, cols);
                var b = new ReadOnlySpan<float>(pb + group, cols);
                var row = new ReadOnlySpan<float>(px + ((long)r * cols), cols);
                if (pres != null)
                {
                    var total = new Span<float>(psum + ((long)r * cols), cols);
                    TensorPrimitives.Add(row, new ReadOnlySpan<float>(pres + ((long)r * cols), cols), total);
                    row = total;
                }

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
        // Groups (branches batched) one after another, each exactly as it would run alone.
        var (groups, cols) = (Groups(gamma), LastDim(x));
        var rows = Rows(x) / groups;
        float* pdy = F(dy), px = F(x), pg = F(gamma), pm = F(mean), pr = F(rstd), pdx = OrNull(dx.Tensor), pdg = OrNull(dgamma.Tensor), pdb = OrNull(dbeta.Tensor);
        for (var group = 0; group < groups; group++)
        {
            var (rowOffset, elementOffset, paramOffset) = ((long)group * rows, (long)group * rows * cols, (long)group * cols);
            LayerNormBackwardRows(
                pdy + elementOffset, px + elementOffset, pg + paramOffset, pm + rowOffset, pr + rowOffset, rows, cols,
                pdx == null ? null : pdx + elementOffset, dx.Accumulate,
                pdg == null ? null : pdg + paramOffset, dgamma.Accumulate,
                pdb == null ? null : pdb + paramOffset, dbeta.Accumulate);
        }
    }

    private static void LayerNormBackwardRows(
        float* pdy, float* px, float* pg, float* pm, float* pr, int rows, int cols,
        float* pdx, bool accumulateDx, float* pdgamma, bool accumulateGamma, float* pdbeta, bool accumulateBeta)
    {
        var blocks = (rows + ReductionBlock - 1) / ReductionBlock;

        // Per block of rows: partial dgamma and dbeta, combined in block order below.
        var partialGamma = pdgamma == null ? null : new float[(long)blocks * cols];
        var partialBeta = pdbeta == null ? null : new float[(long)blocks * cols];
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

        if (pdgamma != null)
        {
            fixed (float* p = partialGamma)
            {
                ColumnSums(p, blocks, cols, pdgamma, accumulateGamma);
            }
        }

        if (pdbeta != null)
        {
            fixed (float* p = partialBeta)
            {
                ColumnSums(p, blocks, cols, pdbeta, accumulateBeta);
            }
        }
    }
}
