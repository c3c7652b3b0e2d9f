using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// One CUDA stream (non-blocking) of a <see cref="CudaBackend"/>, with what work on it needs: its own op set,
/// a cuBLAS handle bound to it, and a pinned staging ring for small uploads (kernel tables, host tensors).
/// </summary>
public sealed class CudaContext : ComputeContext, IDisposable
{
    private readonly CudaOps _ops;
    private readonly Lazy<nint> _blas;
    private readonly Lazy<HostStaging> _staging;

    /// <summary>While a graph is captured: the tables its kernels read, uploaded once the capture ends.</summary>
    private List<(Tensor Table, byte[] Bytes)>? _capturedTables;

    internal CudaContext(CudaBackend backend, string name)
        : base(backend, name)
    {
        Cuda = backend;
        Stream = backend.Gpu.CreateStream();
        _ops = new CudaOps(this);
        _blas = new Lazy<nint>(() => Gpu.CreateBlas(Stream));
        _staging = new Lazy<HostStaging>(() => new HostStaging(this));
    }

    public override Ops Ops => _ops;

    internal CudaBackend Cuda { get; }

    internal IGpu Gpu => Cuda.Gpu;

    internal nint Stream { get; }

    internal nint Blas => _blas.Value;

    public override ContextEvent RecordEvent()
    {
        var handle = Cuda.RentEvent();
        Gpu.RecordEvent(handle, Stream);
        return new CudaEvent(this, handle);
    }

