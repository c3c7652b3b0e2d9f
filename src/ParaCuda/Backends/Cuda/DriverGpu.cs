using System.Collections.Concurrent;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// A real GPU through the CUDA driver API and cuBLAS. Its primary context is made current on whichever
/// thread calls in (a thread remembers the context it last set, so that costs nothing in the common case).
/// Kernels are compiled by NVRTC through the <see cref="KernelCache"/>: a cubin for this GPU, or PTX for
/// the newest architecture NVRTC knows when it does not know this one.
/// </summary>
public sealed unsafe class DriverGpu : IGpu
{
    /// <summary>Each cuBLAS handle gets a workspace of its own (what NVIDIA recommends for Hopper).</summary>
    private const long BlasWorkspaceBytes = 32L << 20;

    [ThreadStatic]
    private static IntPtr t_current;

    private readonly IntPtr _context;
    private readonly KernelCache _cache;
    private readonly ConcurrentDictionary<nint, string> _functionNames = new();
    private readonly ConcurrentDictionary<nint, (ulong Workspace, nint Stream)> _blasHandles = new();
    private readonly Lazy<IntPtr> _lt;
    private readonly ConcurrentDictionary<nint, IntPtr> _graphs = new();
    private readonly ConcurrentDictionary<nint, byte> _capturing = new();
    private bool _disposed;

    private DriverGpu(int ordinal, KernelCache cache)
    {
        Ordinal = ordinal;
        _cache = cache;
        _context = CudaDriver.RetainPrimaryContext(ordinal);
        _lt = new Lazy<IntPtr>(CublasLt.Create);
        int A(DeviceProperty a) => CudaDriver.Attribute(ordinal, a);
        var (major, minor) = CudaDriver.Version;
        Properties = new GpuProperties(
            CudaDriver.Name(ordinal),
            A(DeviceProperty.ComputeCapabilityMajor),
            A(DeviceProperty.ComputeCapabilityMinor),
            A(DeviceProperty.MultiprocessorCount),
            CudaDriver.TotalMemory(ordinal),
            A(DeviceProperty.MaxThreadsPerBlock),
            new Dim3((uint)A(DeviceProperty.MaxBlockDimX), (uint)A(DeviceProperty.MaxBlockDimY), (uint)A(DeviceProperty.MaxBlockDimZ)),
            new Dim3((uint)A(DeviceProperty.MaxGridDimX), (uint)A(DeviceProperty.MaxGridDimY), (uint)A(DeviceProperty.MaxGridDimZ)),
            A(DeviceProperty.MaxSharedMemoryPerBlock),
            A(DeviceProperty.MaxSharedMemoryPerBlockOptin),
            AllocationGranularity: 512,
            Runtime: $"CUDA driver {major}.{minor}");
    }

    public int Ordinal { get; }

    public GpuProperties Properties { get; }

    /// <summary>GPU <paramref name="ordinal"/>; fails with the driver's reason when there is none.</summary>
    public static DriverGpu Open(int ordinal = 0, KernelCache? cache = null)
    {
        if (!CudaDriver.IsAvailable)
        {
            throw new CudaException(CudaDriver.UnavailableReason!, CudaDriver.InvalidValue);
        }

        var count = CudaDriver.DeviceCount;
        if (ordinal < 0 || ordinal >= count)
        {
            throw new CudaException($"there is no GPU {ordinal}: the driver sees {count} (0..{count - 1})", CudaDriver.InvalidValue);
        }

        return new DriverGpu(ordinal, cache ?? new KernelCache(KernelCache.DefaultDirectory));
    }

    public ulong Allocate(long bytes)
    {
        Current();
        var status = CudaDriver.TryAllocate(bytes, out var pointer);
        CudaDriver.Check(status, $"cuMemAlloc({bytes} bytes)");
        return pointer;
    }

    public void Free(ulong pointer)
    {
        Current();
        CudaDriver.Free(pointer);
    }

    public nint AllocatePinned(long bytes)
    {
        Current();
        return CudaDriver.AllocateHost(bytes);
    }

