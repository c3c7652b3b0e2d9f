using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Models;

/// <summary>
/// What ParaFormer and ViT share: a patch embedding ("embed") in front, a classification head
/// ("head") behind, and token features in between that a subclass computes.
/// Models with several branches can run on a prefix of them: <see cref="Forward(Tensor, int)"/>.
/// </summary>
public abstract class VisionModel : Module
{
    protected VisionModel(ModelConfig config, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(init);
        if (config.Problem() is { } problem)
        {
            throw new ArgumentException($"invalid model config: {problem}", nameof(config));
        }

        Config = config;
        Generator = init.Generator;
        Context = init.Context;
        Embed = RegisterModule("embed", new PatchEmbedding(config.ImageSize, config.Channels, config.Patch, config.Dim, config.EmbeddingDropout, init));
    }

    public ModelConfig Config { get; }

    /// <summary>The context of the embedding and head, where inputs go and logits come out.</summary>
    public ComputeContext Context { get; }

    /// <summary>The dropout RNG every module of this model draws from; checkpoints save and restore it.</summary>
    public Generator Generator { get; }

    public PatchEmbedding Embed { get; }

    public ClassifierHead Head { get; private set; } = null!;

    /// <summary>How many prefixes the model can be evaluated on: its branches (ParaFormer) or 1 (ViT).</summary>
    public abstract int Prefixes { get; }

    /// <summary>Logits [B, classes] of the full model.</summary>
    public Tensor Forward(Tensor images) => Forward(images, Prefixes);

    /// <summary>Logits [B, classes] using the first <paramref name="prefix"/> branches only.</summary>
    public Tensor Forward(Tensor images, int prefix)
    {
        CheckPrefix(prefix);
        using var precision = MixedPrecision();
        return Step(() => Head.Forward(Features(Embed.Forward(images), prefix)));
    }

    /// <summary>
    /// Logits for every prefix k = 1..Prefixes at the cost of one pass through the branches: each
    /// branch runs once and the prefix sums are accumulated (evaluation and per-k metrics).
    /// </summary>
    public IReadOnlyList<Tensor> ForwardAllPrefixes(Tensor images) => ForwardAllPrefixes(images, Prefixes);

    /// <summary>Logits for the prefixes k = 1..<paramref name="upTo"/>; branches beyond it do not run.</summary>
    public IReadOnlyList<Tensor> ForwardAllPrefixes(Tensor images, int upTo)
    {
        CheckPrefix(upTo);
        using var precision = MixedPrecision();
        var tokens = Embed.Forward(images);
        return PrefixFeatures(tokens, upTo).Select(Head.Forward).ToList();
    }

    /// <summary>Token features [B, T, D] from the first <paramref name="prefix"/> branches.</summary>
    protected abstract Tensor Features(Tensor tokens, int prefix);

    /// <summary>Token features for the prefixes 1..<paramref name="upTo"/>, in order; the default recomputes each.</summary>
    protected virtual IEnumerable<Tensor> PrefixFeatures(Tensor tokens, int upTo) =>
        Enumerable.Range(1, upTo).Select(k => Features(tokens, k));

    /// <summary>bf16 mixed precision for the forward pass when the model's backend asks for it (<see cref="Backend.MixedPrecision"/>).</summary>
    protected Autocast.Scope MixedPrecision() => Autocast.Bf16(Context.Backend.MixedPrecision);

    /// <summary>Registers the head last, so parameter order follows the data flow.</summary>
    protected void BuildHead(ModuleInit init) => Head = RegisterModule("head", new ClassifierHead(Config, init));

    protected void CheckPrefix(int prefix)
    {
        if (prefix < 1 || prefix > Prefixes)
        {
            throw new ArgumentOutOfRangeException(nameof(prefix), $"prefix {prefix} is outside 1..{Prefixes}");
        }
    }
}
