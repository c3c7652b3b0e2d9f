using System.Globalization;
using ParaCuda.Native;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda;

/// <summary>A block of device memory: where, how big, the stream it belongs to, and the other streams that used it.</summary>
internal sealed class Block(ulong pointer, long size, CudaContext owner)
{
    public ulong Pointer { get; } = pointer;

    public long Size { get; } = size;

    public CudaContext Owner { get; } = owner;

    /// <summary>Contexts other than the owner whose work used this block since it was handed out.</summary>
    public HashSet<CudaContext>? Users { get; set; }

    /// <summary>The graph whose capture allocated this block: while it lives, the block goes back to it, never to others.</summary>
    public GraphPool? Pool { get; set; }
}

/// <summary>
/// The memory a captured graph's work uses: every block allocated while it was captured. A graph replays the
/// same addresses, so none of them may go to other tensors while it lives; blocks freed inside the capture are
/// reused only by later allocations of the same capture (they run in stream order within the graph).
/// </summary>
internal sealed class GraphPool(CudaContext context)
{
    public CudaContext Context { get; } = context;

    public List<Block> Blocks { get; } = [];

    public Dictionary<long, Stack<Block>> Free { get; } = [];
}

/// <summary>
/// Stream-ordered caching of device memory, so a training step never calls cuMemAlloc or cuMemFree (each
/// free would wait for the whole device). A block belongs to the stream it was allocated on. Released, it
/// goes straight back to that stream's free list when no other stream used it: work issued later on the
/// stream runs after the work that used it. When other streams used it, an event is recorded on each, and
/// the block returns to the free list only once all of them have completed (PyTorch's record_stream).
/// Sizes are rounded up to the device's granularity and cached by exact size. When the device runs out,
/// the cache is emptied and the request tried once more; if that fails too, the error names the request,
/// what is free and held, and what to do.
/// </summary>
internal sealed class CachingAllocator(CudaBackend backend) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(CudaContext Context, long Size), Stack<Block>> _free = [];
    private readonly List<(Block Block, List<(CudaContext Context, nint Event)> Events)> _pending = [];
    private long _allocated;
    private long _reserved;
    private long _peakAllocated;
    private long _peakReserved;
    private GraphPool? _capturing;

    public MemoryStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new MemoryStats(_allocated, _reserved, _peakAllocated, _peakReserved);
            }
        }
    }

    /// <summary>
    /// A block for <paramref name="context"/>. During a capture, <paramref name="unshared"/> asks for one that no
    /// captured work has used, for data written once after the capture and read by every replay (a kernel table):
    /// a block freed earlier in the capture is rewritten by the work that used it on each replay.
    /// </summary>
    public Block Allocate(long bytes, CudaContext context, bool unshared = false)
    {
        var granularity = backend.Gpu.Properties.AllocationGranularity;
        var size = (Math.Max(bytes, 1) + granularity - 1) / granularity * granularity;
        lock (_lock)
        {
            Collect();
            Block? block = null;
            if (_capturing is { } pool)
            {
                if (!ReferenceEquals(context, pool.Context))
                {
                    throw new InvalidOperationException($"{context} allocates while a graph is captured on {pool.Context}: a graph holds the work of one stream");
                }

                if (!unshared && pool.Free.TryGetValue(size, out var own) && own.TryPop(out var reused))
                {
                    block = reused;
                }
            }

            if (block is null && (!_free.TryGetValue((context, size), out var stack) || !stack.TryPop(out block)))
            {
                block = new Block(Fresh(size, bytes), size, context);
                _reserved += size;
                _peakReserved = Math.Max(_peakReserved, _reserved);
            }

            if (_capturing is { } capture && block.Pool is null)
            {
                block.Pool = capture;
                capture.Blocks.Add(block);
            }

            _allocated += size;
            _peakAllocated = Math.Max(_peakAllocated, _allocated);
            return block;
        }
    }

    /// <summary>Notes that <paramref name="context"/>'s work uses <paramref name="block"/>.</summary>
    public static void RecordUse(Block block, CudaContext context)
    {
        if (ReferenceEquals(context, block.Owner))
        {
            return;
        }

        lock (block)
        {
            (block.Users ??= []).Add(context);
        }
    }

    public void Release(Block block)
    {
        if (backend.IsDisposed)
        {
            // Disposing the backend waited for its work and gave its memory back with the device.
            return;
        }

        List<(CudaContext, nint)>? events = null;
        lock (block)
        {
            if (block.Users is { Count: > 0 } users)
            {
                events = [];
                // A user on a backend disposed since has finished: disposing waited for its streams.
                foreach (var user in users.Where(u => !u.Cuda.IsDisposed))
                {
                    var e = user.Cuda.RentEvent();
                    user.Gpu.RecordEvent(e, user.Stream);
                    events.Add((user, e));
                }

                block.Users = null;
            }
        }

        lock (_lock)
        {
            _allocated -= block.Size;
            if (block.Pool is null && _capturing is { } capture && ReferenceEquals(block.Owner, capture.Context))
            {
                // Freed inside a capture: the graph's work used it, so every replay will again.
                block.Pool = capture;
                capture.Blocks.Add(block);
            }

            if (block.Pool is { } pool)
            {
                (pool.Free.TryGetValue(block.Size, out var own) ? own : pool.Free[block.Size] = new Stack<Block>()).Push(block);
            }
            else if (events is null)
            {
                Push(block);
            }
            else
            {
                _pending.Add((block, events));
            }
        }
    }

    /// <summary>From now until <see cref="EndCapture"/>, allocations on <paramref name="context"/> belong to a new graph's pool.</summary>
    public GraphPool BeginCapture(CudaContext context)
    {
        lock (_lock)
        {
            if (_capturing is not null)
            {
                throw new InvalidOperationException($"a graph is already being captured on {_capturing.Context}");
            }

            return _capturing = new GraphPool(context);
        }
    }

    public void EndCapture()
    {
        lock (_lock)
        {
            _capturing = null;
        }
    }

    /// <summary>
    /// A graph is gone: once its last launch has run (an event on its stream), its free blocks go back to the
    /// stream's free list; blocks its tensors still hold go back there when those are released.
    /// </summary>
    public void ReleasePool(GraphPool pool)
    {
        lock (_lock)
        {
            foreach (var block in pool.Blocks)
            {
                block.Pool = null;
            }

            foreach (var block in pool.Free.Values.SelectMany(s => s))
            {
                var e = pool.Context.Cuda.RentEvent();
                pool.Context.Gpu.RecordEvent(e, pool.Context.Stream);
                _pending.Add((block, [(pool.Context, e)]));
            }
        }
    }

    /// <summary>Gives every cached block back to the driver (waiting for pending ones first).</summary>
    public void EmptyCache()
    {
        lock (_lock)
        {
            if (_capturing is not null)
            {
                // Freeing device memory would wait for the device, which a captured stream cannot do.
                return;
            }

            foreach (var (_, events) in _pending)
            {
                foreach (var (context, e) in events)
                {
                    if (!context.Cuda.IsDisposed)
                    {
                        context.Gpu.SynchronizeEvent(e);
                    }
                }
            }

            Collect();
            foreach (var block in _free.Values.SelectMany(s => s))
            {
                backend.Gpu.Free(block.Pointer);
                _reserved -= block.Size;
            }

            _free.Clear();
        }
    }

    public void Dispose() => EmptyCache();

    /// <summary>Moves pending blocks whose users have all finished to their free lists.</summary>
    private void Collect()
    {
        for (var i = _pending.Count - 1; i >= 0; i--)
        {
            var (block, events) = _pending[i];
            if (!events.TrueForAll(e => Completed(e.Context, e.Event)))
            {
                continue;
            }

            foreach (var (context, e) in events.Where(e => !e.Context.Cuda.IsDisposed))
            {
                context.Cuda.ReturnEvent(e);
            }

            _pending.RemoveAt(i);
            Push(block);
        }
    }

    /// <summary>
    /// A user on another backend (a peer device) that is closed synchronised all its work as it closed, and its
    /// events went with it.
    /// </summary>
    private static bool Completed(CudaContext context, nint e) => context.Cuda.IsDisposed || context.Gpu.EventCompleted(e);

    private void Push(Block block)
    {
        if (!_free.TryGetValue((block.Owner, block.Size), out var stack))
        {
            _free[(block.Owner, block.Size)] = stack = new Stack<Block>();
        }

        stack.Push(block);
    }

    private ulong Fresh(long size, long requested)
    {
        try
        {
            return backend.Gpu.Allocate(size);
        }
        catch (CudaException e) when (e.Status == CudaDriver.OutOfMemory)
        {
        }

        EmptyCache();
        try
        {
            return backend.Gpu.Allocate(size);
        }
        catch (CudaException e) when (e.Status == CudaDriver.OutOfMemory)
        {
            var (free, total) = backend.Gpu.MemoryInfo();
            throw new DeviceOutOfMemoryException(string.Create(
                CultureInfo.InvariantCulture,
                $"{backend.Device} ({backend.Gpu.Properties.Name}) is out of memory: a tensor of {Size(requested)} could not be allocated with {Size(free)} free of {Size(total)}; " +
                $"ParaCuda holds {Size(_reserved)} ({Size(_allocated)} in use). Try a smaller --batch."));
        }
    }

    private static string Size(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MiB");
}

/// <summary>A tensor's memory on a CUDA device: a block of the backend's caching allocator.</summary>
internal sealed class CudaStorage : Storage
{
    private readonly CudaBackend _backend;
    private readonly Block _block;

    public CudaStorage(CudaBackend backend, Block block, long bytes)
        : base(backend.Device, bytes)
    {
        _backend = backend;
        _block = block;
    }

    public ulong Pointer => IsFreed ? throw new ObjectDisposedException(nameof(CudaStorage)) : _block.Pointer;

    public CudaBackend Backend => _backend;

    internal override void UseOn(ComputeContext context)
    {
        if (context is CudaContext cuda)
        {
            CachingAllocator.RecordUse(_block, cuda);
        }
    }

    protected override void Free() => _backend.Allocator.Release(_block);
}
