using ParaCuda.Autograd;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Autograd;

/// <summary>
/// <see cref="F.Mlp"/>, whose backward runs the second layer, dropout and GELU as one op, against the functions it
/// stands for (LinearGelu, Dropout, Linear), each gradient-checked on its own: in float32 on the CPU the same op
/// sequence, so values and gradients are bit for bit the same; under mixed precision one rounding fewer (dy·W2 stays
/// float32 through dropout and GELU), so within bf16's rounding.
/// </summary>
public class MlpTests
{
    private const int Dim = 24, Hidden = 40, Groups = 3;

    [TestCase(false, 0f)]
    [TestCase(false, 0.25f)]
    [TestCase(true, 0.25f)]
    public void The_mlp_is_its_functions_in_turn_bit_for_bit(bool grouped, float dropout)
    {
        var (fused, separate) = (Run(grouped, dropout, fusedMlp: true), Run(grouped, dropout, fusedMlp: false));
        Assert.Multiple(() =>
        {
            foreach (var (name, i) in Names.Select((n, i) => (n, i)))
            {
                Assert.That(fused[i], Is.EqualTo(separate[i]), name);
            }
        });
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Under_autocast_the_mlp_is_within_bf16_rounding_of_its_functions(bool grouped)
    {
        List<float[]> fused, separate;
        using (Autocast.Bf16())
        {
            (fused, separate) = (Run(grouped, 0.25f, fusedMlp: true), Run(grouped, 0.25f, fusedMlp: false));
        }

        foreach (var (name, i) in Names.Select((n, i) => (n, i)))
        {
            Close.Check(fused[i], separate[i].Select(v => (double)v).ToArray(), 1e-2, name);
        }
    }

    private static readonly string[] Names = ["y", "dx", "dW1", "db1", "dW2", "db2"];

    /// <summary>The MLP's output and the gradients of its input and parameters for a random output gradient.</summary>
    private static List<float[]> Run(bool grouped, float dropout, bool fusedMlp)
    {
        using var scope = TensorScope.Begin();
        Shape Of(params int[] dims) => grouped ? new Shape([Groups, .. dims]) : new Shape(dims);
        var x = Rand.Tensor(Of(2, 9, Dim), 1, requiresGrad: true);
        var (w1, b1) = (Rand.Tensor(Of(Hidden, Dim), 2, requiresGrad: true), Rand.Tensor(Of(Hidden), 3, requiresGrad: true));
        var (w2, b2) = (Rand.Tensor(Of(Dim, Hidden), 4, requiresGrad: true), Rand.Tensor(Of(Dim), 5, requiresGrad: true));
        var generator = new Generator(11) { Offset = 7 };
        var hidden = Autocast.ActivationType;
        var y = fusedMlp
            ? F.Mlp(x, w1, b1, w2, b2, dropout, generator, training: true, hidden)
            : F.Linear(F.Dropout(F.LinearGelu(x, w1, b1, hidden), dropout, generator, training: true), w2, b2);
        y.Backward(Rand.Tensor(y.Shape, 6));
        Assert.That(generator.Offset, Is.EqualTo(dropout > 0 ? 8UL : 7UL), "one dropout stream drawn");
        return [y.ToArray<float>(), x.Grad!.ToArray<float>(), w1.Grad!.ToArray<float>(), b1.Grad!.ToArray<float>(), w2.Grad!.ToArray<float>(), b2.Grad!.ToArray<float>()];
    }
}
