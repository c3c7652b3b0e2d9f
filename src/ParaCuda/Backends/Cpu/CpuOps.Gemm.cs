using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void GemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        var (m, k) = transA ? (a.Shape[1], a.Shape[0]) : (a.Shape[0], a.Shape[1]);
        var n = c.Shape[1];
        CpuGemm.Multiply(m, n, k, F(a), a.Shape[1], transA, F(b), b.Shape[1], transB, F(c), n, alpha, beta, OrNull(bias));
    }

    protected override void BatchedGemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta)
    {
        var batch = a.Shape[0];
        var (m, k) = transA ? (a.Shape[2], a.Shape[1]) : (a.Shape[1], a.Shape[2]);
        var n = c.Shape[2];
        long strideA = a.Shape[1] * a.Shape[2], strideB = b.Shape[1] * b.Shape[2], strideC = (long)m * n;
        float* pa = F(a), pb = F(b), pc = F(c);
        int lda = a.Shape[2], ldb = b.Shape[2];

        // Small products (attention-sized) parallelise across the batch; large ones inside the GEMM.
        CpuParallel.For(batch, 2.0 * m * n * k / CpuGemm.ParallelThreshold, (i0, i1) =>
        {
            for (var i = i0; i < i1; i++)
            {
                CpuGemm.Multiply(m, n, k, pa + (i * strideA), lda, transA, pb + (i * strideB), ldb, transB, pc + (i * strideC), n, alpha, beta, null);
            }
        });
    }

    protected override void SumRowsCore(Tensor x, GradOut output) =>
        ColumnSums(F(x), Rows(x), LastDim(x), F(output.Tensor!), output.Accumulate);
}
