using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda.Emulator;

/// <summary>How an emulated device behaves: the seed of its scheduling, its memory size, its architecture.</summary>
public sealed record EmulatorOptions
{
    /// <summary>The environment variable that seeds block order and thread scheduling (default 1).</summary>
    public const string SeedVariable = "PARACUDA_EMULATOR_SEED";

    /// <summary>Seeds the order of blocks and the scheduling of threads at every barrier and warp collective.</summary>
    public ulong Seed { get; init; } = ulong.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out var seed) ? seed : 1;

    /// <summary>Device memory; allocations beyond it fail as out of memory. Default: 8 GiB or half the host's memory, whichever is less.</summary>
    public long MemoryBytes { get; init; } = Math.Min(8L << 30, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2);

    /// <summary>The compute capability it reports (that of an H100 by default).</summary>
    public (int Major, int Minor) ComputeCapability { get; init; } = (9, 0);
}

/// <summary>
/// A CUDA device emulated on the CPU, behind the same <see cref="IGpu"/> surface as a real GPU, so the CUDA
/// backend's own allocation, copy, stream, event, launch and GEMM code runs unchanged. It is stricter than a
/// GPU where a GPU would only sometimes show a bug:
/// - each stream's work is drained by its own host thread, so streams really run concurrently; and a race
///   detector (<see cref="HappensBefore"/>) checks every access against the event waits and host
///   synchronisations issued so far, so a missing wait fails at the call that issues the racing work, every time;
/// - fresh allocations are filled with NaN bytes; guard zones around each allocation are checked after every
///   launch against the buffers the launch was passed, naming the kernel and the argument;
/// - a kernel argument, copy or GEMM operand outside every live allocation is an error (use after free);
/// - launch limits are enforced (grid y and z ≤ 65535, at most 1024 threads a block, more than 48 KB of dynamic
///   shared memory only after <see cref="SetMaxDynamicSharedMemory"/>), naming the kernel and the numbers;
/// - kernels are the .cu files built by g++ with cuda_emulator.h: blocks in a seeded random order, a block's
///   threads as fibers scheduled at random at every barrier and warp collective, collectives checked for
///   exited and diverged lanes;
/// - GEMMs follow cuBLAS's contract, computed by <see cref="ReferenceBlas"/>.
/// Errors inside a launch are sticky, as on a GPU: every later call reports them.
/// </summary>
public sealed unsafe class EmulatedGpu : IGpu
{
    private static readonly MemoryMap s_memory = new();
    private static readonly HappensBefore s_clocks = new();
    private static readonly Lock s_order = new();
    private static readonly ConcurrentDictionary<nint, object> s_handles = new();
    private static long s_nextHandle;
    private static int s_devices;

    private readonly EmulatorOptions _options;
    private readonly ConcurrentDictionary<nint, EmulatedStream> _streams = new();
    private long _launches;
    private string? _failure;
    private bool _disposed;

    private EmulatedGpu(EmulatorOptions options)
    {
        _options = options;
        Index = Interlocked.Increment(ref s_devices) - 1;
        Properties = new GpuProperties(
            $"emulated GPU {Index}",
            options.ComputeCapability.Major,
            options.ComputeCapability.Minor,
            Multiprocessors: 132,
            TotalMemory: options.MemoryBytes,
            MaxThreadsPerBlock: 1024,
            MaxBlock: new Dim3(1024, 1024, 64),
            MaxGrid: new Dim3(int.MaxValue, 65535, 65535),
            SharedMemoryPerBlock: 48 * 1024,
            SharedMemoryPerBlockOptin: 227 * 1024,
            AllocationGranularity: 4,
            Runtime: $"emulated on the CPU (seed {options.Seed})");
    }

    /// <summary>Why kernels cannot be emulated on this machine (no g++), or null.</summary>
    public static string? UnavailableReason => EmulatorKernels.UnavailableReason;

    /// <summary>A process-wide number that tells this device from other emulated ones.</summary>
    public int Index { get; }

    public GpuProperties Properties { get; }

