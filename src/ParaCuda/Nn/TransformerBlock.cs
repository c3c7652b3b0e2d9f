using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>What the skip connection around each pre-norm sub-layer carries.</summary>
public enum SkipConnection
{
    /// <summary>x + f(LN(x)): the usual pre-norm Transformer.</summary>
    Input,

    /// <summary>LN(x) + f(LN(x)): the skip goes through the norm, as in the ParaFormer reference code.</summary>
    Normalized,
}

/// <summary>Shape and regularisation of one Transformer block.</summary>
public sealed record BlockConfig(int Dim, int Heads, int MlpDim, float Dropout = 0f, SkipConnection Skip = SkipConnection.Input, int HeadDim = 0)
{
    /// <summary>Head size: given, or Dim / Heads.</summary>
    public int EffectiveHeadDim => HeadDim > 0 ? HeadDim : Dim / Heads;
}

/// <summary>Pre-norm block: attention sub-layer, then MLP sub-layer, each wrapped in a skip connection.</summary>
public sealed class TransformerBlock : Module
{
    public TransformerBlock(BlockConfig config, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(init);
        if (config.HeadDim == 0 && config.Dim % config.Heads != 0)
        {
            throw new ArgumentException($"dim {config.Dim} is not divisible by {config.Heads} heads; give HeadDim explicitly", nameof(config));
        }

        Config = config;
        Norm1 = RegisterModule("norm1", new LayerNorm(config.Dim, init));
        Attn = RegisterModule("attn", new MultiHeadSelfAttention(config.Dim, config.Heads, config.EffectiveHeadDim, config.Dropout, init));
        Norm2 = RegisterModule("norm2", new LayerNorm(config.Dim, init));
        Mlp = RegisterModule("mlp", new Mlp(config.Dim, config.MlpDim, config.Dropout, init));
    }

    public BlockConfig Config { get; }

    public LayerNorm Norm1 { get; }

    public MultiHeadSelfAttention Attn { get; }

    public LayerNorm Norm2 { get; }

    public Mlp Mlp { get; }

    /// <summary>x [B, T, D] → [B, T, D].</summary>
    public Tensor Forward(Tensor x) => Step(() => SubLayer(SubLayer(x, Norm1, Attn.Forward), Norm2, Mlp.Forward));

    private Tensor SubLayer(Tensor x, LayerNorm norm, Func<Tensor, Tensor> f)
    {
        var normalized = norm.Forward(x);
        return F.Add(Config.Skip == SkipConnection.Input ? x : normalized, f(normalized));
    }
}
