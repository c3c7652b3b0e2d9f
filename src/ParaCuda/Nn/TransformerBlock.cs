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

/// <summary>
/// The weights of one block as tensors: a block's own parameters, or the [k, …] slots of k branches' packed
/// parameters (<see cref="F.Slots"/>), which run the block for all k branches at once.
/// </summary>
public sealed record BlockWeights(
    Tensor Norm1Weight, Tensor Norm1Bias, Tensor Qkv, Tensor ProjWeight, Tensor ProjBias,
    Tensor Norm2Weight, Tensor Norm2Bias, Tensor Fc1Weight, Tensor Fc1Bias, Tensor Fc2Weight, Tensor Fc2Bias)
{
    /// <summary>Every weight passed through <paramref name="map"/>, in this order.</summary>
    public BlockWeights Map(Func<Tensor, Tensor> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new(map(Norm1Weight), map(Norm1Bias), map(Qkv), map(ProjWeight), map(ProjBias), map(Norm2Weight), map(Norm2Bias), map(Fc1Weight), map(Fc1Bias), map(Fc2Weight), map(Fc2Bias));
    }
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

    /// <summary>This block's own parameters as <see cref="BlockWeights"/>.</summary>
    public BlockWeights Weights => new(Norm1.Weight, Norm1.Bias, Attn.Qkv.Weight, Attn.Proj.Weight, Attn.Proj.Bias!, Norm2.Weight, Norm2.Bias, Mlp.Fc1.Weight, Mlp.Fc1.Bias!, Mlp.Fc2.Weight, Mlp.Fc2.Bias!);

    /// <summary>x [B, T, D] → [B, T, D].</summary>
    public Tensor Forward(Tensor x) => Forward(x, Weights);

    /// <summary>This block's computation with the given weights: its own, or k branches' at once on x [k, B, T, D].</summary>
    public Tensor Forward(Tensor x, BlockWeights w)
    {
        ArgumentNullException.ThrowIfNull(w);
        var input = Config.Skip == SkipConnection.Input;
        return Step(() =>
        {
            var n1 = F.LayerNorm(x, w.Norm1Weight, w.Norm1Bias, Norm1.Eps);
            var attended = Attn.Forward(n1, w.Qkv, w.ProjWeight, w.ProjBias);
            // The attention sub-layer's residual add and the MLP's LayerNorm in one pass over memory.
            var (h, n2) = F.AddLayerNorm(input ? x : n1, attended, w.Norm2Weight, w.Norm2Bias, Norm2.Eps);
            return F.Add(input ? h : n2, Mlp.Forward(n2, w.Fc1Weight, w.Fc1Bias, w.Fc2Weight, w.Fc2Bias));
        });
    }
}
