using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>y = x·Wᵀ + b with W [out, in], initialised like torch.nn.Linear (U(±1/√in)).</summary>
public sealed class Linear : Module
{
    public Linear(int inFeatures, int outFeatures, ModuleInit init, bool bias = true)
    {
        ArgumentNullException.ThrowIfNull(init);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outFeatures);
        var bound = 1f / MathF.Sqrt(inFeatures);
        Weight = RegisterParameter("weight", init.Uniform(new Shape(outFeatures, inFeatures), bound));
        Bias = bias ? RegisterParameter("bias", init.Uniform(new Shape(outFeatures), bound)) : null;
    }

    public Parameter Weight { get; }

    public Parameter? Bias { get; }

    public int InFeatures => Weight.Shape[1];

    public int OutFeatures => Weight.Shape[0];

    public Tensor Forward(Tensor x) => F.Linear(x, Weight, Bias);
}
