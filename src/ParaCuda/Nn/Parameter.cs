using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// A tensor a <see cref="Module"/> owns and trains: it requires grad, belongs to no
/// <see cref="TensorScope"/>, and lives until its module is disposed.
/// </summary>
public sealed class Parameter : Tensor
{
    private Parameter(Storage storage, Shape shape, ComputeContext context)
        : base(storage, 0, shape, shape.ContiguousStrides(), DType.Float32, context, scoped: false)
    {
        RequiresGrad = true;
    }

    /// <summary>A float32 parameter on <paramref name="context"/>, filled from <paramref name="values"/>.</summary>
    public static Parameter Create(Shape shape, ReadOnlySpan<float> values, ComputeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var p = new Parameter(context.Backend.Allocate(shape.NumElements * sizeof(float), context), shape, context);
        p.CopyFrom(values);
        return p;
    }
}
