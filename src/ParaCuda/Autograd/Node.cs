using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

/// <summary>Turns the gradient of an op's output into gradients of its inputs, delivered through the sink.</summary>
public delegate void BackwardFunction(Tensor gradOutput, GradSink sink);

/// <summary>
/// One recorded op on the tape: its output, its inputs, the context it ran on (its backward runs
/// there too) and its backward function. Nodes are numbered in creation order, and an op's inputs
/// always exist before it, so descending numbers are a valid order for the backward pass.
/// </summary>
public sealed class Node
{
    private static long s_nextSequence;

    internal Node(string name, Tensor output, Tensor?[] inputs, ComputeContext context, BackwardFunction backward)
    {
        Name = name;
        Output = output;
        Inputs = inputs;
        Context = context;
        Backward = backward;
        Sequence = Interlocked.Increment(ref s_nextSequence);
    }

    public string Name { get; }

    public ComputeContext Context { get; }

    internal Tensor Output { get; }

    internal Tensor?[] Inputs { get; }

    internal BackwardFunction Backward { get; }

    internal long Sequence { get; }

    public override string ToString() => $"{Name} on {Context}";
}
