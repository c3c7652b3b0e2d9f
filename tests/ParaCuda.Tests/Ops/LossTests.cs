using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class LossTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [Test]
    public void CrossEntropy_matches_reference_and_finite_differences()
    {
        var labels = Rand.Labels(12, 10, 3);
        GradCheck.Run(
            "CrossEntropy",
            [new Shape(12, 10)],
            t =>
            {
                var y = Tensor.FromArray(labels, new Shape(12));
                return F.CrossEntropy(F.Scale(t[0], 4f), y);
            },
            v => [Reference.CrossEntropy(v[0].Select(x => 4 * x).ToArray(), labels, 10).Average()]);
    }

    [Test]
    public void CrossEntropy_is_stable_for_large_logits()
    {
        using var scope = TensorScope.Begin();
        var logits = Tensor.FromArray([1000f, 0f, -1000f, 50f, 51f, 49f], new Shape(2, 3));
        var losses = Rand.Poisoned(new Shape(2));
        s_ops.CrossEntropy(logits, Tensor.FromArray([0, 2], new Shape(2)), losses);
        Close.Check(losses.ToArray<float>(), Reference.CrossEntropy([1000, 0, -1000, 50, 51, 49], [0, 2], 3), 1e-6, "losses");
    }

    [Test]
    public void CrossEntropy_rejects_a_label_outside_the_classes()
    {
        using var scope = TensorScope.Begin();
        var logits = Rand.Tensor(new Shape(4, 10), 1);
        var labels = Tensor.FromArray([1, 2, 12, 3], new Shape(4));
        var e = Assert.Throws<TensorOpException>(() => s_ops.CrossEntropy(logits, labels, Tensor.Empty(new Shape(4))));
        Assert.That(e!.Message, Does.Contain("CrossEntropy").And.Contain("labels[2] = 12"));
    }

    [Test]
    public void SumAll_Argmax_and_CountCorrect_agree_with_a_direct_count()
    {
        using var scope = TensorScope.Begin();
        const int n = 500, classes = 7;
        var logits = Rand.Values(n * classes, 1);
        var labels = Rand.Labels(n, classes, 2);
        var lt = Rand.Tensor(logits, new Shape(n, classes));
        var expectedArgmax = Enumerable.Range(0, n).Select(r => Array.IndexOf(logits, logits.Skip(r * classes).Take(classes).Max(), r * classes) - (r * classes)).ToArray();

        var indices = Tensor.Full(new Shape(n), -1, DType.Int32);
        s_ops.ArgmaxRows(lt, indices);
        Assert.That(indices.ToArray<int>(), Is.EqualTo(expectedArgmax));

        var count = Tensor.Full(new Shape(1), -1, DType.Int32);
        s_ops.CountCorrect(lt, Tensor.FromArray(labels, new Shape(n)), count);
        Assert.That(count.Item(), Is.EqualTo(expectedArgmax.Zip(labels).Count(p => p.First == p.Second)));

        var sum = Rand.Poisoned(new Shape(1));
        s_ops.SumAll(lt, sum, 0.5f);
        Assert.That(sum.Item(), Is.EqualTo(logits.Sum() * 0.5).Within(1e-4));
    }
}
