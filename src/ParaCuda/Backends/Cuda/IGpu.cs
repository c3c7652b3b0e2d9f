using ParaCuda.Native;
namespace ParaCuda.Backends.Cuda;

/// <summary>A launch's grid or block size.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public ulong Count => (ulong)X * Y * Z;

    public override string ToString() => $"({X}, {Y}, {Z})";
}

/// <summary>
/// A buffer a kernel reaches through a pointer table (one launch over many tensors), not through an argument:
/// a GPU needs no word of it, but the emulated device cannot see through the table, so a launch names them.
/// </summary>
public readonly record struct BufferAccess(ulong Pointer, bool Write);

/// <summary>What the backend needs to know of a GPU, real or emulated: identity, size and launch limits.</summary>
public sealed record GpuProperties(
    string Name,
    int Major,
    int Minor,
    int Multiprocessors,
    long TotalMemory,
    int MaxThreadsPerBlock,
    Dim3 MaxBlock,
    Dim3 MaxGrid,
    int SharedMemoryPerBlock,
    int SharedMemoryPerBlockOptin,
    long AllocationGranularity,
    string Runtime)
{
    /// <summary>The compute capability as NVRTC names it: 90 for sm_90.</summary>
    public int Architecture => (Major * 10) + Minor;

    /// <summary>Tensor cores that run float32 GEMMs in TF32 (Ampere and later).</summary>
    public bool HasTf32 => Major >= 8;
}

/// <summary>
/// One cuBLAS strided-batched GEMM, in cuBLAS's own terms: column-major, C[i] = alpha·op(A[i])·op(B[i]) +
/// beta·C[i], op(A) m×k, op(B) k×n, C m×n, each matrix strided by its leading dimension.
/// </summary>
public readonly record struct GemmCall(
    bool TransA,
    bool TransB,
    int M,
    int N,
    int K,
    float Alpha,
    ulong A,
    int Lda,
    long StrideA,
    ulong B,
    int Ldb,
    long StrideB,
    float Beta,
    ulong C,
    int Ldc,
    long StrideC,
    int Batch,
    BlasCompute Compute,
    BlasType Operands = BlasType.Float32,
    BlasType Output = BlasType.Float32)
{
    /// <summary>Whether every matrix is float32 (what the cuBLASLt epilogues take here).</summary>
    public bool AllFloat32 => Operands == BlasType.Float32 && Output == BlasType.Float32;
}

/// <summary>
/// One CUDA device as the CUDA backend drives it: the driver API and cuBLAS on a real GPU
/// (<see cref="DriverGpu"/>), or the emulated device (<see cref="Emulator.EmulatedGpu"/>). The backend's
/// allocation, copy, stream, event and launch code, and its packing of kernel arguments, are the same on
/// both; each call has the semantics of the driver call it names. Handles (streams, events, modules,
/// functions, BLAS handles) are opaque. Calls may come from any thread.
/// </summary>
public interface IGpu : IDisposable
{
    GpuProperties Properties { get; }

    /// <summary>cuMemAlloc. Out of memory throws <see cref="Native.CudaException"/> with <see cref="Native.CudaDriver.OutOfMemory"/>.</summary>
    ulong Allocate(long bytes);

    /// <summary>cuMemFree (which waits for the device to be idle).</summary>
    void Free(ulong pointer);

    /// <summary>cuMemAllocHost: page-locked host memory, which asynchronous copies read and write as they run.</summary>
    nint AllocatePinned(long bytes);

    void FreePinned(nint pointer);

    /// <summary>cuMemGetInfo: free and total device memory.</summary>
    (long Free, long Total) MemoryInfo();

    /// <summary>cuStreamCreate with CU_STREAM_NON_BLOCKING.</summary>
    nint CreateStream();

    void DestroyStream(nint stream);

    void SynchronizeStream(nint stream);

    /// <summary>cuEventCreate; without <paramref name="timing"/>, CU_EVENT_DISABLE_TIMING.</summary>
    nint CreateEvent(bool timing = false);