    /// <summary>A new emulated device; emulated devices of one process can copy to each other and wait on each other's events.</summary>
    public static EmulatedGpu Create(EmulatorOptions? options = null)
    {
        if (UnavailableReason is { } reason)
        {
            throw new CudaException(reason, CudaDriver.InvalidValue);
        }

        return new EmulatedGpu(options ?? new EmulatorOptions());
    }

    /// <summary>Compiles every kernel file not yet in the emulator's cache, using all cores (the first use otherwise compiles one file at a time).</summary>
    public static void Prepare(KernelSources sources) => EmulatorKernels.Prepare(sources);

    public ulong Allocate(long bytes)
    {
        ThrowIfFailed();
        if (bytes <= 0)
        {
            throw new CudaException($"CUDA_ERROR_INVALID_VALUE in cuMemAlloc({bytes} bytes)", CudaDriver.InvalidValue);
        }

        lock (s_order)
        {
            var used = s_memory.DeviceBytes(this);
            if (used + bytes > _options.MemoryBytes)
            {
                throw new CudaException($"CUDA_ERROR_OUT_OF_MEMORY in cuMemAlloc({bytes} bytes) with {_options.MemoryBytes - used} bytes free", CudaDriver.OutOfMemory);
            }

            var a = new Allocation(this, bytes, pinned: false);
            s_memory.Add(a);
            return a.Start;
        }
    }

    public void Free(ulong pointer)
    {
        // cuMemFree waits for the device to be idle; so does this, so no queued work still holds the memory.
        Synchronize();
        lock (s_order)
        {
            s_memory.Remove(pointer, pinned: false, "cuMemFree()").Release();
        }
    }

    public nint AllocatePinned(long bytes)
    {
        ThrowIfFailed();
        var a = new Allocation(null, Math.Max(bytes, 1), pinned: true);
        lock (s_order)
        {
            s_memory.Add(a);
        }

        return (nint)a.Start;
    }

    public void FreePinned(nint pointer)
    {
        Synchronize();
        lock (s_order)
        {
            s_memory.Remove((ulong)pointer, pinned: true, "cuMemFreeHost()").Release();
        }
    }

    public (long Free, long Total) MemoryInfo() => (_options.MemoryBytes - s_memory.DeviceBytes(this), _options.MemoryBytes);

    public nint CreateStream()
    {
        ThrowIfFailed();
        int index;
        lock (s_order)
        {
            index = s_clocks.AddStream();
        }

        var handle = NewHandle();
        var stream = new EmulatedStream(this, index, $"emulated GPU {Index} stream {index}");
        _streams[handle] = stream;
        s_handles[handle] = stream;
        return handle;
    }

    public void DestroyStream(nint stream)
    {
        var s = Stream(stream, "cuStreamDestroy()");
        _streams.TryRemove(stream, out _);
        s_handles.TryRemove(stream, out _);
        s.Dispose();
    }

    public void SynchronizeStream(nint stream)
    {
        var s = Stream(stream, "cuStreamSynchronize()");
        NotCapturing(s, "cuStreamSynchronize()");
        long[] seen;
        using var done = new ManualResetEventSlim();
        lock (s_order)
        {
            seen = s_clocks.Snapshot(s.Index);
            s.Enqueue(done.Set, signal: true);
        }

        done.Wait();
        lock (s_order)
        {
            s_clocks.HostSaw(seen);
        }

        ThrowIfFailed();
    }

    public nint CreateEvent(bool timing = false)
    {
        var handle = NewHandle();
        s_handles[handle] = new EmulatedEvent(timing);
        return handle;
    }

    public void DestroyEvent(nint e) => s_handles.TryRemove(e, out _);

    public void RecordEvent(nint e, nint stream)
    {
        ThrowIfFailed();
        var ev = Event(e);
        var s = Stream(stream, "cuEventRecord()");
        NotCapturing(s, "cuEventRecord()");
        lock (s_order)
        {
            var record = new EventRecord(s_clocks.Snapshot(s.Index));
            ev.Last = record;
            s.Enqueue(record.Reach, signal: true);
        }
    }