    public void FreePinned(nint pointer)
    {
        Current();
        CudaDriver.FreeHost(pointer);
    }

    public (long Free, long Total) MemoryInfo()
    {
        Current();
        return CudaDriver.MemoryInfo();
    }

    public nint CreateStream()
    {
        Current();
        return CudaDriver.CreateStream();
    }

    public void DestroyStream(nint stream)
    {
        Current();
        CudaDriver.DestroyStream(stream);
    }

    public void SynchronizeStream(nint stream)
    {
        NotCapturing(stream, "cuStreamSynchronize()");
        Current();
        CudaDriver.SynchronizeStream(stream);
    }

    public nint CreateEvent(bool timing = false)
    {
        Current();
        return CudaDriver.CreateEvent(timing);
    }

    public void DestroyEvent(nint e)
    {
        Current();
        CudaDriver.DestroyEvent(e);
    }

    public void RecordEvent(nint e, nint stream)
    {
        NotCapturing(stream, "cuEventRecord()");
        Current();
        CudaDriver.RecordEvent(e, stream);
    }

    public void WaitEvent(nint stream, nint e)
    {
        NotCapturing(stream, "cuStreamWaitEvent()");
        Current();
        CudaDriver.WaitEvent(stream, e);
    }

    public bool EventCompleted(nint e)
    {
        Current();
        return CudaDriver.EventCompleted(e);
    }

    public void SynchronizeEvent(nint e)
    {
        Current();
        CudaDriver.SynchronizeEvent(e);
    }

    public float ElapsedMilliseconds(nint first, nint last)
    {
        Current();
        return CudaDriver.ElapsedMilliseconds(first, last);
    }

    public void Synchronize()
    {
        if (!_capturing.IsEmpty)
        {
            throw CaptureRefusal.For("cuCtxSynchronize()");
        }

        Current();
        CudaDriver.Synchronize();
    }

