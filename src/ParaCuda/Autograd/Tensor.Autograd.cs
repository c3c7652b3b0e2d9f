using ParaCuda.Autograd;
using ParaCuda.Backends;

namespace ParaCuda.Tensors;

// The autograd half of Tensor: gradient bookkeeping and the entry point of the backward pass.
public partial class Tensor
{
    private bool _requiresGrad;
    private Tensor? _gradBuffer;
    private bool _gradValid;

    /// <summary>
    /// Whether gradients flow to this tensor. Set it on leaves (parameters, inputs); results of ops
    /// inherit it from their inputs.
    /// </summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (GradFn is not null && !value)
            {
                throw new InvalidOperationException($"{Describe()} is the result of {GradFn.Name}; use Detach() to stop gradients");
            }

            _requiresGrad = value;
        }
    }

    /// <summary>The accumulated gradient of a leaf after Backward(), or null before (or after ZeroGrad).</summary>
    public Tensor? Grad => _gradValid ? _gradBuffer : null;

    /// <summary>The op that produced this tensor, when it was recorded for backward.</summary>
    public Node? GradFn { get; private set; }

    public bool IsLeaf => GradFn is null;

    /// <summary>Backpropagates from this tensor (a scalar, unless <paramref name="gradient"/> is given).</summary>
    public void Backward(Tensor? gradient = null) => Backprop.Run(this, gradient);

    /// <summary>
    /// Forgets the gradient (Grad becomes null, like PyTorch's set-to-none) but keeps its buffer,
    /// which the next backward overwrites instead of reallocating.
    /// </summary>
    public void ZeroGrad() => _gradValid = false;

    /// <summary>A view of the same data that is cut from the tape.</summary>
    public Tensor Detach() => Alias(Offset, Shape, Strides.ToArray());

    internal void SetGradFn(Node node)
    {
        GradFn = node;
        _requiresGrad = true;
    }

    /// <summary>The persistent gradient buffer of a leaf, allocated on first use outside any scope.</summary>
    internal GradOut LeafGradTarget()
    {
        if (_gradBuffer is null)
        {
            using (TensorScope.Unscoped())
            {
                _gradBuffer = Empty(Shape, DType, Context);
            }

            _gradBuffer.Name = Name is null ? null : $"{Name}.grad";
            _gradValid = true;
            return new GradOut(_gradBuffer);
        }

        var accumulate = _gradValid;
        _gradValid = true;
        return new GradOut(_gradBuffer, accumulate);
    }

    private void DisposeGradBuffer()
    {
        _gradBuffer?.Dispose();
        _gradBuffer = null;
        _gradValid = false;
    }
}