    public void WaitEvent(nint stream, nint e)
    {
        ThrowIfFailed();
        var s = Stream(stream, "cuStreamWaitEvent()");
        NotCapturing(s, "cuStreamWaitEvent()");
        lock (s_order)
        {
            // As on a GPU, the wait is for the record made before this call; a later record does not move it.
            if (Event(e).Last is { } record)
            {
                s_clocks.Wait(s.Index, record.Seen);
                s.Enqueue(record.Done.Wait, signal: true);
            }
        }
    }

    public bool EventCompleted(nint e)
    {
        ThrowIfFailed();
        if (Event(e).Last is not { } record)
        {
            return true;
        }

        if (!record.Done.IsSet)
        {
            return false;
        }

        lock (s_order)
        {
            s_clocks.HostSaw(record.Seen);
        }

        return true;
    }

    public void SynchronizeEvent(nint e)
    {
        if (Event(e).Last is { } record)
        {
            record.Done.Wait();
            lock (s_order)
            {
                s_clocks.HostSaw(record.Seen);
            }
        }

        ThrowIfFailed();
    }

    public float ElapsedMilliseconds(nint first, nint last)
    {
        var (a, b) = (Event(first), Event(last));
        if (!a.Timing || !b.Timing || a.Last is not { Done.IsSet: true } from || b.Last is not { Done.IsSet: true } to)
        {
            throw new CudaException("CUDA_ERROR_INVALID_HANDLE in cuEventElapsedTime(): both events must be timing events whose records completed", 400);
        }

        return (float)((to.ReachedAt - from.ReachedAt) * 1000.0 / Stopwatch.Frequency);
    }

    public void Synchronize()
    {
        foreach (var captured in _streams.Values)
        {
            NotCapturing(captured, "cuCtxSynchronize()");
        }

        foreach (var stream in _streams.Keys)
        {
            SynchronizeStream(stream);
        }

        ThrowIfFailed();
    }

