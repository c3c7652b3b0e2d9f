using System.Collections.Concurrent;
using System.Globalization;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Native;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda;

/// <summary>How float32 GEMMs run on the GPU.</summary>
public enum GemmPrecision
{
    /// <summary>Strict float32 (the CUDA cores).</summary>
    Fp32,

    /// <summary>TF32 tensor cores with float32 accumulation (about 1e-3 relative): the default where the GPU has them.</summary>
    Tf32,

    /// <summary>
    /// bf16 mixed precision: models run under <see cref="Autograd.Autocast"/> (linear layers on bf16 operands, the
    /// activations between bf16 products stored in bf16, float32 master weights, optimizer, LayerNorm and loss), and
    /// the float32 GEMMs left (attention's products, those outside a model) round their operands to bf16 for the
    /// tensor cores. About 4e-3 relative per product, twice TF32's tensor-core rate, half the activation bytes.
    /// </summary>
    Bf16,
}

/// <summary>Which kernels run linear layers' forward and the MLP's backward (<see cref="CudaBackend.LinearKernels"/>).</summary>
public enum LinearKernels
{
    /// <summary>cuBLAS (with cuBLASLt's epilogues) and the element-wise kernels around it.</summary>
    Library,

    /// <summary>The hand-written tensor-core kernels of linear_tc.cu, wherever they apply.</summary>
    HandWritten,

    /// <summary>
    /// Per op and shape, whichever of the two ran faster when first timed (CUDA events, each on scratch outputs, outside
    /// graph capture), kept for the backend's life. Like cuDNN's benchmark mode, results then depend on that timing.
    /// </summary>
    Fastest,
}

/// <summary>
/// The engine on one CUDA device, real (<see cref="DriverGpu"/>) or emulated (<see cref="EmulatedGpu"/>):
/// contexts are non-blocking streams, memory comes from a stream-ordered caching allocator, ops are the
/// kernels of kernels/ and cuBLAS GEMMs. Several backends may share one GPU (<c>--devices 0,0</c>): each is
/// a logical device of its own, with its own memory, so the multi-device code paths run on one card.
/// </summary>
public sealed class CudaBackend : Backend
{
    private readonly bool _ownsGpu;
    private readonly ConcurrentDictionary<(string File, string Kernel, string Defines), KernelFunction> _kernels = new();
    private readonly ConcurrentDictionary<(string File, string Defines), nint> _modules = new();
    private readonly ConcurrentBag<nint> _events = [];
    private readonly ConcurrentDictionary<nint, int> _sharedLimits = new();
    private readonly List<CudaContext> _contexts = [];
    private readonly CudaContext _default;
    private readonly Lazy<ComputeContext> _upload;
    private bool _disposed;

    private CudaBackend(IGpu gpu, int index, GemmPrecision precision, KernelSources sources, bool ownsGpu)
    {
        Gpu = gpu;
        Index = index;
        Precision = precision;
        Sources = sources;
        _ownsGpu = ownsGpu;
        Device = Device.Cuda(index);
        Allocator = new CachingAllocator(this);
        _default = (CudaContext)CreateContext("main");
        _upload = new Lazy<ComputeContext>(() => CreateContext("uploads"));
    }

    /// <summary>The GPU this backend drives.</summary>
    public IGpu Gpu { get; }

    /// <summary>The logical device number (cuda:N), which need not be the GPU's ordinal.</summary>
    public int Index { get; }

    public GemmPrecision Precision { get; }

    public override bool MixedPrecision => Precision == GemmPrecision.Bf16;

    /// <summary>
    /// Whether linear layers' forward GEMMs and the MLP's backward run on cuBLAS or on the hand-written tensor-core
    /// kernels of linear_tc.cu (TF32, or bf16 under bf16 precision or for bf16 activations; never in fp32): the MLP's
    /// first layer with its bias and GELU in the epilogue (instead of cuBLAS and the bias+GELU kernel), every other layer
    /// (the MLP's second among them) with its bias, and the MLP's backward from the second layer to the first one's
    /// product (<see cref="Ops.LinearGeluBackward"/>) with dropout, GELU's derivative and the bias gradient's partial sums
    /// in the epilogue. <see cref="LinearKernels.Library"/> by default, until GPU runs say which is faster where (the
    /// perf harness's kernel suite compares both); <see cref="LinearKernels.Fastest"/> decides per shape as it runs.
    /// </summary>
    public LinearKernels LinearKernels { get; set; }

    /// <summary>The choices <see cref="LinearKernels.Fastest"/> made so far: per op and shape, whether the hand-written kernel won.</summary>
    internal ConcurrentDictionary<string, bool> LinearChoices { get; } = new();

    public KernelSources Sources { get; }

    public override Device Device { get; }

    public override string Description
    {
        get
        {
            var p = Gpu.Properties;
            return string.Create(CultureInfo.InvariantCulture, $"{Device}: {p.Name} (sm_{p.Architecture}, {p.Multiprocessors} SMs, {p.TotalMemory / (double)(1L << 30):F1} GiB), {p.Runtime}, {(Precision == GemmPrecision.Bf16 ? "BF16 mixed precision" : $"{Precision.ToString().ToUpperInvariant()} GEMMs")}{(LinearKernels == LinearKernels.Library ? "" : $", {LinearKernels.ToString().ToLowerInvariant()} linear kernels")}");
        }
    }

