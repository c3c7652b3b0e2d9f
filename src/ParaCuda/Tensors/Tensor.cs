using System.Runtime.InteropServices;
using ParaCuda.Backends;

namespace ParaCuda.Tensors;

/// <summary>
/// An n-dimensional array on one device, ordered on one <see cref="ComputeContext"/> (a CUDA stream,
/// or the CPU). Row-major and contiguous unless a view says otherwise. Disposing frees the storage
/// deterministically once no view shares it; a <see cref="TensorScope"/> disposes temporaries in bulk.
/// The autograd half of this class lives in <c>Autograd/Tensor.Autograd.cs</c>.
/// </summary>
public partial class Tensor : IDisposable
{
    private readonly long[] _strides;
    private Storage? _storage;

    private protected Tensor(Storage storage, long offset, Shape shape, long[] strides, DType dtype, ComputeContext context, bool scoped = true)
    {
        _storage = storage;
        Offset = offset;
        Shape = shape;
        _strides = strides;
        DType = dtype;
        Context = context;
        if (scoped)
        {
            TensorScope.Register(this);
        }
    }

    public Shape Shape { get; }

    public DType DType { get; }

    /// <summary>The stream (or CPU queue) whose order this tensor's contents follow.</summary>
    public ComputeContext Context { get; }

    public Device Device => Context.Device;

    public int Rank => Shape.Rank;

    public long NumElements => Shape.NumElements;

    public long ByteLength => NumElements * DType.SizeInBytes();

    /// <summary>First element's position in the storage, in elements.</summary>
    public long Offset { get; }

    /// <summary>Distance between neighbours along each axis, in elements.</summary>
    public ReadOnlySpan<long> Strides => _strides;

    /// <summary>Optional label used in error messages and state dicts.</summary>
    public string? Name { get; set; }

    public bool IsDisposed => _storage is null;

    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (var i = Rank - 1; i >= 0; i--)
            {
                if (Shape[i] != 1 && _strides[i] != expected)
                {
                    return false;
                }

                expected *= Shape[i];
            }