    public override void Wait(ContextEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e is CudaEvent cuda)
        {
            Gpu.WaitEvent(Stream, cuda.Handle);
        }
        else if (!e.IsCompleted)
        {
            throw new ArgumentException($"{this} cannot wait for an event of another kind of device that is still pending", nameof(e));
        }
    }

    public override void Synchronize() => Gpu.SynchronizeStream(Stream);

    public override bool CanCapture => true;

    /// <summary>Whether work issued now is being captured into a graph (recorded, not run).</summary>
    internal bool IsCapturing => _capturedTables is not null;

    public override ContextGraph Capture(Action body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var allocator = Cuda.Allocator;
        var pool = allocator.BeginCapture(this);
        try
        {
            Gpu.BeginCapture(Stream);
        }
        catch
        {
            allocator.EndCapture();
            throw;
        }

        var tables = _capturedTables = [];

        nint graph;
        try
        {
            body();
        }
        catch
        {
            // End the capture whatever happened, so the stream works again; the partial graph is of no use.
            try
            {
                Gpu.DestroyGraph(Gpu.EndCapture(Stream));
            }
            finally
            {
                _capturedTables = null;
                allocator.EndCapture();
                DisposeAll(tables);
                allocator.ReleasePool(pool);
            }

            throw;
        }

        try
        {
            graph = Gpu.EndCapture(Stream);
        }
        finally
        {
            _capturedTables = null;
            allocator.EndCapture();
        }

        // Each table once, before the first replay: the graph's kernels read them where the capture put them.
        foreach (var (table, bytes) in tables)
        {
            Upload(bytes, ((CudaStorage)table.Storage).Pointer);
        }

        return new CudaGraph(this, graph, pool, [.. tables.Select(t => t.Table)]);
    }

    public override double Time(Action body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var (start, end) = (Gpu.CreateEvent(timing: true), Gpu.CreateEvent(timing: true));
        try
        {
            Gpu.RecordEvent(start, Stream);
            body();
            Gpu.RecordEvent(end, Stream);
            Gpu.SynchronizeEvent(end);
            return Gpu.ElapsedMilliseconds(start, end);
        }
        finally
        {
            Gpu.DestroyEvent(start);
            Gpu.DestroyEvent(end);
        }
    }

    public void Dispose()
    {
        if (_staging.IsValueCreated)
        {
            _staging.Value.Dispose();
        }

        if (_blas.IsValueCreated)
        {
            Gpu.DestroyBlas(_blas.Value);
        }

        Gpu.DestroyStream(Stream);
    }

    /// <summary>Launches <paramref name="kernel"/> on this stream, packing the arguments as cuLaunchKernel reads them.</summary>
    internal void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, int sharedBytes, params ReadOnlySpan<KernelArgument> arguments) =>
        Launch(kernel, grid, block, sharedBytes, [], arguments);

    /// <summary>A launch whose kernel also reaches the buffers <paramref name="throughTables"/> lists through a pointer table.</summary>
    internal unsafe void Launch(KernelFunction kernel, Dim3 grid, Dim3 block, int sharedBytes, ReadOnlySpan<BufferAccess> throughTables, params ReadOnlySpan<KernelArgument> arguments)
    {
        Cuda.AllowSharedMemory(kernel, sharedBytes);
        var slots = stackalloc ulong[arguments.Length];
        var pointers = stackalloc void*[arguments.Length];
        KernelArgument.Pack(arguments, slots, pointers);
        Gpu.Launch(kernel.Handle, grid, block, sharedBytes, Stream, pointers, arguments.Length, throughTables);
    }

    /// <summary>Copies host bytes to <paramref name="destination"/> on this stream without waiting for the stream.</summary>
    internal void Upload(ReadOnlySpan<byte> bytes, ulong destination) => _staging.Value.Copy(bytes, destination);

    /// <summary>
    /// A device tensor holding <paramref name="values"/>, ordered on this stream (a kernel's table). While a graph is
    /// captured, the graph keeps the table's memory for its replays (the caller's tensor is a view of it), in a block
    /// no other captured work touches, and the bytes go up once the capture ends: a captured upload would replay
    /// from a staging slot long since reused.
    /// </summary>
    internal Tensor Table<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values);
        using var unscoped = TensorScope.Unscoped();
        var shape = new Shape((bytes.Length + 3) / 4);
        if (_capturedTables is { } captured)
        {
            var held = Tensor.OnStorage(new CudaStorage(Cuda, Cuda.Allocator.Allocate(shape.NumElements * 4, this, unshared: true), shape.NumElements * 4), shape, DType.Int32, this);
            captured.Add((held, bytes.ToArray()));
            return held.NarrowView(0, shape[0]);
        }

        var table = Tensor.Empty(shape, DType.Int32, this);

        Upload(bytes, ((CudaStorage)table.Storage).Pointer);
        return table;
    }

    private static void DisposeAll(List<(Tensor Table, byte[] Bytes)> tables)
    {
        foreach (var (table, _) in tables)
        {
            table.Dispose();
        }
    }

    private sealed class CudaEvent(CudaContext owner, nint handle) : ContextEvent
    {
        private int _returned;

        public nint Handle { get; } = handle;

        public override bool IsCompleted => owner.Gpu.EventCompleted(Handle);

        protected override void Dispose(bool disposing)
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0)
            {
                owner.Cuda.ReturnEvent(Handle);
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A ring of pinned host memory through which a stream's small uploads travel: bytes are copied into the ring
/// and an asynchronous copy takes them to the device, so the host never waits for the stream (a copy from
/// pageable memory would wait for it to drain first). A region is written again only after the event recorded
/// behind its last copy has completed.
/// </summary>
internal sealed unsafe class HostStaging : IDisposable
{
    private const long Alignment = 256;

    private readonly CudaContext _context;
    private readonly Queue<(long Start, long End, nint Event)> _inFlight = new();
    private long _capacity = 1L << 20;
    private nint _ring;
    private long _head;

    public HostStaging(CudaContext context)
    {
        _context = context;
        _ring = context.Gpu.AllocatePinned(_capacity);
    }

    public void Copy(ReadOnlySpan<byte> bytes, ulong destination)
    {
        var size = (bytes.Length + Alignment - 1) / Alignment * Alignment;
        if (2 * size > _capacity)
        {
            // Room for two uploads of this size, so one can fill while the other is still being copied.
            Reclaim(0, _capacity);
            _context.Gpu.FreePinned(_ring);
            _capacity = Math.Max(2 * size, 2 * _capacity);
            _ring = _context.Gpu.AllocatePinned(_capacity);
            _head = 0;
        }

        if (_head + size > _capacity)
        {
            _head = 0;
        }

        Reclaim(_head, _head + size);
        var slot = (byte*)_ring + _head;
        bytes.CopyTo(new Span<byte>(slot, bytes.Length));
        _context.Gpu.CopyHostToDevice(destination, slot, bytes.Length, _context.Stream);
        var e = _context.Cuda.RentEvent();
        _context.Gpu.RecordEvent(e, _context.Stream);
        _inFlight.Enqueue((_head, _head + size, e));
        _head += size;
    }

    public void Dispose()
    {
        Reclaim(0, _capacity);
        _context.Gpu.FreePinned(_ring);
    }

    /// <summary>Waits for the copies still reading [start, end) and returns their events; finished ones are dropped on the way.</summary>
    private void Reclaim(long start, long end)
    {
        var keep = new Queue<(long, long, nint)>();
        while (_inFlight.TryDequeue(out var copy))
        {
            var overlaps = copy.Start < end && start < copy.End;
            if (overlaps)
            {
                _context.Gpu.SynchronizeEvent(copy.Event);
            }

            if (overlaps || _context.Gpu.EventCompleted(copy.Event))
            {
                _context.Cuda.ReturnEvent(copy.Event);
            }
            else
            {
                keep.Enqueue(copy);
            }
        }

        foreach (var copy in keep)
        {
            _inFlight.Enqueue(copy);
        }
    }
}

/// <summary>A graph of one CUDA stream's work and the memory it replays into.</summary>
internal sealed class CudaGraph(CudaContext context, nint graph, GraphPool pool, Tensor[] tables) : ContextGraph
{
    private bool _disposed;

    public override void Replay()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.Gpu.LaunchGraph(graph, context.Stream);
    }

    protected override void Dispose(bool disposing)
    {
        if (!_disposed && disposing && !context.Cuda.IsDisposed)
        {
            context.Gpu.DestroyGraph(graph);
            foreach (var table in tables)
            {
                table.Dispose();
            }

            context.Cuda.Allocator.ReleasePool(pool);
        }

        _disposed = true;
        base.Dispose(disposing);
    }
}