    public void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream)
    {
        const string Call = "cuMemcpyHtoDAsync()";
        var s = Stream(stream, Call);
        NotCapturing(s, Call);
        var target = s_memory.Require(destination, bytes, "destination", Call);
        var pinned = s_memory.Find((ulong)source, bytes) is { Pinned: true } p ? p : null;
        // From pageable memory the driver copies the source before returning; from pinned memory the copy reads it when it runs.
        var staged = pinned is null ? new ReadOnlySpan<byte>(source, checked((int)bytes)).ToArray() : null;
        Issue(s, Call, [(target, true, "the destination"), .. pinned is null ? Array.Empty<(Allocation, bool, string)>() : [(pinned, false, "the pinned source")]], () =>
        {
            if (staged is null)
            {
                Buffer.MemoryCopy(source, (void*)destination, bytes, bytes);
            }
            else
            {
                staged.CopyTo(new Span<byte>((void*)destination, staged.Length));
            }
        });
    }

    public void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream)
    {
        const string Call = "cuMemcpyDtoHAsync()";
        var s = Stream(stream, Call);
        NotCapturing(s, Call);
        var from = s_memory.Require(source, bytes, "source", Call);
        var pinned = s_memory.Find((ulong)destination, bytes) is { Pinned: true } p ? p : null;
        if (pinned is not null)
        {
            Issue(s, Call, [(from, false, "the source"), (pinned, true, "the pinned destination")], () => Buffer.MemoryCopy((void*)source, destination, bytes, bytes));
            return;
        }

        // Into pageable memory the call returns only when the copy (and so all earlier work on the stream) is done.
        using var done = new ManualResetEventSlim();
        var seen = Issue(s, Call, [(from, false, "the source")], () => Buffer.MemoryCopy((void*)source, destination, bytes, bytes), done.Set);
        done.Wait();
        lock (s_order)
        {
            s_clocks.HostSaw(seen);
        }

        ThrowIfFailed();
    }

    public void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream)
    {
        const string Call = "cuMemcpyDtoDAsync()";
        var s = Stream(stream, Call);
        if (Captured(s, () => CopyDeviceToDevice(destination, source, bytes, stream)))
        {
            return;
        }

        var from = s_memory.Require(source, bytes, "source", Call);
        var to = s_memory.Require(destination, bytes, "destination", Call);
        Issue(s, Call, [(from, false, "the source"), (to, true, "the destination")], () => Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes));
    }

    public void CopyPeer(ulong destination, ulong source, IGpu sourceGpu, long bytes, nint stream)
    {
        const string Call = "cuMemcpyPeerAsync()";
        if (sourceGpu is not EmulatedGpu)
        {
            throw new ArgumentException($"a peer copy to an emulated device needs an emulated source, not {sourceGpu.Properties.Name}", nameof(sourceGpu));
        }

        var s = Stream(stream, Call);
        if (Captured(s, () => CopyPeer(destination, source, sourceGpu, bytes, stream)))
        {
            return;
        }

        var from = s_memory.Require(source, bytes, "source", Call);
        var to = s_memory.Require(destination, bytes, "destination", Call);
        Issue(s, Call, [(from, false, "the source"), (to, true, "the destination")], () => Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes));
    }

    public void Fill32(ulong destination, uint value, long count, nint stream)
    {
        const string Call = "cuMemsetD32Async()";
        var s = Stream(stream, Call);
        if (Captured(s, () => Fill32(destination, value, count, stream)))
        {
            return;
        }

        var to = s_memory.Require(destination, count * 4, "destination", Call);
        Issue(s, Call, [(to, true, "the destination")], () => new Span<uint>((void*)destination, checked((int)count)).Fill(value));
    }

    public nint LoadModule(KernelSources sources, string file, IReadOnlyList<string> defines)
    {
        ThrowIfFailed();
        var handle = NewHandle();
        s_handles[handle] = EmulatorKernels.Load(sources, file, defines);
        return handle;
    }

    public nint GetFunction(nint loaded, string kernel)
    {
        var functions = (Dictionary<string, EmulatedFunction>)s_handles[loaded];
        if (!functions.TryGetValue(kernel, out var function))
        {
            throw new CudaException($"CUDA_ERROR_NOT_FOUND in cuModuleGetFunction({kernel}): the module has {string.Join(", ", functions.Keys)}", 500);
        }

        var handle = NewHandle();
        s_handles[handle] = function;
        return handle;
    }

    public void SetMaxDynamicSharedMemory(nint kernel, int bytes)
    {
        var f = Function(kernel);
        if (bytes < 0 || bytes > Properties.SharedMemoryPerBlockOptin)
        {
            throw new CudaException($"CUDA_ERROR_INVALID_VALUE in cuFuncSetAttribute({f.Name}, max dynamic shared memory {bytes} bytes): the device allows at most {Properties.SharedMemoryPerBlockOptin}", CudaDriver.InvalidValue);
        }

        f.MaxDynamicShared = bytes;
    }

    public void Launch(nint kernel, Dim3 grid, Dim3 block, int sharedBytes, nint stream, void** arguments, int count, ReadOnlySpan<BufferAccess> throughTables)
    {
        var f = Function(kernel);
        var call = $"cuLaunchKernel({f.Name}, grid {grid}, block {block}, {sharedBytes} bytes of shared memory)";
        var s = Stream(stream, call);
        CheckGeometry(f, grid, block, sharedBytes, count, call);

        // The caller's argument slots die when this returns; the launch runs later, on the stream's thread.
        var offsets = new int[count + 1];
        for (var i = 0; i < count; i++)
        {
            offsets[i + 1] = offsets[i] + f.Sizes[i];
        }

        var blob = new byte[offsets[count]];
        for (var i = 0; i < count; i++)
        {
            new ReadOnlySpan<byte>(arguments[i], f.Sizes[i]).CopyTo(blob.AsSpan(offsets[i]));
        }

        var tables = throughTables.ToArray();
        if (!Captured(s, () => LaunchPacked(f, grid, block, sharedBytes, s, blob, offsets, tables, call)))
        {
            LaunchPacked(f, grid, block, sharedBytes, s, blob, offsets, tables, call);
        }
    }

    /// <summary>A launch whose arguments are packed in <paramref name="blob"/>: every buffer they name checked, then the work queued.</summary>
    private void LaunchPacked(EmulatedFunction f, Dim3 grid, Dim3 block, int sharedBytes, EmulatedStream s, byte[] blob, int[] offsets, BufferAccess[] throughTables, string call)
    {
        ThrowIfFailed();
        var count = offsets.Length - 1;
        var accesses = new List<(Allocation, bool, string)>();
        var buffers = new List<(Allocation Allocation, int Argument)>();
        for (var i = 0; i < count; i++)
        {
            if (f.Kinds[i] == 0)
            {
                continue;
            }

            var pointer = BitConverter.ToUInt64(blob, offsets[i]);
            if (pointer == 0)
            {
                continue;
            }

            var a = s_memory.Find(pointer, 0) ?? throw new CudaException($"CUDA_ERROR_ILLEGAL_ADDRESS in {call}: argument {i} (0x{pointer:x}) points into no live allocation (freed, or never allocated)", 700);
            accesses.Add((a, f.Kinds[i] == 2, $"argument {i}"));
            buffers.Add((a, i));
        }

        foreach (var (pointer, write) in throughTables)
        {
            var a = s_memory.Find(pointer, 0) ?? throw new CudaException($"CUDA_ERROR_ILLEGAL_ADDRESS in {call}: a pointer of its table (0x{pointer:x}) points into no live allocation (freed, or never allocated)", 700);
            accesses.Add((a, write, "a buffer of its table"));
            buffers.Add((a, -1));
        }

        var seed = Mix(_options.Seed, (ulong)Interlocked.Increment(ref _launches));
        Issue(s, call, accesses, () => Run(s, f, grid, block, sharedBytes, blob, offsets, seed, buffers));
    }

    public nint CreateBlas(nint stream)
    {
        Stream(stream, "cublasCreate()");
        var handle = NewHandle();
        s_handles[handle] = new EmulatedBlas(stream);
        return handle;
    }

    public void DestroyBlas(nint blas) => s_handles.TryRemove(blas, out _);

    public void Gemm(nint blas, in GemmCall gemm)
    {
        var call = gemm;
        var text = $"cublasGemmStridedBatchedEx({(call.TransA ? "T" : "N")}{(call.TransB ? "T" : "N")}, m {call.M}, n {call.N}, k {call.K}, lda {call.Lda}, ldb {call.Ldb}, ldc {call.Ldc}, batch {call.Batch}, {call.Operands} → {call.Output})";
        var s = Stream(((EmulatedBlas)s_handles[blas]).Stream, text);
        if (Captured(s, () => Gemm(blas, call)))
        {
            return;
        }

        var accesses = OperandAccesses(call, text);

        Issue(s, text, accesses, () => ReferenceBlas.Run(call));
    }

    /// <summary>The operands a GEMM reads and writes, each checked to lie in live memory; a call cuBLAS would refuse throws as it would.</summary>
    private static List<(Allocation, bool, string)> OperandAccesses(in GemmCall call, string text)
    {
        if (ReferenceBlas.Problem(call) is { } problem)
        {
            throw new CudaException($"CUBLAS_STATUS_INVALID_VALUE in {text}: {problem}", 7);
        }

        var accesses = new List<(Allocation, bool, string)>();
        foreach (var (operand, pointer, write) in new[] { ('A', call.A, false), ('B', call.B, false), ('C', call.C, true) })
        {
            var extent = ReferenceBlas.Extent(call, operand);
            if (extent > 0)
            {
                accesses.Add((s_memory.Require(pointer, extent, $"operand {operand}", text), write, $"operand {operand}"));
            }
        }

        return accesses;
    }

    /// <summary>cuBLASLt's bias and bias-gradient epilogues, always available here (ReferenceBlas computes them).</summary>
    public bool GemmEpilogue(nint blas, in GemmCall gemm, LtEpilogue epilogue, ulong vector, long vectorStride)
    {
        if (!gemm.AllFloat32)
        {
            return false;
        }

        var call = gemm;
        var text = $"cublasLtMatmul({(call.TransA ? "T" : "N")}{(call.TransB ? "T" : "N")}, m {call.M}, n {call.N}, k {call.K}, batch {call.Batch}, epilogue {epilogue})";
        var s = Stream(((EmulatedBlas)s_handles[blas]).Stream, text);
        if (Captured(s, () => GemmEpilogue(blas, call, epilogue, vector, vectorStride)))
        {
            return true;
        }

        var accesses = OperandAccesses(call, text);

        accesses.Add((s_memory.Require(vector, ReferenceBlas.VectorExtent(call, epilogue, vectorStride) * sizeof(float), "the epilogue's vector", text), epilogue == LtEpilogue.BiasGradientB, "the epilogue's vector"));
        Issue(s, text, accesses, () => ReferenceBlas.Run(call, epilogue, vector, vectorStride));
        return true;
    }

    public void BeginCapture(nint stream)
    {
        var s = Stream(stream, "cuStreamBeginCapture()");
        NotCapturing(s, "cuStreamBeginCapture()");
        s.Capture = [];
    }

    public nint EndCapture(nint stream)
    {
        var s = Stream(stream, "cuStreamEndCapture()");
        var work = s.Capture ?? throw new CudaException("CUDA_ERROR_ILLEGAL_STATE in cuStreamEndCapture(): the stream is not being captured", 401);
        s.Capture = null;
        var handle = NewHandle();
        s_handles[handle] = new EmulatedGraph(stream, work);
        return handle;
    }

    /// <summary>
    /// Re-issues the captured calls in their order, through the same checks as when they were first issued: an
    /// operand freed since capture, or a race with other streams, fails as it would have then.
    /// </summary>
    public void LaunchGraph(nint graph, nint stream)
    {
        var g = s_handles.TryGetValue(graph, out var o) && o is EmulatedGraph eg ? eg : throw new CudaException("CUDA_ERROR_INVALID_HANDLE in cuGraphLaunch(): not a live graph", 400);
        var s = Stream(stream, "cuGraphLaunch()");
        NotCapturing(s, "cuGraphLaunch()");
        if (g.Stream != stream)
        {
            throw new CudaException("CUDA_ERROR_INVALID_VALUE in cuGraphLaunch(): the emulated device launches a graph on the stream it was captured on", CudaDriver.InvalidValue);
        }

        foreach (var call in g.Work)
        {
            call();
        }
    }

    public void DestroyGraph(nint graph) => s_handles.TryRemove(graph, out _);

    /// <summary>
    /// Holds back the work of <paramref name="stream"/> from this point until the returned object is disposed:
    /// lets a test keep a stream busy while it checks what the host may and may not do meanwhile.
    /// </summary>
    public IDisposable HoldStream(nint stream)
    {
        var gate = new ManualResetEventSlim();
        Stream(stream, "HoldStream").Enqueue(gate.Wait, signal: true);
        return new Release(gate);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var (handle, stream) in _streams)
        {
            s_handles.TryRemove(handle, out _);
            stream.Dispose();
        }

        lock (s_order)
        {
            foreach (var allocation in s_memory.RemoveAll(this))
            {
                allocation.Release();
            }
        }
    }

    /// <summary>While <paramref name="s"/> is captured, records <paramref name="reissue"/> for the graph instead of running it.</summary>
    private static bool Captured(EmulatedStream s, Action reissue)
    {
        if (s.Capture is not { } work)
        {
            return false;
        }

        work.Add(reissue);
        return true;
    }

    /// <summary>What CUDA refuses while a stream is captured: the host waiting for it, host copies, cross-stream events.</summary>
    private static void NotCapturing(EmulatedStream s, string call)
    {
        if (s.Capture is not null)
        {
            throw CaptureRefusal.For(call);
        }
    }

    /// <summary>Records a launch's failure; every later call reports it (the GPU's sticky errors).</summary>
    internal void Fail(string message) => Interlocked.CompareExchange(ref _failure, message, null);

    internal bool Failed => Volatile.Read(ref _failure) is not null;

    private static nint NewHandle() => (nint)Interlocked.Increment(ref s_nextHandle);

    private static ulong Mix(ulong seed, ulong n)
    {
        var z = seed + (n * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        return z ^ (z >> 27);
    }

    private static EmulatedEvent Event(nint e) =>
        s_handles.TryGetValue(e, out var o) && o is EmulatedEvent ev ? ev : throw new CudaException("CUDA_ERROR_INVALID_HANDLE: not a live event", 400);

    private static EmulatedFunction Function(nint f) =>
        s_handles.TryGetValue(f, out var o) && o is EmulatedFunction fn ? fn : throw new CudaException("CUDA_ERROR_INVALID_HANDLE: not a loaded kernel", 400);

    private static EmulatedStream StreamOfAnyDevice(nint stream, string call) =>
        s_handles.TryGetValue(stream, out var o) && o is EmulatedStream s
            ? s
            : throw new CudaException(
                stream == 0
                    ? $"CUDA_ERROR_INVALID_HANDLE in {call}: the legacy default stream (0); ParaCuda issues all work on streams it creates"
                    : $"CUDA_ERROR_INVALID_HANDLE in {call}: not a live stream",
                400);

    private EmulatedStream Stream(nint stream, string call)
    {
        ThrowIfFailed();
        var s = StreamOfAnyDevice(stream, call);
        return s.Gpu == this ? s : throw new CudaException($"CUDA_ERROR_INVALID_HANDLE in {call}: the stream belongs to {s.Gpu.Properties.Name}", 400);
    }

    private void CheckGeometry(EmulatedFunction f, Dim3 grid, Dim3 block, int sharedBytes, int count, string call)
    {
        var p = Properties;
        string? problem = null;
        if (count != f.Sizes.Length)
        {
            problem = $"{count} arguments for a kernel of {f.Sizes.Length} parameters";
        }
        else if (grid.X == 0 || grid.Y == 0 || grid.Z == 0 || block.X == 0 || block.Y == 0 || block.Z == 0)
        {
            problem = "a grid or block dimension is 0";
        }
        else if (grid.X > p.MaxGrid.X || grid.Y > p.MaxGrid.Y || grid.Z > p.MaxGrid.Z)
        {
            problem = $"grid {grid} exceeds the device's maximum grid {p.MaxGrid}";
        }
        else if (block.X > p.MaxBlock.X || block.Y > p.MaxBlock.Y || block.Z > p.MaxBlock.Z || block.Count > (ulong)p.MaxThreadsPerBlock)
        {
            problem = $"block {block} ({block.Count} threads) exceeds the device's maximum block {p.MaxBlock} of at most {p.MaxThreadsPerBlock} threads";
        }
        else if (sharedBytes < 0 || sharedBytes > f.MaxDynamicShared)
        {
            problem = sharedBytes > p.SharedMemoryPerBlock && f.MaxDynamicShared == p.SharedMemoryPerBlock
                ? $"{sharedBytes} bytes of dynamic shared memory need cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) first (the default limit is {p.SharedMemoryPerBlock})"
                : $"{sharedBytes} bytes of dynamic shared memory exceed the kernel's limit of {f.MaxDynamicShared}";
        }

        if (problem is not null)
        {
            throw new CudaException($"CUDA_ERROR_INVALID_VALUE in {call}: {problem}", CudaDriver.InvalidValue);
        }
    }

    /// <summary>
    /// Checks the operation's accesses against the race detector and queues it, in one step so that issue
    /// order and clock order agree. Returns what the stream had seen when the operation was issued.
    /// </summary>
    private static long[] Issue(EmulatedStream s, string call, IEnumerable<(Allocation Allocation, bool Write, string What)> accesses, Action work, Action? then = null)
    {
        lock (s_order)
        {
            var time = s_clocks.Tick(s.Index);
            foreach (var (allocation, write, what) in accesses)
            {
                s_clocks.Access(allocation, write, s.Index, time, $"{what} of {call}", call);
            }

            s.Enqueue(work, signal: false);
            if (then is not null)
            {
                s.Enqueue(then, signal: true);
            }

            return s_clocks.Snapshot(s.Index);
        }
    }

    private void Run(EmulatedStream s, EmulatedFunction f, Dim3 grid, Dim3 block, int sharedBytes, byte[] blob, int[] offsets, ulong seed, List<(Allocation Allocation, int Argument)> buffers)
    {
        var launch = (delegate* unmanaged<int, uint, uint, uint, uint, uint, uint, uint, void**, void*, ulong, byte*, int, int>)f.LaunchEntry;
        var count = offsets.Length - 1;
        var pointers = stackalloc void*[Math.Max(count, 1)];
        const int ErrorBytes = 2048;
        var error = stackalloc byte[ErrorBytes];
        fixed (byte* b = blob)
        {
            for (var i = 0; i < count; i++)
            {
                pointers[i] = b + offsets[i];
            }

            if (launch(f.Index, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, pointers, s.Stacks, seed, error, ErrorBytes) != 0)
            {
                Fail($"kernel {Marshal.PtrToStringUTF8((IntPtr)error)}");
                return;
            }
        }

        foreach (var (allocation, argument) in buffers)
        {
            if (allocation.GuardDamage() is { } damage)
            {
                Fail($"kernel {f.Name} wrote out of bounds: {damage}, {(argument >= 0 ? $"passed as argument {argument}" : "reached through its table")}");
                return;
            }
        }
    }

    private void ThrowIfFailed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Volatile.Read(ref _failure) is { } failure)
        {
            throw new CudaException($"CUDA_ERROR_LAUNCH_FAILED (sticky) on {Properties.Name}: {failure}", 719);
        }
    }

    private sealed class EmulatedEvent(bool timing)
    {
        public bool Timing { get; } = timing;

        public EventRecord? Last { get; set; }
    }

    private sealed class EventRecord(long[] seen)
    {
        public long[] Seen { get; } = seen;

        public ManualResetEventSlim Done { get; } = new();

        public long ReachedAt { get; private set; }

        public void Reach()
        {
            ReachedAt = Stopwatch.GetTimestamp();
            Done.Set();
        }
    }

    private sealed record EmulatedBlas(nint Stream);

    private sealed record EmulatedGraph(nint Stream, List<Action> Work);

    private sealed class Release(ManualResetEventSlim gate) : IDisposable
    {
        public void Dispose() => gate.Set();
    }
}

