using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>LayerNorm over the last axis with a learned scale (ones) and shift (zeros), eps 1e-5 as PyTorch.</summary>
public sealed class LayerNorm : Module
{
    public LayerNorm(int features, ModuleInit init, float eps = 1e-5f)
    {
        ArgumentNullException.ThrowIfNull(init);
        Weight = RegisterParameter("weight", init.Constant(new Shape(features), 1f));
        Bias = RegisterParameter("bias", init.Constant(new Shape(features), 0f));
        Eps = eps;
    }

    public Parameter Weight { get; }

    public Parameter Bias { get; }

    public float Eps { get; }

    public Tensor Forward(Tensor x) => F.LayerNorm(x, Weight, Bias, Eps);
}
