using ParaCuda.Autograd;
using ParaCuda.Backends;

namespace ParaCuda.Tensors;

// The autograd half of Tensor: gradient bookkeeping and the entry point of the backward pass.
public partial class Tensor
{
    private bool _requiresGrad;
    private Tensor? _gradBuffer;
    private bool _gradValid;

    // Packed tensors: a [B, …] leaf whose slots are the parameters of B branches run as one batch. A slot's
    // parameter is a view (_packed, _slot) whose gradient is that slot of the packed gradient; each slot's
    // gradient is valid on its own (a prefix step trains the first k slots, frozen ones none).
    private Tensor? _packed;
    private int _slot;
    private Tensor?[]? _slotParameters;
    private bool[]? _slotGradValid;
    private Tensor[]? _slotGrads;

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
    public Tensor? Grad => _packed is { } packed ? packed.SlotGrad(_slot) : _gradValid ? _gradBuffer : null;

    /// <summary>The op that produced this tensor, when it was recorded for backward.</summary>
    public Node? GradFn { get; private set; }

    public bool IsLeaf => GradFn is null;

    /// <summary>Backpropagates from this tensor (a scalar, unless <paramref name="gradient"/> is given).</summary>
    public void Backward(Tensor? gradient = null) => Backprop.Run(this, gradient);

    /// <summary>
    /// Forgets the gradient (Grad becomes null, like PyTorch's set-to-none) but keeps its buffer,
    /// which the next backward overwrites instead of reallocating.
    /// </summary>
    public void ZeroGrad()
    {
        if (_packed is { } packed)
        {
            packed._slotGradValid![_slot] = false;
        }
        else
        {
            _gradValid = false;
        }
    }

    /// <summary>This tensor stored as <paramref name="dtype"/> (float32 ↔ bf16), recorded for autograd: <see cref="F.Cast"/>.</summary>
    public Tensor To(DType dtype) => F.Cast(this, dtype);

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
        if (_packed is { } packed)
        {
            return packed.SlotGradTarget(_slot);
        }

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
        foreach (var view in _slotGrads ?? [])
        {
            view.Dispose();
        }

        _slotGrads = null;
        _gradBuffer?.Dispose();
        _gradBuffer = null;
        _gradValid = false;
    }

    /// <summary>Makes this [B, …] leaf packed: its slots will be the views <see cref="BindSlot"/> registers.</summary>
    internal void MakePacked() => (_slotParameters, _slotGradValid) = (new Tensor?[Shape[0]], new bool[Shape[0]]);

    /// <summary>Makes this tensor slot <paramref name="slot"/> of <paramref name="packed"/>: its gradient is that slot's.</summary>
    internal void BindSlot(Tensor packed, int slot)
    {
        (_packed, _slot) = (packed, slot);
        packed._slotParameters![slot] = this;
    }

    /// <summary>The parameter in slot <paramref name="slot"/> of this packed tensor.</summary>
    internal Tensor SlotParameter(int slot) => _slotParameters![slot]!;

    /// <summary>The packed tensor this parameter is a slot of, or null.</summary>
    internal Tensor? Packed => _packed;

    private Tensor? SlotGrad(int slot) => _slotGradValid![slot] ? _slotGrads![slot] : null;

    /// <summary>Where slot <paramref name="slot"/>'s gradient goes: overwritten the first time after a ZeroGrad, added to after.</summary>
    internal GradOut SlotGradTarget(int slot) => SlotRangeGradTarget(slot, 1)!.Value;

    /// <summary>
    /// Where the gradients of slots [first, first + count) go, as one [count, …] tensor, when their states agree
    /// (all to be overwritten or all to be added to); null when they do not. The caller writes all of them.
    /// </summary>
    internal GradOut? SlotRangeGradTarget(int first, int count)
    {
        if (_gradBuffer is null)
        {
            using (TensorScope.Unscoped())
            {
                _gradBuffer = Empty(Shape, DType, Context);
                var slotShape = new Shape(Shape.AsSpan()[1..].ToArray());
                _slotGrads = Enumerable.Range(0, Shape[0]).Select(s => _gradBuffer.NarrowView(s, 1).View(slotShape.AsSpan())).ToArray();
            }
        }

        var accumulate = _slotGradValid![first];
        for (var s = first; s < first + count; s++)
        {
            if (_slotGradValid[s] != accumulate)
            {
                return null;
            }
        }

        Array.Fill(_slotGradValid, true, first, count);
        return count == 1 ? new GradOut(_slotGrads![first], accumulate) : new GradOut(_gradBuffer.NarrowView(first, count), accumulate);
    }
}
