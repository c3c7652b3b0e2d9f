using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void GemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        if (OnFloat32([a, b, c], [2], t => GemmCore(t[0]!, t[1]!, t[2]!, transA, transB, alpha, beta, bias)))
        {
            return;
        }

        var (m, k) = transA ? (a.Shape[1], a.Shape[0]) : (a.Shape[0], a.Shape[1]);
        var n = c.Shape[1];
        CpuGemm.Multiply(m, n, k, F(a), a.Shape[1], transA, F(b), b.Shape[1], transB, F(c), n, alpha, beta, OrNull(bias));
    }

    protected override void BatchedGemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        if (OnFloat32([a, b, c], [2], t => BatchedGemmCore(t[0]!, t[1]!, t[2]!, transA, transB, alpha, beta, bias)))
        {
            return;
        }

        var batch = a.Shape[0];
        var (m, k) = transA ? (a.Shape[2], a.Shape[1]) : (a.Shape[1], a.Shape[2]);
        var n = c.Shape[2];
        long strideA = a.Shape[1] * a.Shape[2], strideB = b.Shape[1] * b.Shape[2], strideC = (long)m * n;
        float* pa = F(a), pb = F(b), pc = F(c), pbias = OrNull(bias);
        int lda = a.Shape[2], ldb = b.Shape[2];

        // Small products (attention-sized) parallelise across the batch; large ones inside the GEMM.
        CpuParallel.For(batch, 2.0 * m * n * k / CpuGemm.ParallelThreshold, (i0, i1) =>
        {
            for (var i = i0; i < i1; i++)
            {
                CpuGemm.Multiply(m, n, k, pa + (i * strideA), lda, transA, pb + (i * strideB), ldb, transB, pc + (i * strideC), n, alpha, beta, pbias == null ? null : pbias + ((long)i * n));
            }
        });
    }

    protected override void SumRowsCore(Tensor x, GradOut output)
    {
        if (OnFloat32([x], [], t => SumRowsCore(t[0]!, output)))
        {
            return;
        }

        var groups = Groups(output.Tensor!);
        GroupColumnSums(F(x), groups, Rows(x) / groups, LastDim(x), F(output.Tensor!), output.Accumulate);
    }

    /// <summary>out[g, c] (+)= Σ over group g's rows of x[r, c], each group summed as it would be alone.</summary>
    private static void GroupColumnSums(float* x, int groups, int groupRows, int cols, float* output, bool accumulate)
    {
        for (var g = 0; g < groups; g++)
        {
            ColumnSums(x + ((long)g * groupRows * cols), groupRows, cols, output + ((long)g * cols), accumulate);
        }
    }
}
