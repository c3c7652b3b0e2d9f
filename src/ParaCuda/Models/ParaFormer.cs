using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Models;

/// <summary>One ParaFormer branch: a few Transformer blocks in sequence, with weights of its own.</summary>
public sealed class Branch : Module
{
    public Branch(ModelConfig config, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(init);
        Context = init.Context;
        Blocks = RegisterModule("blocks", new ModuleList<TransformerBlock>());
        for (var i = 0; i < config.BranchDepth; i++)
        {
            Blocks.Add(new TransformerBlock(config.Block, init));
        }
    }

    /// <summary>The context (stream) this branch's parameters and work are ordered on.</summary>
    public ComputeContext Context { get; }

    public ModuleList<TransformerBlock> Blocks { get; }

    public Tensor Forward(Tensor x) => Step(() => Blocks.Aggregate(x, (h, block) => block.Forward(h)));
}

/// <summary>
/// ParaFormer (arXiv 2510.15425): a shared patch embedding feeds B parallel branches, their token
/// features are summed, and one shared head classifies. Each branch may live on its own context
/// (stream): the embedding's output is handed to it through <see cref="F.Transfer"/>, and its output
/// handed back to the embedding's context for the sum, so gradients return the same way.
/// Parameters are named "embed.*", "branches.{b}.blocks.{i}.*" and "head.*".
/// </summary>
public sealed class ParaFormer : VisionModel
{
    /// <param name="config">Architecture; <see cref="ModelConfig.Kind"/> must be ParaFormer.</param>
    /// <param name="init">Random state, the context of the embedding and head, and (unless given) the branches'.</param>
    /// <param name="branchContexts">Context of each branch (cycled if shorter than the branch count); default: init's branch contexts, else all on init's context.</param>
    public ParaFormer(ModelConfig config, ModuleInit init, IReadOnlyList<ComputeContext>? branchContexts = null)
        : base(config, init)
    {
        branchContexts ??= init.BranchContexts;
        BranchContexts = branchContexts;
        if (config.Kind != ModelKind.ParaFormer)
        {
            throw new ArgumentException($"config describes a {config.Kind}, not a ParaFormer", nameof(config));
        }

        Branches = RegisterModule("branches", new ModuleList<Branch>());
        for (var b = 0; b < config.Branches; b++)
        {
            var context = branchContexts is { Count: > 0 } ? branchContexts[b % branchContexts.Count] : init.Context;
            Branches.Add(new Branch(config, init.On(context)));
        }

        BuildHead(init);
    }

    public ModuleList<Branch> Branches { get; }

    /// <summary>The branch placement this model was built with (cycled over its branches); null: all on <see cref="VisionModel.Context"/>. Models derived from it (compressed, expanded) keep it.</summary>
    public IReadOnlyList<ComputeContext>? BranchContexts { get; }

    public override int Prefixes => Branches.Count;

    protected override Tensor Features(Tensor tokens, int prefix)
    {
        var outputs = new Tensor[prefix];
        for (var b = 0; b < prefix; b++)
        {
            outputs[b] = BranchForward(b, tokens);
        }

        return prefix == 1 ? outputs[0] : F.SumMany(outputs);
    }

    protected override IEnumerable<Tensor> PrefixFeatures(Tensor tokens)
    {
        var sum = BranchForward(0, tokens);
        yield return sum;
        for (var b = 1; b < Branches.Count; b++)
        {
            sum = F.Add(sum, BranchForward(b, tokens));
            yield return sum;
        }
    }

    /// <summary>Token features [B, T, D] of branch <paramref name="b"/> alone, on the embedding's context.</summary>
    public Tensor BranchForward(int b, Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var branch = Branches[b];
        return Step(() => F.Transfer(branch.Forward(F.Transfer(tokens, branch.Context)), tokens.Context));
    }
}
