using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.Ops;

/// <summary>Every op refuses bad operands with a <see cref="TensorOpException"/> naming the op and the shapes.</summary>
public class ShapeErrorTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    private static Tensor T(params int[] dims) => Tensor.Zeros(new Shape(dims));

    private static Tensor L(params int[] dims) => Tensor.Zeros(new Shape(dims), DType.Int32);

    private static IEnumerable<TestCaseData> BadCalls()
    {
        static TestCaseData Case(string op, string mentions, Action call) => new TestCaseData(op, mentions, call).SetName($"{op}: {mentions}");

        yield return Case("Add", "[3, 4]", () => s_ops.Add(T(3, 4), T(4, 3), T(3, 4)));
        yield return Case("Add", "Int32", () => s_ops.Add(L(3), T(3), T(3)));
        yield return Case("Scale", "[5]", () => s_ops.Scale(T(4), 2f, T(5)));
        yield return Case("SumMany", "[2, 2]", () => s_ops.SumMany([T(2, 2), T(2, 3)], T(2, 2)));
        yield return Case("Gemm", "inner dimensions 4 and 5", () => s_ops.Gemm(T(3, 4), T(5, 6), T(3, 6)));
        yield return Case("Gemm", "[3, 7]", () => s_ops.Gemm(T(3, 4), T(4, 6), T(3, 7)));
        yield return Case("Gemm", "bias", () => s_ops.Gemm(T(3, 4), T(4, 6), T(3, 6), bias: T(5)));
        yield return Case("BatchedGemm", "batch sizes", () => s_ops.BatchedGemm(T(2, 3, 4), T(3, 4, 5), T(2, 3, 5)));
        yield return Case("SumRows", "[4]", () => s_ops.SumRows(T(3, 5), T(4)));
        yield return Case("BiasGelu", "bias", () => s_ops.BiasGelu(T(3, 4), T(3), T(3, 4)));
        yield return Case("Dropout", "p must be in [0, 1)", () => s_ops.Dropout(T(3), T(3), 1f, 0, 0));
        yield return Case("LayerNorm", "gamma", () => s_ops.LayerNorm(T(2, 8), T(7), T(7), 1e-5f, T(2, 8), T(2), T(2)));
        yield return Case("LayerNorm", "mean", () => s_ops.LayerNorm(T(2, 8), T(8), T(8), 1e-5f, T(2, 8), T(3), T(2)));
        yield return Case("LayerNormBackward", "dx", () => s_ops.LayerNormBackward(T(2, 8), T(2, 8), T(8), T(2), T(2), T(2, 7), GradOut.None, GradOut.None));
        yield return Case("Attention", "3·heads·head_dim", () => s_ops.Attention(T(2, 5, 20), 3, T(2, 5, 6), null));
        yield return Case("Attention", "lse", () => s_ops.Attention(T(2, 5, 18), 3, T(2, 5, 6), T(2, 5, 3)));
        yield return Case("AttentionBackward", "dout", () => s_ops.AttentionBackward(T(2, 5, 18), T(2, 5, 6), T(2, 4, 6), null, 3, T(2, 5, 18)));
        yield return Case("CrossEntropy", "labels", () => s_ops.CrossEntropy(T(4, 10), L(5), T(4)));
        yield return Case("CrossEntropy", "Float32", () => s_ops.CrossEntropy(T(4, 10), T(4), T(4)));
        yield return Case("ArgmaxRows", "Int32", () => s_ops.ArgmaxRows(T(4, 10), T(4)));
        yield return Case("Patchify", "not divisible", () => s_ops.Patchify(T(1, 1, 28, 28), 5, T(1, 25, 25)));
        yield return Case("Patchify", "[1, 49, 16]", () => s_ops.Patchify(T(1, 1, 28, 28), 4, T(1, 49, 15)));
        yield return Case("AssembleTokens", "pos", () => s_ops.AssembleTokens(T(2, 4, 8), T(8), T(4, 8), T(2, 5, 8)));
        yield return Case("PoolTokens", "[2, 8]", () => s_ops.PoolTokens(T(2, 5, 8), Pooling.Cls, T(2, 5)));
        yield return Case("GlobalNorm", "norm", () => s_ops.GlobalNorm([T(3)], T(2)));
        yield return Case("AdamUpdate", "steps[0] must have one element", () => s_ops.AdamUpdate([T(3)], [T(3)], [T(3)], [T(3)], new AdamParameters(1e-3f), [L(2)]));
        yield return Case("AdamUpdate", "Int32", () => s_ops.AdamUpdate([T(3)], [T(3)], [T(3)], [T(3)], new AdamParameters(1e-3f), [T(1)]));
        yield return Case("AdamUpdate", "learningRate", () => s_ops.AdamUpdate([T(3)], [T(3)], [T(3)], [T(3)], new AdamParameters(1e-3f), [L(1)], T(2)));
        yield return Case("AdamUpdate", "grads[0]", () => s_ops.AdamUpdate([T(3)], [T(4)], [T(3)], [T(3)], new AdamParameters(1e-3f), [L(1)]));
        yield return Case("Dropout", "offsetBase", () => s_ops.Dropout(T(3), T(3), 0.5f, 0, 0, L(3)));
    }

    [TestCaseSource(nameof(BadCalls))]
    public void Bad_operands_are_rejected_with_a_named_error(string op, string mentions, Action call)
    {
        using var scope = TensorScope.Begin();
        var e = Assert.Throws<TensorOpException>(() => call());
        Assert.That(e!.Op, Is.EqualTo(op));
        Assert.That(e.Message, Does.StartWith(op + ":").And.Contain(mentions));
    }

    [Test]
    public void A_disposed_or_strided_operand_is_rejected()
    {
        using var scope = TensorScope.Begin();
        var x = T(4, 4);
        x.Dispose();
        Assert.That(() => s_ops.Scale(x, 1f, T(4, 4)), Throws.TypeOf<TensorOpException>().With.Message.Contains("disposed"));
        var y = T(4, 3);
        Assert.That(() => s_ops.Scale(y.TransposeView(0, 1), 1f, T(3, 4)), Throws.TypeOf<TensorOpException>().With.Message.Contains("not contiguous"));
    }
}
