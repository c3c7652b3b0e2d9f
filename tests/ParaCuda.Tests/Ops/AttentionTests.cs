using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class AttentionTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [TestCase(2, 5, 2, 4)]
    [TestCase(2, 50, 3, 64)]
    [TestCase(1, 197, 3, 64)]
    public void Forward_matches_reference_with_log_sum_exp(int batch, int tokens, int heads, int headDim)
    {
        using var scope = TensorScope.Begin();
        var d = heads * headDim;
        var qkv = Rand.Values(batch * tokens * 3 * d, 1, scale: 2);
        var output = Rand.Poisoned(new Shape(batch, tokens, d));
        var lse = Rand.Poisoned(new Shape(batch, heads, tokens));
        s_ops.Attention(Rand.Tensor(qkv, new Shape(batch, tokens, 3 * d)), heads, output, lse);
        var expected = Reference.Attention(qkv, batch, tokens, heads, headDim);
        Close.Check(output.ToArray<float>(), expected.Output, 1e-5, "attention output");
        Close.Check(lse.ToArray<float>(), expected.Lse, 1e-6, "log-sum-exp");
    }

    [TestCase(2, 5, 2, 4)]
    [TestCase(1, 9, 1, 3)]
    public void Gradients_match_finite_differences(int batch, int tokens, int heads, int headDim)
    {
        var d = heads * headDim;
        GradCheck.Run(
            "Attention",
            [new Shape(batch, tokens, 3 * d)],
            t => F.Attention(F.Scale(t[0], 2f), heads),
            v => Reference.Attention(v[0].Select(x => 2 * x).ToArray(), batch, tokens, heads, headDim).Output);
    }

    [Test]
    public void Backward_without_saved_log_sum_exp_recomputes_the_same_gradient()
    {
        using var scope = TensorScope.Begin();
        var shape = new Shape(2, 50, 3 * 3 * 16);
        var qkv = Rand.Tensor(shape, 1, scale: 2);
        var output = Tensor.Empty(new Shape(2, 50, 48));
        var lse = Tensor.Empty(new Shape(2, 3, 50));
        s_ops.Attention(qkv, 3, output, lse);
        var dout = Rand.Tensor(output.Shape, 2);
        var (withLse, without) = (Rand.Poisoned(shape), Rand.Poisoned(shape));
        s_ops.AttentionBackward(qkv, output, dout, lse, 3, withLse);
        s_ops.AttentionBackward(qkv, output, dout, null, 3, without);
        Close.Check(without.ToArray<float>(), withLse.ToDoubles(), 1e-5, "dqkv");
    }
}
