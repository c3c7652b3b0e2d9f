using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// What a module needs at construction: the context its parameters live on, the host RNG that draws
/// their initial values (so a seed reproduces a model), and the model's dropout <see cref="Generator"/>.
/// A model with branches also finds here the context of each branch (<see cref="BranchContexts"/>).
/// <see cref="On"/> derives the same for another context, e.g. a branch's own stream.
/// </summary>
public sealed class ModuleInit
{
    private readonly IReadOnlyList<Parameter>? _packed;
    private readonly int _slot;
    private int _next;

    private ModuleInit(ComputeContext context, Random random, Generator generator, IReadOnlyList<ComputeContext>? branchContexts, bool batchedBranches = false, IReadOnlyList<Parameter>? packed = null, int slot = 0)
    {
        Context = context;
        Random = random;
        Generator = generator;
        BranchContexts = branchContexts;
        BatchedBranches = batchedBranches;
        (_packed, _slot) = (packed, slot);
    }

    public ComputeContext Context { get; }

    /// <summary>Where branch b of a model goes (cycled over the list); null: all on <see cref="Context"/>.</summary>
    public IReadOnlyList<ComputeContext>? BranchContexts { get; }

    /// <summary>Whether a model with branches runs them as one batch (their parameters packed [B, …]; see <see cref="Placement"/>).</summary>
    public bool BatchedBranches { get; }

    public Random Random { get; }

    public Generator Generator { get; }

    public static ModuleInit Create(int seed, ComputeContext? context = null, IReadOnlyList<ComputeContext>? branchContexts = null, bool batchedBranches = false) =>
        new(context ?? ComputeContext.Default, new Random(seed), new Generator((ulong)seed), branchContexts, batchedBranches);

    /// <summary>The same random state, placing parameters on <paramref name="context"/>.</summary>
    public ModuleInit On(ComputeContext context) => new(context, Random, Generator, null);

    /// <summary>
    /// The same random state, making each parameter (in creation order) slot <paramref name="slot"/> of the next
    /// of <paramref name="packed"/>: a branch whose parameters live in the packed allocations of all branches.
    /// Values are drawn exactly as they would be for a branch of its own.
    /// </summary>
    internal ModuleInit IntoSlots(IReadOnlyList<Parameter> packed, int slot) => new(Context, Random, Generator, null, packed: packed, slot: slot);

    /// <summary>U(-bound, bound), PyTorch's default for Linear weights and biases with bound = 1/√fan_in.</summary>
    public Parameter Uniform(Shape shape, float bound)
    {
        var values = new float[shape.NumElements];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)(((Random.NextDouble() * 2) - 1) * bound);
        }

        return Make(shape, values);
    }

    /// <summary>N(0, std²) by Box–Muller (the reference initialises CLS and positions with torch.randn).</summary>
    public Parameter Normal(Shape shape, float std = 1f)
    {
        var values = new float[shape.NumElements];
        for (var i = 0; i < values.Length; i++)
        {
            var u1 = 1.0 - Random.NextDouble();
            var u2 = Random.NextDouble();
            values[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }

        return Make(shape, values);
    }

    public Parameter Constant(Shape shape, float value)
    {
        var values = new float[shape.NumElements];
        Array.Fill(values, value);
        return Make(shape, values);
    }

    private Parameter Make(Shape shape, float[] values)
    {
        if (_packed is null)
        {
            return Parameter.Create(shape, values, Context);
        }

        var packed = _packed[_next++];
        return packed.Shape.AsSpan()[1..].SequenceEqual(shape.AsSpan())
            ? Parameter.Slot(packed, _slot, values)
            : throw new InvalidOperationException($"packed parameter {packed.Shape} does not hold a {shape} slot: branches of one model must have equal shapes");
    }
}