    void DestroyEvent(nint e);

    void RecordEvent(nint e, nint stream);

    /// <summary>cuStreamWaitEvent: work issued later on <paramref name="stream"/> waits for the event's last record.</summary>
    void WaitEvent(nint stream, nint e);

    /// <summary>cuEventQuery: whether the event's last record has been reached.</summary>
    bool EventCompleted(nint e);

    void SynchronizeEvent(nint e);

    float ElapsedMilliseconds(nint first, nint last);

    /// <summary>cuCtxSynchronize.</summary>
    void Synchronize();

    /// <summary>cuMemcpyHtoDAsync: from pageable memory the source is consumed before return; from pinned memory, when the copy runs.</summary>
    unsafe void CopyHostToDevice(ulong destination, void* source, long bytes, nint stream);

    /// <summary>cuMemcpyDtoHAsync: into pageable memory it returns when the copy is done; into pinned memory, at once.</summary>
    unsafe void CopyDeviceToHost(void* destination, ulong source, long bytes, nint stream);

    void CopyDeviceToDevice(ulong destination, ulong source, long bytes, nint stream);

    /// <summary>cuMemcpyPeerAsync: from <paramref name="sourceGpu"/>'s memory into this device's, ordered on <paramref name="stream"/> (one of this device's).</summary>
    void CopyPeer(ulong destination, ulong source, IGpu sourceGpu, long bytes, nint stream);

    /// <summary>cuMemsetD32Async.</summary>
    void Fill32(ulong destination, uint value, long count, nint stream);

    /// <summary>Compiles (through a disk cache) and loads kernel file <paramref name="file"/> with the given preprocessor defines.</summary>
    nint LoadModule(KernelSources sources, string file, IReadOnlyList<string> defines);

    nint GetFunction(nint loaded, string kernel);

    /// <summary>cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES): needed before a launch with more than 48 KB of dynamic shared memory.</summary>
    void SetMaxDynamicSharedMemory(nint kernel, int bytes);

    /// <summary>
    /// cuLaunchKernel; <paramref name="arguments"/> points at <paramref name="count"/> pointers, one per kernel
    /// parameter. <paramref name="throughTables"/> lists the buffers the kernel reaches through pointer tables.
    /// </summary>
    unsafe void Launch(nint kernel, Dim3 grid, Dim3 block, int sharedBytes, nint stream, void** arguments, int count, ReadOnlySpan<BufferAccess> throughTables);

    /// <summary>A cuBLAS handle on <paramref name="stream"/> with a workspace of its own.</summary>
    nint CreateBlas(nint stream);

    void DestroyBlas(nint blas);

    void Gemm(nint blas, in GemmCall gemm);

    /// <summary>
    /// cublasLtMatmul on the BLAS handle's stream: <paramref name="gemm"/> with <paramref name="epilogue"/> on
    /// <paramref name="vector"/> (batch i at vector + i·<paramref name="vectorStride"/> floats). False, having
    /// issued nothing, where cuBLASLt is missing or has no algorithm for the call: the caller runs it unfused.
    /// </summary>
    bool GemmEpilogue(nint blas, in GemmCall gemm, LtEpilogue epilogue, ulong vector, long vectorStride);

    /// <summary>
    /// cuStreamBeginCapture (relaxed): work issued on <paramref name="stream"/> is recorded, not run, until
    /// <see cref="EndCapture"/>. Waiting for the stream from the host while it is captured is an error.
    /// </summary>
    void BeginCapture(nint stream);

    /// <summary>cuStreamEndCapture and cuGraphInstantiate: the recorded work as a graph to launch.</summary>
    nint EndCapture(nint stream);

    /// <summary>cuGraphLaunch: the graph's work, in its order, on <paramref name="stream"/>.</summary>
    void LaunchGraph(nint graph, nint stream);

    void DestroyGraph(nint graph);
}
