using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// A tensor a <see cref="Module"/> owns and trains: it requires grad, belongs to no
/// <see cref="TensorScope"/>, and lives until its module is disposed.
/// </summary>
public sealed class Parameter : Tensor
{
    private Parameter(Storage storage, long offset, Shape shape, ComputeContext context)
        : base(storage, offset, shape, shape.ContiguousStrides(), DType.Float32, context, scoped: false)
    {
        RequiresGrad = true;
    }

    /// <summary>A float32 parameter on <paramref name="context"/>, filled from <paramref name="values"/>.</summary>
    public static Parameter Create(Shape shape, ReadOnlySpan<float> values, ComputeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var p = new Parameter(context.Backend.Allocate(shape.NumElements * sizeof(float), context), 0, shape, context);
        p.CopyFrom(values);
        return p;
    }

    /// <summary>
    /// One allocation for the same parameter of <paramref name="slots"/> branches, [slots, …shape]: the branches'
    /// own parameters are its slots (<see cref="Slot"/>), and a batched forward reads all of them at once.
    /// </summary>
    internal static Parameter CreatePacked(int slots, Shape shape, ComputeContext context)
    {
        var dims = new int[shape.Rank + 1];
        dims[0] = slots;
        shape.AsSpan().CopyTo(dims.AsSpan(1));
        var packedShape = new Shape(dims);
        var p = new Parameter(context.Backend.Allocate(packedShape.NumElements * sizeof(float), context), 0, packedShape, context);
        p.MakePacked();
        return p;
    }

    /// <summary>Slot <paramref name="slot"/> of a packed parameter, as a parameter of its own filled from <paramref name="values"/>.</summary>
    internal static Parameter Slot(Parameter packed, int slot, ReadOnlySpan<float> values)
    {
        var shape = new Shape(packed.Shape.AsSpan()[1..].ToArray());
        var storage = packed.Storage;
        storage.AddRef();
        var p = new Parameter(storage, packed.Offset + (slot * shape.NumElements), shape, packed.Context);
        p.BindSlot(packed, slot);
        p.CopyFrom(values);
        return p;
    }
}