/// <summary>
/// One emulated stream: a queue drained in order by a host thread of its own. After a sticky failure the
/// device's work is skipped, but signals (event records, waits, synchronisation markers) still run, so the
/// host is never left waiting.
/// </summary>
internal sealed unsafe class EmulatedStream : IDisposable
{
    /// <summary>Fiber stack per thread of a block: 64 KB, for up to 1024 threads (memory the kernels never touch stays unbacked).</summary>
    private const long StackBytes = 1024L * 64 * 1024;

    private readonly System.Collections.Concurrent.BlockingCollection<(Action Work, bool Signal)> _queue = [];
    private readonly Thread _thread;
    private void* _stacks;

    public EmulatedStream(EmulatedGpu gpu, int index, string name)
    {
        Gpu = gpu;
        Index = index;
        _thread = new Thread(Drain) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public EmulatedGpu Gpu { get; }

    /// <summary>The stream's index in the race detector.</summary>
    public int Index { get; }

    /// <summary>The fiber stacks of the kernels this stream's thread runs, made on first use.</summary>
    public void* Stacks => _stacks != null ? _stacks : _stacks = NativeMemory.AlignedAlloc((nuint)StackBytes, 4096);

    /// <summary>While the stream is captured into a graph: the calls to re-issue when the graph is launched.</summary>
    public List<Action>? Capture { get; set; }

    public void Enqueue(Action work, bool signal) => _queue.Add((work, signal));

    public void Dispose()
    {
        _queue.CompleteAdding();
        _thread.Join();
        _queue.Dispose();
        NativeMemory.AlignedFree(_stacks);
    }

    private void Drain()
    {
        foreach (var (work, signal) in _queue.GetConsumingEnumerable())
        {
            if (!signal && Gpu.Failed)
            {
                continue;
            }

            try
            {
                work();
            }
            catch (Exception e)
            {
                Gpu.Fail($"{e.GetType().Name}: {e.Message}");
            }
        }
    }
}
