using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// Self-attention with H heads of size Dh: one bias-free projection to packed q, k, v (as the
/// reference), the fused attention op, an output projection and dropout.
/// </summary>
public sealed class MultiHeadSelfAttention : Module
{
    private readonly float _dropout;
    private readonly Generator _generator;

    public MultiHeadSelfAttention(int dim, int heads, int headDim, float dropout, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(init);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        Heads = heads;
        Qkv = RegisterModule("qkv", new Linear(dim, 3 * heads * headDim, init, bias: false));
        Proj = RegisterModule("proj", new Linear(heads * headDim, dim, init));
        _dropout = dropout;
        _generator = init.Generator;
    }

    public int Heads { get; }

    public Linear Qkv { get; }

    public Linear Proj { get; }

    /// <summary>x [B, T, D] → [B, T, D].</summary>
    public Tensor Forward(Tensor x)
    {
        var attended = F.Attention(Qkv.Forward(x), Heads);
        return F.Dropout(Proj.Forward(attended), _dropout, _generator, Training);
    }
}