    public void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream)
    {
        NotCapturing(stream, "cuMemcpyHtoDAsync()");
        Current();
        CudaDriver.CopyHostToDevice(destination, source, bytes, stream);
    }

    public void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream)
    {
        NotCapturing(stream, "cuMemcpyDtoHAsync()");
        Current();
        CudaDriver.CopyDeviceToHost(destination, source, bytes, stream);
    }

    public void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream)
    {
        Current();
        CudaDriver.CopyDeviceToDevice(destination, source, bytes, stream);
    }

    public void CopyPeer(ulong destination, ulong source, IGpu sourceGpu, long bytes, nint stream)
    {
        var from = sourceGpu as DriverGpu ?? throw new ArgumentException($"a peer copy needs two real GPUs, not {sourceGpu.Properties.Name}", nameof(sourceGpu));
        Current();
        CudaDriver.CopyPeer(destination, _context, source, from._context, bytes, stream);
    }

    public void Fill32(ulong destination, uint value, long count, nint stream)
    {
        Current();
        CudaDriver.Fill32(destination, value, count, stream);
    }

    public nint LoadModule(KernelSources sources, string file, IReadOnlyList<string> defines)
    {
        var image = _cache.Get(sources, file, Properties.Architecture, defines);
        Current();
        var bytes = image.IsCubin ? image.Image : [.. image.Image.TakeWhile(b => b != 0), 0];
        return CudaDriver.LoadModule(bytes, defines.Count == 0 ? file : $"{file} [{string.Join(", ", defines)}]");
    }

    public nint GetFunction(nint loaded, string kernel)
    {
        Current();
        var function = CudaDriver.Function(loaded, kernel);
        _functionNames[function] = kernel;
        return function;
    }

    public void SetMaxDynamicSharedMemory(nint kernel, int bytes)
    {
        Current();
        CudaDriver.SetMaxDynamicSharedMemory(kernel, Name(kernel), bytes);
    }

    public void Launch(nint kernel, Dim3 grid, Dim3 block, int sharedBytes, nint stream, void** arguments, int count, ReadOnlySpan<BufferAccess> throughTables)
    {
        Current();
        CudaDriver.Launch(kernel, Name(kernel), (grid.X, grid.Y, grid.Z), (block.X, block.Y, block.Z), sharedBytes, stream, arguments);
    }

    public nint CreateBlas(nint stream)
    {
        if (!Cublas.IsAvailable)
        {
            throw new CudaException(Cublas.UnavailableReason!, CudaDriver.InvalidValue);
        }

        var workspace = Allocate(BlasWorkspaceBytes);
        var handle = Cublas.Create(stream, workspace, BlasWorkspaceBytes);
        _blasHandles[handle] = (workspace, stream);
        return handle;
    }

    public void DestroyBlas(nint blas)
    {
        Current();
        Cublas.Destroy(blas);
        if (_blasHandles.TryRemove(blas, out var owned))
        {
            CudaDriver.Free(owned.Workspace);
        }
    }

    public bool GemmEpilogue(nint blas, in GemmCall gemm, LtEpilogue epilogue, ulong vector, long vectorStride)
    {
        if (!CublasLt.IsAvailable || !gemm.AllFloat32)
        {
            return false;
        }

        Current();
        // The cuBLAS handle's workspace serves its stream's cuBLASLt calls too: work on one stream never overlaps.
        var (workspace, stream) = _blasHandles[blas];
        return CublasLt.Matmul(
            _lt.Value, gemm.TransA, gemm.TransB, gemm.M, gemm.N, gemm.K, gemm.Alpha, gemm.A, gemm.Lda, gemm.StrideA, gemm.B, gemm.Ldb, gemm.StrideB,
            gemm.Beta, gemm.C, gemm.Ldc, gemm.StrideC, gemm.Batch, gemm.Compute, epilogue, vector, vectorStride, workspace, BlasWorkspaceBytes, stream);
    }

    public void Gemm(nint blas, in GemmCall gemm)
    {
        Current();
        Cublas.GemmStridedBatched(blas, gemm.TransA, gemm.TransB, gemm.M, gemm.N, gemm.K, gemm.Alpha, gemm.A, gemm.Lda, gemm.StrideA, gemm.B, gemm.Ldb, gemm.StrideB, gemm.Beta, gemm.C, gemm.Ldc, gemm.StrideC, gemm.Batch, gemm.Compute, gemm.Operands, gemm.Output);
    }

    /// <summary>cuBLAS's version, read through a handle.</summary>
    public static string BlasVersion(nint blas) => Cublas.Version(blas);

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (_lt.IsValueCreated)
        {
            Current();
            CublasLt.Destroy(_lt.Value);
        }

        _disposed = true;
        CudaDriver.ReleasePrimaryContext(Ordinal);
    }

    private void NotCapturing(nint stream, string call)
    {
        if (_capturing.ContainsKey(stream))
        {
            throw CaptureRefusal.For(call);
        }
    }

    private string Name(nint function) => _functionNames.TryGetValue(function, out var name) ? name : "kernel";

    private void Current()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t_current != _context)
        {
            CudaDriver.SetCurrent(_context);
            t_current = _context;
        }
    }

    public void BeginCapture(nint stream)
    {
        NotCapturing(stream, "cuStreamBeginCapture()");
        Current();
        CudaDriver.BeginCapture(stream);
        _capturing[stream] = 0;
    }

    public nint EndCapture(nint stream)
    {
        Current();
        _capturing.TryRemove(stream, out _);
        var (exec, graph) = CudaDriver.EndCapture(stream);
        _graphs[exec] = graph;
        return exec;
    }

    public void LaunchGraph(nint graph, nint stream)
    {
        NotCapturing(stream, "cuGraphLaunch()");
        Current();
        CudaDriver.LaunchGraph(graph, stream);
    }

    public void DestroyGraph(nint graph)
    {
        Current();
        if (_graphs.TryRemove(graph, out var source))
        {
            CudaDriver.DestroyGraph(graph, source);
        }
    }
}
