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
    public Tensor Forward(Tensor x) => Forward(x, Qkv.Weight, Proj.Weight, Proj.Bias);

    /// <summary>
    /// This layer's computation with the given weights: its own, or k branches' at once ([k, …] weights on
    /// x [k, B, T, D], each branch's images attending among themselves).
    /// </summary>
    public Tensor Forward(Tensor x, Tensor qkvWeight, Tensor projWeight, Tensor? projBias)
    {
        ArgumentNullException.ThrowIfNull(x);
        // Under mixed precision q, k, v and the attention output stay bf16; the projection's output joins the float32 residual.
        var qkv = F.Linear(x, qkvWeight, null, Autocast.ActivationType);
        var grouped = qkv.Rank == 4;
        var attended = F.Attention(grouped ? F.Reshape(qkv, -1, qkv.Shape[2], qkv.Shape[3]) : qkv, Heads);
        if (grouped)
        {
            attended = F.Reshape(attended, qkv.Shape[0], qkv.Shape[1], qkv.Shape[2], attended.Shape[-1]);
        }

        return F.Dropout(F.Linear(attended, projWeight, projBias), _dropout, _generator, Training);
    }
}
