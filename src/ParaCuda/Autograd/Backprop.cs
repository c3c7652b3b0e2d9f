using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

/// <summary>
/// One backward pass: walks the tape from the root in reverse creation order, hands each node the
/// gradient of its output, and collects what the node sends to its inputs. Gradients of leaves go
/// to their persistent <see cref="Tensor.Grad"/> buffers; gradients of intermediates live only until
/// their node has consumed them, so memory is released as the pass goes.
/// </summary>
internal sealed class Backprop
{
    // A gradient waiting for its node. Exclusive buffers may be added into; shared ones alias a
    // tensor another input may also hold, so they are copied before anything is added to them.
    private readonly Dictionary<Tensor, (Tensor Value, bool Exclusive)> _pending = new(ReferenceEqualityComparer.Instance);

    public static void Run(Tensor root, Tensor? gradient)
    {
        if (!root.RequiresGrad)
        {
            throw new InvalidOperationException($"Backward: {root.Describe()} does not require grad (was it computed under NoGrad, or from tensors that need no gradient?)");
        }

        if (gradient is null && root.NumElements != 1)
        {
            throw new InvalidOperationException($"Backward: {root.Describe()} is not a scalar; pass the gradient of the output explicitly");
        }

        if (gradient is not null && gradient.Shape != root.Shape)
        {
            throw new ArgumentException($"Backward: gradient {gradient.Shape} does not match {root.Describe()}", nameof(gradient));
        }

        using var noGrad = GradMode.NoGrad();
        var pass = new Backprop();
        var seed = gradient?.Alias(gradient.Offset, gradient.Shape, gradient.Strides.ToArray()) ?? Tensor.Ones(root.Shape, root.DType, root.Context);
        pass.Pass(root, seed);
        seed.Dispose();

        foreach (var node in Collect(root))
        {
            if (!pass._pending.Remove(node.Output, out var grad))
            {
                continue;
            }

            node.Backward(grad.Value, new GradSink(pass, node));
            grad.Value.Dispose();
        }

        foreach (var leftover in pass._pending.Values)
        {
            leftover.Value.Dispose();
        }
    }

    /// <summary>Where the gradient for <paramref name="input"/> should be written (see <see cref="GradOut"/>).</summary>
    public GradOut Target(Tensor input)
    {
        if (input.IsLeaf)
        {
            return input.LeafGradTarget();
        }

        if (_pending.TryGetValue(input, out var p))
        {
            if (p.Exclusive)
            {
                return new GradOut(p.Value, Accumulate: true);
            }

            var copy = p.Value.Clone();
            p.Value.Dispose();
            _pending[input] = (copy, true);
            return new GradOut(copy, Accumulate: true);
        }

        var fresh = input.EmptyLike();
        _pending[input] = (fresh, true);
        return new GradOut(fresh, Accumulate: false);
    }

    /// <summary>Adds <paramref name="grad"/> to the gradient of <paramref name="input"/>; the caller keeps its tensor.</summary>
    public void Pass(Tensor input, Tensor grad)
    {
        if (grad.Context != input.Context || grad.Shape != input.Shape || grad.DType != input.DType)
        {
            throw new InvalidOperationException($"gradient {grad.Describe()} does not fit {input.Describe()}");
        }

        var ops = input.Context.Ops;
        if (input.IsLeaf)
        {
            var target = input.LeafGradTarget();
            if (target.Accumulate)
            {
                ops.Add(target.Tensor!, grad, target.Tensor!);
            }
            else
            {
                ops.Copy(grad, target.Tensor!);
            }

            return;
        }

        if (!_pending.TryGetValue(input, out var p))
        {
            _pending[input] = (grad.Alias(grad.Offset, grad.Shape, grad.Strides.ToArray()), false);
        }
        else if (p.Exclusive)
        {
            ops.Add(p.Value, grad, p.Value);
        }
        else
        {
            var sum = input.EmptyLike();
            ops.Add(p.Value, grad, sum);
            p.Value.Dispose();
            _pending[input] = (sum, true);
        }
    }

    /// <summary>Every node reachable from the root, latest first.</summary>
    private static List<Node> Collect(Tensor root)
    {
        var nodes = new List<Node>();
        var seen = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Node>();
        if (root.GradFn is { } first)
        {
            stack.Push(first);
            seen.Add(first);
        }

        while (stack.Count > 0)
        {
            var node = stack.Pop();
            nodes.Add(node);
            foreach (var input in node.Inputs)
            {
                if (input?.GradFn is { } next && seen.Add(next))
                {
                    stack.Push(next);
                }
            }
        }

        nodes.Sort((a, b) => b.Sequence.CompareTo(a.Sequence));
        return nodes;
    }
}

/// <summary>What a node's backward function uses to deliver the gradients of its inputs.</summary>
public sealed class GradSink
{
    private readonly Backprop _pass;
    private readonly Node _node;

    internal GradSink(Backprop pass, Node node)
    {
        _pass = pass;
        _node = node;
    }

    /// <summary>Whether input <paramref name="index"/> needs a gradient at all.</summary>
    public bool Wants(int index) => _node.Inputs[index] is { RequiresGrad: true };

    /// <summary>
    /// The buffer to write input <paramref name="index"/>'s gradient into, for ops that can accumulate;
    /// <see cref="GradOut.None"/> when no gradient is wanted.
    /// </summary>
    public GradOut Target(int index) => Wants(index) ? _pass.Target(_node.Inputs[index]!) : GradOut.None;

    /// <summary>Hands over a gradient computed elsewhere (a pass-through); the caller keeps its tensor.</summary>
    public void Pass(int index, Tensor grad)
    {
        if (Wants(index))
        {
            _pass.Pass(_node.Inputs[index]!, grad);
        }
    }

    /// <summary>
    /// For ops that can only overwrite: runs <paramref name="compute"/> on the gradient buffer directly
    /// when nothing is there yet, else on a temporary that is then added.
    /// </summary>
    public void Write(int index, Action<Tensor> compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        if (!Wants(index))
        {
            return;
        }

        var input = _node.Inputs[index]!;
        var target = _pass.Target(input);
        if (!target.Accumulate)
        {
            compute(target.Tensor!);
            return;
        }

        using var temp = input.EmptyLike();
        compute(temp);
        input.Context.Ops.Add(target.Tensor!, temp, target.Tensor!);
    }
}
