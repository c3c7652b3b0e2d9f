using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class ElementwiseTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [Test]
    public void Add_and_Scale_match_reference_and_allow_aliasing()
    {
        using var scope = TensorScope.Begin();
        var a = Rand.Values(1000, 1);
        var b = Rand.Values(1000, 2);
        var ta = Rand.Tensor(a, new Shape(10, 100));
        var output = Rand.Poisoned(new Shape(10, 100));
        s_ops.Add(ta, Rand.Tensor(b, new Shape(10, 100)), output);
        Close.Check(output.ToArray<float>(), a.Zip(b, (x, y) => x + y).ToArray(), 1e-7, "Add");
        s_ops.Scale(ta, -3f, ta);
        Close.Check(ta.ToArray<float>(), a.Select(x => -3 * x).ToArray(), 1e-7, "Scale in place");
    }

    [Test]
    public void SumMany_gradients_reach_every_term() =>
        GradCheck.Run(
            "SumMany",
            [new Shape(3, 4), new Shape(3, 4), new Shape(3, 4)],
            t => F.SumMany(t),
            v => v[0].Select((x, i) => x + v[1][i] + v[2][i]).ToArray());

    [Test]
    public void BiasGelu_matches_erf_gelu_and_its_gradient()
    {
        GradCheck.Run(
            "BiasGelu",
            [new Shape(6, 9), new Shape(9)],
            t => F.BiasGelu(F.Scale(t[0], 3f), t[1]),
            v => v[0].Select((x, i) => Reference.Gelu((3 * x) + v[1][i % 9])).ToArray());
    }

    [Test]
    public void LinearGelu_matches_gelu_of_the_linear_layer_and_its_gradients()
    {
        GradCheck.Run(
            "LinearGelu",
            [new Shape(2, 3, 5), new Shape(4, 5), new Shape(4)],
            t => F.LinearGelu(t[0], t[1], t[2]),
            v => Reference.Gemm(v[0], v[1], 6, 4, 5, transB: true, bias: v[2]).Select(Reference.Gelu).ToArray());
        GradCheck.Run(
            "LinearGelu, branches batched",
            [new Shape(2, 3, 5), new Shape(2, 4, 5), new Shape(2, 4)],
            t => F.LinearGelu(t[0], t[1], t[2]),
            v => [.. Reference.Gemm(v[0][..15], v[1][..20], 3, 4, 5, transB: true, bias: v[2][..4]).Select(Reference.Gelu), .. Reference.Gemm(v[0][15..], v[1][20..], 3, 4, 5, transB: true, bias: v[2][4..]).Select(Reference.Gelu)]);
    }

    [Test]
    public void Gelu_is_accurate_over_a_wide_range()
    {
        using var scope = TensorScope.Begin();
        var x = Enumerable.Range(-4000, 8001).Select(i => (double)(float)(i / 500.0)).ToArray();
        var y = Rand.Poisoned(new Shape(x.Length));
        s_ops.BiasGelu(Rand.Tensor(x, new Shape(x.Length)), null, y);
        var actual = y.ToArray<float>();
        for (var i = 0; i < x.Length; i++)
        {
            var expected = Reference.Gelu(x[i]);
            Assert.That(actual[i], Is.EqualTo(expected).Within((2e-7 * Math.Abs(expected)) + 1e-7), $"gelu({x[i]})");
        }
    }

    [Test]
    public void Reference_erf_matches_tabulated_values()
    {
        Assert.That(Reference.Erf(0.5), Is.EqualTo(0.5204998778130465).Within(1e-14));
        Assert.That(Reference.Erf(1.0), Is.EqualTo(0.8427007929497149).Within(1e-14));
        Assert.That(Reference.Erf(-2.0), Is.EqualTo(-0.9953222650189527).Within(1e-14));
        Assert.That(Reference.Erf(3.0), Is.EqualTo(0.9999779095030014).Within(1e-14));
    }

    [Test]
    public void Copy_makes_a_strided_view_contiguous()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.FromArray(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), new Shape(2, 3, 4));
        var t = x.TransposeView(0, 2);
        Assert.That(t.IsContiguous, Is.False);
        var c = t.Contiguous();
        Assert.That(c.Shape, Is.EqualTo(new Shape(4, 3, 2)));
        var values = c.ToArray<float>();
        for (var i = 0; i < 4; i++)
        {
            for (var j = 0; j < 3; j++)
            {
                for (var k = 0; k < 2; k++)
                {
                    Assert.That(values[(((i * 3) + j) * 2) + k], Is.EqualTo((float)((k * 12) + (j * 4) + i)));
                }
            }
        }
    }

    [Test]
    public void Fill_writes_every_element_of_float_and_int_tensors()
    {
        using var scope = TensorScope.Begin();
        var f = Rand.Poisoned(new Shape(1001));
        s_ops.Fill(f, 2.5f);
        Assert.That(f.ToArray<float>(), Is.All.EqualTo(2.5f));
        var i = Tensor.Empty(new Shape(77), DType.Int32);
        s_ops.Fill(i, 7);
        Assert.That(i.ToArray<int>(), Is.All.EqualTo(7));
    }
}
