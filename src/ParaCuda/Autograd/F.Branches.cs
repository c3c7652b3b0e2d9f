using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

// Branches run as one batch: equal-shape branches stack their activations on a leading axis [k, …] and read
// their parameters from packed [B, …] allocations, so every op runs once for all of them.
public static partial class F
{
    /// <summary>
    /// The first <paramref name="count"/> slots of a packed parameter [B, …] as one [count, …] weight. Its gradient goes
    /// to the slots whose own parameters require grad (a frozen branch's stay untouched, as they would alone).
    /// </summary>
    public static Tensor Slots(Tensor packed, int count)
    {
        ArgumentNullException.ThrowIfNull(packed);
        if (count < 1 || count > packed.Shape[0])
        {
            throw new TensorOpException(nameof(Slots), $"{count} slots of {packed.Describe()}");
        }

        var y = packed.NarrowView(0, count);
        if (!GradMode.IsEnabled || !Enumerable.Range(0, count).Any(s => packed.SlotParameter(s).RequiresGrad))
        {
            return y;
        }

        var ctx = packed.Context;
        y.SetGradFn(new Node(nameof(Slots), y, [packed], ctx, (g, _) =>
        {
            // Runs of slots that train, written with one op each when their gradients are in the same state.
            for (var first = 0; first < count;)
            {
                if (!packed.SlotParameter(first).RequiresGrad)
                {
                    first++;
                    continue;
                }

                var end = first + 1;
                while (end < count && packed.SlotParameter(end).RequiresGrad)
                {
                    end++;
                }

                for (var s = first; s < end;)
                {
                    var length = end - s;
                    var target = packed.SlotRangeGradTarget(s, length);
                    while (target is null)
                    {
                        length--;
                        target = packed.SlotRangeGradTarget(s, length);
                    }

                    var (into, accumulate) = (target.Value.Tensor!, target.Value.Accumulate);
                    using var slots = g.NarrowView(s, length);
                    using var part = slots.View(into.Shape.AsSpan());
                    if (accumulate)
                    {
                        ctx.Ops.Add(into, part, into);
                    }
                    else
                    {
                        ctx.Ops.Copy(part, into);
                    }

                    s += length;
                }

                first = end;
            }
        }));
        return y;
    }

    /// <summary>x [*] repeated <paramref name="count"/> times: [count, *], one copy for every branch (gradients summed back).</summary>
    public static Tensor Repeat(Tensor x, int count)
    {
        ArgumentNullException.ThrowIfNull(x);
        var ctx = SameContext(nameof(Repeat), x);
        var y = x.EmptyLike(Stacked(count, x.Shape));
        using (var broadcast = Broadcast(x, count))
        {
            ctx.Ops.Copy(broadcast, y);
        }

        return Record(nameof(Repeat), y, [x], (g, sink) =>
        {
            var parts = Enumerable.Range(0, count).Select(i => g.NarrowView(i, 1).View(x.Shape.AsSpan())).ToList();
            sink.Write(0, dx => ctx.Ops.SumMany(parts, dx));
            parts.ForEach(p => p.Dispose());
        });
    }

    /// <summary>Σ_i x[i] over the leading axis of x [k, *] → [*], in order of i (the branches' features summed).</summary>
    public static Tensor SumSlots(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var ctx = SameContext(nameof(SumSlots), x);
        var count = x.Shape[0];
        var inner = new Shape(x.Shape.AsSpan()[1..].ToArray());
        var y = x.EmptyLike(inner);
        var parts = Enumerable.Range(0, count).Select(i => x.NarrowView(i, 1).View(inner.AsSpan())).ToList();
        ctx.Ops.SumMany(parts, y);
        parts.ForEach(p => p.Dispose());
        return Record(nameof(SumSlots), y, [x], (g, sink) =>
        {
            using var broadcast = Broadcast(g, count);
            sink.Write(0, dx => ctx.Ops.Copy(broadcast, dx));
        });
    }

    /// <summary>x[i] of x [k, *], as a view; its gradient lands in slot i of x's.</summary>
    public static Tensor Slot(Tensor x, int index)
    {
        ArgumentNullException.ThrowIfNull(x);
        var ctx = SameContext(nameof(Slot), x);
        var inner = x.Shape.AsSpan()[1..].ToArray();
        var y = x.NarrowView(index, 1).View(inner);
        return Record(nameof(Slot), y, [x], (g, sink) =>
        {
            var target = sink.Target(0);
            if (target.Tensor is not { } dx)
            {
                return;
            }

            if (!target.Accumulate)
            {
                // A fresh buffer: the slots no other Slot writes hold no gradient.
                ctx.Ops.Fill(dx, 0f);
            }

            using var slot = dx.NarrowView(index, 1).View(inner);
            ctx.Ops.Add(slot, g, slot);
        });
    }

    private static Shape Stacked(int count, Shape shape)
    {
        var dims = new int[shape.Rank + 1];
        dims[0] = count;
        shape.AsSpan().CopyTo(dims.AsSpan(1));
        return new Shape(dims);
    }

    /// <summary>x seen <paramref name="count"/> times over a new leading axis of stride 0 (no copy).</summary>
    private static Tensor Broadcast(Tensor x, int count)
    {
        var contiguous = x.IsContiguous ? x : throw new TensorOpException(nameof(Broadcast), $"needs a contiguous tensor, got {x.Describe()}");
        return contiguous.Alias(x.Offset, Stacked(count, x.Shape), [0, .. x.Strides.ToArray()]);
    }
}
