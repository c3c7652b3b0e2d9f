using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// Linear → GELU → Dropout → Linear → Dropout: the first four as <see cref="F.Mlp"/> (the first linear, its bias and
/// the GELU one op forward; the second linear, the dropout and the GELU one op backward).
/// </summary>
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

    public Tensor Forward(Tensor x) => Forward(x, Fc1.Weight, Fc1.Bias, Fc2.Weight, Fc2.Bias);

    /// <summary>This layer's computation with the given weights: its own, or k branches' at once ([k, …] weights on x [k, …]).</summary>
    public Tensor Forward(Tensor x, Tensor fc1Weight, Tensor? fc1Bias, Tensor fc2Weight, Tensor? fc2Bias)
    {
        // Under mixed precision the hidden layer stays bf16 (it only feeds fc2); the output joins the float32 residual.
        var y = F.Mlp(x, fc1Weight, fc1Bias, fc2Weight, fc2Bias, _dropout, _generator, Training, Autocast.ActivationType);
        return F.Dropout(y, _dropout, _generator, Training);
    }
}