    public override ComputeContext DefaultContext => _default;

    public override ComputeContext UploadContext => _upload.Value;

    /// <summary>Whether the backend was disposed: its work has finished and its memory went with it.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>What computes the GEMMs: cuBLAS and its version, or the emulated device's reference.</summary>
    public string BlasDescription => Gpu is DriverGpu
        ? $"cuBLAS {DriverGpu.BlasVersion(((CudaContext)DefaultContext).Blas)}"
        : "the emulated device's reference GEMM (cuBLAS's contract, double accumulation)";

    /// <summary>Bytes in use and held, now and at their peak.</summary>
    public MemoryStats Memory => Allocator.Stats;

    internal CachingAllocator Allocator { get; }

    /// <summary>
    /// A backend on <paramref name="gpu"/>, as logical device cuda:<paramref name="index"/>. Precision defaults to
    /// TF32 where the GPU has it. With <paramref name="ownsGpu"/> the GPU is disposed with the backend.
    /// </summary>
    public static CudaBackend Open(IGpu gpu, int index = 0, GemmPrecision? precision = null, KernelSources? sources = null, bool ownsGpu = true)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        var chosen = precision ?? (gpu.Properties.HasTf32 ? GemmPrecision.Tf32 : GemmPrecision.Fp32);
        if (chosen != GemmPrecision.Fp32 && !gpu.Properties.HasTf32)
        {
            throw new ArgumentException($"{gpu.Properties.Name} (sm_{gpu.Properties.Architecture}) has no TF32 or bf16 tensor cores; use fp32 precision", nameof(precision));
        }

        return new CudaBackend(gpu, index, chosen, sources ?? KernelSources.Load(), ownsGpu);
    }

    public override ComputeContext CreateContext(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var context = new CudaContext(this, name);
        lock (_contexts)
        {
            _contexts.Add(context);
        }

        return context;
    }

    public override Storage Allocate(long bytes, ComputeContext context)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (context is not CudaContext cuda || cuda.Cuda != this)
        {
            throw new ArgumentException($"memory of {Device} must be ordered on one of its own contexts, not {context}", nameof(context));
        }

        return new CudaStorage(this, Allocator.Allocate(bytes, cuda), bytes);
    }

    /// <summary>Waits for all work on every context of this backend.</summary>
    public void Synchronize()
    {
        lock (_contexts)
        {
            foreach (var context in _contexts)
            {
                context.Synchronize();
            }
        }
    }

    /// <summary>The kernels loaded so far and the defines of each build (which path an op took, for tests).</summary>
    internal IEnumerable<(string Kernel, string Defines)> LoadedKernels => _kernels.Keys.Select(k => (k.Kernel, k.Defines));

    /// <summary>Kernel <paramref name="kernel"/> of <paramref name="file"/>, compiled with <paramref name="defines"/> on first use.</summary>
    internal KernelFunction Kernel(string file, string kernel, params string[] defines)
    {
        var key = (file, kernel, string.Join(' ', defines));
        if (_kernels.TryGetValue(key, out var function))
        {
            return function;
        }

        lock (_modules)
        {
            var module = _modules.GetOrAdd((file, key.Item3), _ => Gpu.LoadModule(Sources, file, defines));
            return _kernels.GetOrAdd(key, _ => new KernelFunction(Gpu.GetFunction(module, kernel), kernel));
        }
    }

    /// <summary>
    /// Raises <paramref name="kernel"/>'s dynamic shared-memory limit to <paramref name="bytes"/> when a launch
    /// needs more than the default 48 KB (cuFuncSetAttribute), once per kernel and size.
    /// </summary>
    internal void AllowSharedMemory(KernelFunction kernel, int bytes)
    {
        if (bytes > Gpu.Properties.SharedMemoryPerBlock && _sharedLimits.GetValueOrDefault(kernel.Handle) < bytes)
        {
            Gpu.SetMaxDynamicSharedMemory(kernel.Handle, bytes);
            _sharedLimits[kernel.Handle] = bytes;
        }
    }

    /// <summary>An event handle from the pool (created without timing).</summary>
    internal nint RentEvent() => _events.TryTake(out var e) ? e : Gpu.CreateEvent();

    internal void ReturnEvent(nint e) => _events.Add(e);

    protected override void Dispose(bool disposing)
    {
        if (_disposed || !disposing)
        {
            return;
        }

        _disposed = true;
        // Best effort after a failure: a GPU in a sticky error state refuses every call, and there is nothing
        // left to save by reporting that again from a dispose.
        try
        {
            Synchronize();
            Allocator.Dispose();
            foreach (var context in _contexts)
            {
                context.Dispose();
            }

            while (_events.TryTake(out var e))
            {
                Gpu.DestroyEvent(e);
            }
        }
        catch (CudaException)
        {
        }

        if (_ownsGpu)
        {
            Gpu.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>A loaded kernel: the driver's handle and its name.</summary>
internal readonly record struct KernelFunction(nint Handle, string Name);

/// <summary>Device memory of one backend, now and at its peak: in use by tensors, and held from the driver (in use plus cached).</summary>
public readonly record struct MemoryStats(long Allocated, long Reserved, long PeakAllocated, long PeakReserved);

/// <summary>A request for device memory that the device could not meet even after the cache was emptied.</summary>
public sealed class DeviceOutOfMemoryException(string message) : Exception(message);
