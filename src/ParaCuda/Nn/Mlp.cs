using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>Linear → GELU → Dropout → Linear → Dropout; the first bias is fused into the GELU.</summary>
public sealed class Mlp : Module
{
    private readonly float _dropout;
    private readonly Generator _generator;

    public Mlp(int dim, int hidden, float dropout, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(init);
        Fc1 = RegisterModule("fc1", new Linear(dim, hidden, init));
        Fc2 = RegisterModule("fc2", new Linear(hidden, dim, init));
        _dropout = dropout;
        _generator = init.Generator;
    }

    public Linear Fc1 { get; }

    public Linear Fc2 { get; }

    public Tensor Forward(Tensor x)
    {
        var hidden = F.BiasGelu(F.Linear(x, Fc1.Weight, null), Fc1.Bias);
        hidden = F.Dropout(hidden, _dropout, _generator, Training);
        return F.Dropout(Fc2.Forward(hidden), _dropout, _generator, Training);
    }
}
