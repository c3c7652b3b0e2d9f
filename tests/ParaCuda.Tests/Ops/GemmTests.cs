using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class GemmTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    private static IEnumerable<TestCaseData> Cases()
    {
        int[][] sizes = [[1, 1, 1], [7, 13, 5], [64, 48, 33], [130, 70, 257], [256, 192, 96]];
        foreach (var s in sizes)
        {
            foreach (var transA in new[] { false, true })
            {
                foreach (var transB in new[] { false, true })
                {
                    yield return new TestCaseData(s[0], s[1], s[2], transA, transB, 1f, 0f, false);
                }
            }
        }

        yield return new TestCaseData(33, 17, 65, false, true, 0.5f, 1f, true);
        yield return new TestCaseData(33, 17, 65, true, false, -1.5f, 0.25f, true);
        yield return new TestCaseData(5, 9, 0, false, false, 1f, 0.5f, true);
    }

    [TestCaseSource(nameof(Cases))]
    public void Gemm_matches_float64_reference(int m, int n, int k, bool transA, bool transB, float alpha, float beta, bool bias)
    {
        using var scope = TensorScope.Begin();
        var a = Rand.Values((long)m * k, 1);
        var b = Rand.Values((long)k * n, 2);
        var c0 = Rand.Values((long)m * n, 3);
        var bv = Rand.Values(n, 4);
        var c = beta == 0f ? Rand.Poisoned(new Shape(m, n)) : Rand.Tensor(c0, new Shape(m, n));
        s_ops.Gemm(
            Rand.Tensor(a, transA ? new Shape(k, m) : new Shape(m, k)),
            Rand.Tensor(b, transB ? new Shape(n, k) : new Shape(k, n)),
            c, transA, transB, alpha, beta, bias ? Rand.Tensor(bv, new Shape(n)) : null);
        var expected = Reference.Gemm(a, b, m, n, k, transA, transB, alpha, beta, c0, bias ? bv : null);
        Close.Check(c.ToArray<float>(), expected, 1e-5, "Gemm");
    }

    [TestCase(false, false)]
    [TestCase(true, true)]
    public void BatchedGemm_multiplies_each_batch(bool transA, bool transB)
    {
        using var scope = TensorScope.Begin();
        const int batch = 3, m = 9, n = 50, k = 17;
        var a = Rand.Values(batch * m * k, 5);
        var b = Rand.Values(batch * k * n, 6);
        var c = Rand.Poisoned(new Shape(batch, m, n));
        s_ops.BatchedGemm(
            Rand.Tensor(a, transA ? new Shape(batch, k, m) : new Shape(batch, m, k)),
            Rand.Tensor(b, transB ? new Shape(batch, n, k) : new Shape(batch, k, n)),
            c, transA, transB, 2f);
        var expected = Enumerable.Range(0, batch).SelectMany(i =>
            Reference.Gemm(a[(i * m * k)..((i + 1) * m * k)], b[(i * k * n)..((i + 1) * k * n)], m, n, k, transA, transB, 2)).ToArray();
        Close.Check(c.ToArray<float>(), expected, 1e-5, "BatchedGemm");
    }

    [Test]
    public void Linear_gradients_match_finite_differences() =>
        GradCheck.Run(
            "Linear",
            [new Shape(2, 3, 7), new Shape(5, 7), new Shape(5)],
            t => F.Linear(t[0], t[1], t[2]),
            v => Reference.Linear(v[0], v[1], v[2], 6, 7, 5));

    [Test]
    public void Matmul_gradients_match_finite_differences_in_2d_and_batched()
    {
        GradCheck.Run("Matmul", [new Shape(4, 6), new Shape(6, 3)], t => F.Matmul(t[0], t[1]), v => Reference.Gemm(v[0], v[1], 4, 3, 6));
        GradCheck.Run(
            "BatchedMatmul",
            [new Shape(2, 4, 6), new Shape(2, 6, 3)],
            t => F.Matmul(t[0], t[1]),
            v => [.. Reference.Gemm(v[0][..24], v[1][..18], 4, 3, 6), .. Reference.Gemm(v[0][24..], v[1][18..], 4, 3, 6)]);
    }

    [Test]
    public void SumRows_overwrites_or_accumulates()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Values(300 * 7, 8);
        var expected = new double[7];
        for (var i = 0; i < x.Length; i++)
        {
            expected[i % 7] += x[i];
        }

        var output = Rand.Poisoned(new Shape(7));
        var xt = Rand.Tensor(x, new Shape(300, 7));
        s_ops.SumRows(xt, output);
        Close.Check(output.ToArray<float>(), expected, 1e-6, "SumRows");
        s_ops.SumRows(xt, new GradOut(output, Accumulate: true));
        Close.Check(output.ToArray<float>(), expected.Select(v => 2 * v).ToArray(), 1e-6, "SumRows accumulated");
    }

    [Test]
    public void WeightGrad_gives_each_group_its_own_weight_and_bias_gradients()
    {
        using var scope = TensorScope.Begin();
        const int groups = 2, rows = 5, outFeatures = 3, inFeatures = 4;
        var (dy, x) = (Rand.Values(groups * rows * outFeatures, 21), Rand.Values(groups * rows * inFeatures, 22));
        var (expectedW, expectedB) = (new double[groups * outFeatures * inFeatures], new double[groups * outFeatures]);
        for (var g = 0; g < groups; g++)
        {
            for (var r = 0; r < rows; r++)
            {
                for (var o = 0; o < outFeatures; o++)
                {
                    var d = dy[(((g * rows) + r) * outFeatures) + o];
                    expectedB[(g * outFeatures) + o] += d;
                    for (var i = 0; i < inFeatures; i++)
                    {
                        expectedW[(((g * outFeatures) + o) * inFeatures) + i] += d * x[(((g * rows) + r) * inFeatures) + i];
                    }
                }
            }
        }

        var (dw, dbias) = (Rand.Poisoned(new Shape(groups, outFeatures, inFeatures)), Rand.Poisoned(new Shape(groups, outFeatures)));
        s_ops.WeightGrad(Rand.Tensor(dy, new Shape(groups, rows, outFeatures)), Rand.Tensor(x, new Shape(groups, rows, inFeatures)), dw, dbias);
        Close.Check(dw.ToArray<float>(), expectedW, 1e-6, "dw");
        Close.Check(dbias.ToArray<float>(), expectedB, 1e-6, "dbias");
    }
}
