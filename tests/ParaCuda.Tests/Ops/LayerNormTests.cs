using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class LayerNormTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [Test]
    public void Forward_matches_reference_and_saves_statistics()
    {
        using var scope = TensorScope.Begin();
        const int rows = 200, cols = 192;
        var x = Rand.Values(rows * cols, 1, scale: 3);
        var gamma = Rand.Values(cols, 2);
        var beta = Rand.Values(cols, 3);
        var (y, mean, rstd) = (Rand.Poisoned(new Shape(rows, cols)), Rand.Poisoned(new Shape(rows)), Rand.Poisoned(new Shape(rows)));
        s_ops.LayerNorm(Rand.Tensor(x, new Shape(rows, cols)), Rand.Tensor(gamma, new Shape(cols)), Rand.Tensor(beta, new Shape(cols)), 1e-5f, y, mean, rstd);
        Close.Check(y.ToArray<float>(), Reference.LayerNorm(x, gamma, beta, rows, cols), 1e-5, "LayerNorm");
        var expectedMean = Enumerable.Range(0, rows).Select(r => x.Skip(r * cols).Take(cols).Average()).ToArray();
        Close.Check(mean.ToArray<float>(), expectedMean, 1e-5, "mean");
    }

    [Test]
    public void Gradients_match_finite_differences() =>
        GradCheck.Run(
            "LayerNorm",
            [new Shape(2, 3, 8), new Shape(8), new Shape(8)],
            t => F.LayerNorm(t[0], t[1], t[2]),
            v => Reference.LayerNorm(v[0], v[1], v[2], 6, 8));

    [Test]
    public void The_fused_residual_add_gives_the_numbers_of_the_add_and_the_layernorm_bit_for_bit()
    {
        using var scope = TensorScope.Begin();
        const int rows = 130, cols = 48;
        var (a, b) = (Rand.Tensor(new Shape(rows, cols), 1, scale: 2), Rand.Tensor(new Shape(rows, cols), 2));
        var (gamma, beta) = (Rand.Tensor(new Shape(cols), 3), Rand.Tensor(new Shape(cols), 4));
        var (sum, y, mean, rstd) = (Rand.Poisoned(a.Shape), Rand.Poisoned(a.Shape), Rand.Poisoned(new Shape(rows)), Rand.Poisoned(new Shape(rows)));
        s_ops.AddLayerNorm(a, b, gamma, beta, 1e-5f, sum, y, mean, rstd);
        var (added, y2, mean2, rstd2) = (a.EmptyLike(), a.EmptyLike(), Tensor.Empty(new Shape(rows)), Tensor.Empty(new Shape(rows)));
        s_ops.Add(a, b, added);
        s_ops.LayerNorm(added, gamma, beta, 1e-5f, y2, mean2, rstd2);
        Assert.Multiple(() =>
        {
            Assert.That(sum.ToArray<float>(), Is.EqualTo(added.ToArray<float>()), "sum");
            Assert.That(y.ToArray<float>(), Is.EqualTo(y2.ToArray<float>()), "y");
            Assert.That(mean.ToArray<float>(), Is.EqualTo(mean2.ToArray<float>()), "mean");
            Assert.That(rstd.ToArray<float>(), Is.EqualTo(rstd2.ToArray<float>()), "rstd");
        });
    }

    [Test]
    public void The_fused_residual_add_has_the_gradients_of_its_two_ops() =>
        GradCheck.Run(
            "AddLayerNorm",
            [new Shape(2, 3, 8), new Shape(2, 3, 8), new Shape(8), new Shape(8)],
            t =>
            {
                var (sum, normalized) = F.AddLayerNorm(t[0], t[1], t[2], t[3]);
                return F.Add(F.Scale(sum, 0.5f), normalized);
            },
            v =>
            {
                var sum = v[0].Zip(v[1], (x, y) => x + y).ToArray();
                return sum.Zip(Reference.LayerNorm(sum, v[2], v[3], 6, 8), (s, n) => (0.5 * s) + n).ToArray();
            });

    [Test]
    public void Backward_accumulates_each_output_independently()
    {
        using var scope = TensorScope.Begin();
        const int rows = 130, cols = 24;
        var x = Rand.Tensor(new Shape(rows, cols), 1);
        var gamma = Rand.Tensor(new Shape(cols), 2);
        var beta = Rand.Tensor(new Shape(cols), 3);
        var dy = Rand.Tensor(new Shape(rows, cols), 4);
        var (y, mean, rstd) = (x.EmptyLike(), Tensor.Empty(new Shape(rows)), Tensor.Empty(new Shape(rows)));
        s_ops.LayerNorm(x, gamma, beta, 1e-5f, y, mean, rstd);
        var (dx, dg, db) = (x.EmptyLike(), gamma.EmptyLike(), gamma.EmptyLike());
        s_ops.LayerNormBackward(dy, x, gamma, mean, rstd, dx, dg, db);
        var once = (dx.ToArray<float>(), dg.ToArray<float>(), db.ToArray<float>());

        // Accumulate into dx and dbeta only; dgamma is overwritten with the same value.
        s_ops.LayerNormBackward(dy, x, gamma, mean, rstd, new GradOut(dx, true), new GradOut(dg, false), new GradOut(db, true));
        Close.Check(dx.ToArray<float>(), once.Item1.Select(v => 2.0 * v).ToArray(), 1e-6, "dx accumulated");
        Close.Check(dg.ToArray<float>(), once.Item2.Select(v => (double)v).ToArray(), 0, "dgamma overwritten");
        Close.Check(db.ToArray<float>(), once.Item3.Select(v => 2.0 * v).ToArray(), 1e-6, "dbeta accumulated");
    }
}