            return true;
        }
    }

    internal Storage Storage => _storage ?? throw new ObjectDisposedException(Describe(), "tensor was disposed");

    /// <summary>Allocates an uninitialised tensor (contents are whatever the memory held).</summary>
    public static Tensor Empty(Shape shape, DType dtype = DType.Float32, ComputeContext? context = null)
    {
        var ctx = context ?? ComputeContext.Default;
        var storage = ctx.Backend.Allocate(shape.NumElements * dtype.SizeInBytes(), ctx);
        return new Tensor(storage, 0, shape, shape.ContiguousStrides(), dtype, ctx);
    }

    /// <summary>A contiguous tensor over storage a backend allocated itself.</summary>
    internal static Tensor OnStorage(Storage storage, Shape shape, DType dtype, ComputeContext context) =>
        new(storage, 0, shape, shape.ContiguousStrides(), dtype, context);

    public static Tensor Full(Shape shape, float value, DType dtype = DType.Float32, ComputeContext? context = null)
    {
        var t = Empty(shape, dtype, context);
        t.Context.Ops.Fill(t, value);
        return t;
    }

    public static Tensor Zeros(Shape shape, DType dtype = DType.Float32, ComputeContext? context = null) =>
        Full(shape, 0f, dtype, context);

    public static Tensor Ones(Shape shape, DType dtype = DType.Float32, ComputeContext? context = null) =>
        Full(shape, 1f, dtype, context);

    public static Tensor FromArray(ReadOnlySpan<float> data, Shape shape, ComputeContext? context = null) =>
        FromSpan(data, shape, DType.Float32, context);

    public static Tensor FromArray(ReadOnlySpan<int> data, Shape shape, ComputeContext? context = null) =>
        FromSpan(data, shape, DType.Int32, context);

    public static Tensor FromArray(ReadOnlySpan<byte> data, Shape shape, ComputeContext? context = null) =>
        FromSpan(data, shape, DType.UInt8, context);

    /// <summary>A tensor of the same shape, dtype and context, uninitialised.</summary>
    public Tensor EmptyLike() => Empty(Shape, DType, Context);

    public Tensor EmptyLike(Shape shape) => Empty(shape, DType, Context);

    /// <summary>Copies the contents into <paramref name="destination"/> (waits for pending device work).</summary>
    public void CopyTo<T>(Span<T> destination)
        where T : unmanaged
    {
        CheckHostType<T>(nameof(CopyTo));
        if (destination.Length != NumElements)
        {
            throw new ArgumentException($"{Describe()} has {NumElements} elements but the destination holds {destination.Length}", nameof(destination));
        }

        using var contiguous = Contiguous();
        Context.Ops.CopyToHost(contiguous, MemoryMarshal.AsBytes(destination));
    }

    public T[] ToArray<T>()
        where T : unmanaged
    {
        var result = new T[NumElements];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Overwrites the contents from host memory.</summary>
    public void CopyFrom<T>(ReadOnlySpan<T> source)
        where T : unmanaged
    {
        CheckHostType<T>(nameof(CopyFrom));
        if (source.Length != NumElements)
        {
            throw new ArgumentException($"{Describe()} has {NumElements} elements but the source holds {source.Length}", nameof(source));
        }

        if (!IsContiguous)
        {
            throw new InvalidOperationException($"CopyFrom needs a contiguous tensor, got {Describe()}");
        }

        Context.Ops.CopyFromHost(MemoryMarshal.AsBytes(source), this);
    }

    /// <summary>The value of a one-element tensor.</summary>
    public float Item()
    {
        if (NumElements != 1)
        {
            throw new InvalidOperationException($"Item() needs a one-element tensor, got {Describe()}");
        }

        return DType == DType.Int32 ? ToArray<int>()[0] : ToArray<float>()[0];
    }

    /// <summary>
    /// A view with a new shape over the same elements (one dimension may be -1). Needs a contiguous
    /// tensor. Does not record autograd; use <c>Reshape</c> for that.
    /// </summary>
    public Tensor View(params ReadOnlySpan<int> dims)
    {
        var shape = ResolveShape(dims);
        if (!IsContiguous)
        {
            throw new InvalidOperationException($"View {shape} needs a contiguous tensor, got {Describe()}; call Contiguous() first");
        }

        return Alias(Offset, shape, shape.ContiguousStrides());
    }

    /// <summary>Rows <paramref name="start"/>..start+length of the first axis, as a view.</summary>
    public Tensor NarrowView(int start, int length)
    {
        if (Rank == 0 || start < 0 || length < 0 || start + length > Shape[0])
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"rows {start}..{start + length} are outside {Describe()}");
        }

        var dims = Shape.AsSpan().ToArray();
        dims[0] = length;
        return Alias(Offset + (start * _strides[0]), new Shape(dims), _strides.ToArray());
    }

    /// <summary>Swaps two axes, as a view (not contiguous afterwards).</summary>
    public Tensor TransposeView(int axis0, int axis1)
    {
        var a = NormalizeAxis(axis0);
        var b = NormalizeAxis(axis1);
        var dims = Shape.AsSpan().ToArray();
        var strides = _strides.ToArray();
        (dims[a], dims[b]) = (dims[b], dims[a]);
        (strides[a], strides[b]) = (strides[b], strides[a]);
        return Alias(Offset, new Shape(dims), strides);
    }

    /// <summary>A contiguous tensor with the same contents: a view when already contiguous, else a copy.</summary>
    public Tensor Contiguous()
    {
        if (IsContiguous)
        {
            return Alias(Offset, Shape, _strides.ToArray());
        }

        var copy = EmptyLike();
        Context.Ops.Copy(this, copy);
        return copy;
    }

    /// <summary>A new tensor holding a copy of the contents.</summary>
    public Tensor Clone()
    {
        var copy = EmptyLike();
        Context.Ops.Copy(this, copy);
        return copy;
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>"x [64, 50, 192] f32 cpu" style description for error messages.</summary>
    public string Describe()
    {
        var name = Name is null ? "tensor" : $"'{Name}'";
        return $"{name} {Shape} {DType} on {Context}";
    }

    public override string ToString() => Describe();

    protected virtual void Dispose(bool disposing)
    {
        var storage = Interlocked.Exchange(ref _storage, null);
        if (storage is null)
        {
            return;
        }

        storage.Release();
        DisposeGradBuffer();
    }

    internal Tensor Alias(long offset, Shape shape, long[] strides)
    {
        var storage = Storage;
        storage.AddRef();
        return new Tensor(storage, offset, shape, strides, DType, Context);
    }

    /// <summary>The same storage, relabelled as ordered on another context of the same device.</summary>
    internal Tensor AliasOn(ComputeContext context)
    {
        if (context.Device != Device)
        {
            throw new ArgumentException($"cannot alias {Describe()} on {context}: different device", nameof(context));
        }

        var storage = Storage;
        storage.AddRef();
        storage.UseOn(context);
        return new Tensor(storage, Offset, Shape, _strides.ToArray(), DType, context);
    }

    private static Tensor FromSpan<T>(ReadOnlySpan<T> data, Shape shape, DType dtype, ComputeContext? context)
        where T : unmanaged
    {
        var t = Empty(shape, dtype, context);
        try
        {
            t.CopyFrom(data);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    private Shape ResolveShape(ReadOnlySpan<int> dims)
    {
        var resolved = dims.ToArray();
        var inferred = -1;
        long known = 1;
        for (var i = 0; i < resolved.Length; i++)
        {
            if (resolved[i] == -1)
            {
                if (inferred >= 0)
                {
                    throw new ArgumentException($"shape [{string.Join(", ", resolved)}] has more than one -1", nameof(dims));
                }

                inferred = i;
            }
            else
            {
                known *= resolved[i];
            }
        }

        if (inferred >= 0 && known != 0)
        {
            resolved[inferred] = (int)(NumElements / known);
        }

        var shape = new Shape(resolved);
        if (shape.NumElements != NumElements)
        {
            throw new ArgumentException($"cannot view {Describe()} ({NumElements} elements) as [{string.Join(", ", dims.ToArray())}]", nameof(dims));
        }

        return shape;
    }

    private int NormalizeAxis(int axis)
    {
        var a = axis < 0 ? axis + Rank : axis;
        if ((uint)a >= (uint)Rank)
        {
            throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is out of range for {Describe()}");
        }

        return a;
    }

    private void CheckHostType<T>(string what)
        where T : unmanaged
    {
        var ok = DType switch
        {
            DType.Float32 => typeof(T) == typeof(float),
            DType.Int32 => typeof(T) == typeof(int),
            DType.UInt8 => typeof(T) == typeof(byte),
            DType.BFloat16 or DType.Float16 => typeof(T) == typeof(ushort) || typeof(T) == typeof(Half),
            _ => false,
        };
        if (!ok)
        {
            throw new ArgumentException($"{what}: {Describe()} holds {DType}, not {typeof(T).Name}");
        }
    }
}
