using ParaCuda.Autograd;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Models;

/// <summary>Token features [B, T, D] → pooled (CLS or mean) → LayerNorm → Linear → logits [B, classes].</summary>
public sealed class ClassifierHead : Module
{
    public ClassifierHead(ModelConfig config, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(config);
        Pool = config.Pool;
        Norm = RegisterModule("norm", new LayerNorm(config.Dim, init));
        Fc = RegisterModule("fc", new Linear(config.Dim, config.Classes, init));
    }

    public Backends.Pooling Pool { get; }

    public LayerNorm Norm { get; }

    public Linear Fc { get; }

    public Tensor Forward(Tensor features) => Step(() => Classify(F.PoolTokens(features, Pool)));

    /// <summary>Logits [B, classes] from already pooled features [B, D] (compression re-fits the head on these).</summary>
    public Tensor Classify(Tensor pooled) => Fc.Forward(Norm.Forward(pooled));
}
