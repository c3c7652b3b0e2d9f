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
        if (init.BatchedBranches && config.Branches > 1)
        {
            // Every branch's parameters are slots of one [B, …] allocation per parameter, drawn in the same order
            // as branches of their own would draw them. A probe on its own random state gives the shapes.
            using (var probe = new Branch(config, ModuleInit.Create(0, init.Context)))
            {
                _packed = probe.Parameters().Select(p => Parameter.CreatePacked(config.Branches, p.Shape, init.Context)).ToList();
            }

            for (var b = 0; b < config.Branches; b++)
            {
                Branches.Add(new Branch(config, init.On(init.Context).IntoSlots(_packed, b)));
            }
        }
        else
        {
            for (var b = 0; b < config.Branches; b++)
            {
                var context = branchContexts is { Count: > 0 } ? branchContexts[b % branchContexts.Count] : init.Context;
                Branches.Add(new Branch(config, init.On(context)));
            }
        }

        BuildHead(init);
    }

    private readonly List<Parameter>? _packed;

    /// <summary>
    /// Whether the branches run as one batch: their parameters live in packed [B, …] allocations (each branch's
    /// parameters are views into them, so the state dict and the per-branch API are unchanged) and a prefix of k
    /// branches runs every op once for all k (strided-batched GEMMs, one launch per element-wise op).
    /// </summary>
    public bool Batched => _packed is not null;

    public ModuleList<Branch> Branches { get; }

    /// <summary>The branch placement this model was built with (cycled over its branches); null: all on <see cref="VisionModel.Context"/>. Models derived from it (compressed, expanded) keep it.</summary>
    public IReadOnlyList<ComputeContext>? BranchContexts { get; }

    public override int Prefixes => Branches.Count;

    protected override Tensor Features(Tensor tokens, int prefix)
    {
        if (Batched && prefix > 1)
        {
            return Step(() => F.SumSlots(BatchedBranches(tokens, prefix)));
        }

        var outputs = new Tensor[prefix];
        for (var b = 0; b < prefix; b++)
        {
            outputs[b] = BranchForward(b, tokens);
        }

        return prefix == 1 ? outputs[0] : F.SumMany(outputs);
    }

    protected override IEnumerable<Tensor> PrefixFeatures(Tensor tokens, int upTo)
    {
        var all = Batched && upTo > 1 ? BatchedBranches(tokens, upTo) : null;
        var sum = all is null ? BranchForward(0, tokens) : F.Slot(all, 0);
        yield return sum;
        for (var b = 1; b < upTo; b++)
        {
            sum = F.Add(sum, all is null ? BranchForward(b, tokens) : F.Slot(all, b));
            yield return sum;
        }
    }

    /// <summary>Token features of the first <paramref name="count"/> branches at once, [count, B, T, D]: every block runs once for all of them.</summary>
    private Tensor BatchedBranches(Tensor tokens, int count) => Step(() =>
    {
        var x = F.Repeat(tokens, count);
        foreach (var block in Branches[0].Blocks)
        {
            x = block.Forward(x, block.Weights.Map(w => F.Slots(w.Packed!, count)));
        }

        return x;
    });

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            // The branches' views are gone: the packed allocations (and their gradients) go last.
            _packed?.ForEach(p => p.Dispose());
        }
    }

    /// <summary>Token features [B, T, D] of branch <paramref name="b"/> alone, on the embedding's context.</summary>
    public Tensor BranchForward(int b, Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var branch = Branches[b];
        using var precision = MixedPrecision();
        return Step(() => F.Transfer(branch.Forward(F.Transfer(tokens, branch.Context)), tokens.Context));
    }
}
