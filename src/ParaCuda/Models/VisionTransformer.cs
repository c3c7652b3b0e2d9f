using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Models;

/// <summary>
/// The deep sequential baseline (ViT): the same embedding and head as ParaFormer around
/// <see cref="ModelConfig.Depth"/> blocks in sequence. Parameters: "embed.*", "blocks.{i}.*", "head.*".
/// </summary>
public sealed class VisionTransformer : VisionModel
{
    public VisionTransformer(ModelConfig config, ModuleInit init)
        : base(config, init)
    {
        if (config.Kind != ModelKind.Vit)
        {
            throw new ArgumentException($"config describes a {config.Kind}, not a ViT", nameof(config));
        }

        Blocks = RegisterModule("blocks", new ModuleList<TransformerBlock>());
        for (var i = 0; i < config.Depth; i++)
        {
            Blocks.Add(new TransformerBlock(config.Block, init));
        }

        BuildHead(init);
    }

    public ModuleList<TransformerBlock> Blocks { get; }

    public override int Prefixes => 1;

    protected override Tensor Features(Tensor tokens, int prefix) => Step(() => Blocks.Aggregate(tokens, (x, block) => block.Forward(x)));
}
