using System.Globalization;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;

namespace ParaCuda.Backends;

/// <summary>How the branches of a model run on a device.</summary>
public enum BranchExecution
{
    /// <summary>One stream per device: the branches there run one after another.</summary>
    Serial,

    /// <summary>Each branch on a non-blocking stream of its own, handing tensors over through events only.</summary>
    Streams,

    /// <summary>
    /// The branches of a prefix as one batch on the main stream: their parameters packed [B, …], every op launched
    /// once for all of them (strided-batched GEMMs). One device only.
    /// </summary>
    Batched,
}

/// <summary>
/// Where a run's work goes: the main context (the embedding, the head, the loss and the optimizer's first
/// device) and a context per branch, over one or more devices. On several devices branches go round-robin
/// (branch b on device b mod D). Listing the same GPU twice (<c>--devices 0,0</c>) makes two logical devices of
/// one card, each with its own memory, so the multi-device code paths run on a single GPU. Owns the backends
/// (and GPUs) it opened.
/// </summary>
public sealed class Placement : IDisposable
{
    private readonly IReadOnlyList<IGpu> _gpus;
    private readonly Dictionary<int, ComputeContext> _branchContexts = [];

    private Placement(IReadOnlyList<Backend> backends, IReadOnlyList<IGpu> gpus, BranchExecution execution)
    {
        Backends = backends;
        _gpus = gpus;
        Execution = execution;
    }

    /// <summary>Everything on the CPU.</summary>
    public static Placement Cpu { get; } = new([CpuBackend.Instance], [], BranchExecution.Serial);

    public IReadOnlyList<Backend> Backends { get; }

    public BranchExecution Execution { get; }

    public ComputeContext Main => Backends[0].DefaultContext;

    /// <summary>
    /// CUDA devices: real GPUs by ordinal, or emulated devices (<paramref name="emulated"/>) by number. Equal
    /// numbers share one GPU. Precision defaults to TF32 where the GPU has it; linear layers to the library kernels.
    /// </summary>
    public static Placement Cuda(IReadOnlyList<int> devices, bool emulated, BranchExecution execution, GemmPrecision? precision = null, LinearKernels linearKernels = LinearKernels.Library)
    {
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Count == 0)
        {
            throw new ArgumentException("at least one device is needed", nameof(devices));
        }

        if (execution == BranchExecution.Batched && devices.Count > 1)
        {
            throw new ArgumentException($"batched branches run on one device, not {devices.Count}: use streams to spread them over devices", nameof(execution));
        }

        var gpus = new Dictionary<int, IGpu>();
        var backends = new List<Backend>();
        try
        {
            foreach (var number in devices)
            {
                if (!gpus.TryGetValue(number, out var gpu))
                {
                    gpus[number] = gpu = emulated ? EmulatedGpu.Create() : DriverGpu.Open(number);
                }

                var backend = CudaBackend.Open(gpu, backends.Count, precision, ownsGpu: false);
                backend.LinearKernels = linearKernels;
                backends.Add(backend);
            }

            return new Placement(backends, [.. gpus.Values], execution);
        }
        catch
        {
            foreach (var backend in backends)
            {
                backend.Dispose();
            }

            foreach (var gpu in gpus.Values)
            {
                gpu.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// The context of each of <paramref name="branches"/> branches, or null when they all run on the main
    /// context. The same branch gets the same context on every call, so models built one after another (an
    /// expansion, a compression) reuse the streams.
    /// </summary>
    public IReadOnlyList<ComputeContext>? BranchContexts(int branches)
    {
        if ((Execution == BranchExecution.Serial && Backends.Count == 1) || Execution == BranchExecution.Batched)
        {
            return null;
        }

        return Enumerable.Range(0, branches).Select(b =>
        {
            var backend = Backends[b % Backends.Count];
            if (Execution == BranchExecution.Serial)
            {
                return backend.DefaultContext;
            }

            if (!_branchContexts.TryGetValue(b, out var context))
            {
                _branchContexts[b] = context = backend.CreateContext(string.Create(CultureInfo.InvariantCulture, $"branch {b}"));
            }

            return context;
        }).ToList();
    }

    /// <summary>Whether models built here run their branches as one batch (<see cref="BranchExecution.Batched"/>).</summary>
    public bool BatchedBranches => Execution == BranchExecution.Batched;

    /// <summary>One line: the devices, and how the branches run on them.</summary>
    public string Describe() => Backends.Count == 1 && Execution == BranchExecution.Serial
        ? Backends[0].Description
        : $"{string.Join("; ", Backends.Select(b => b.Description))} | branches: {Execution switch { BranchExecution.Streams => "a stream each", BranchExecution.Batched => "one batch", _ => "one stream per device" }}{(Backends.Count > 1 ? $", round-robin over {Backends.Count} devices" : "")}";

    /// <summary>Memory of every CUDA backend: in use and held, at their peaks, summed over devices; null on the CPU.</summary>
    public MemoryStats? Memory => Backends.OfType<CudaBackend>().Select(b => b.Memory).Aggregate(
        (MemoryStats?)null,
        (sum, m) => new MemoryStats((sum?.Allocated ?? 0) + m.Allocated, (sum?.Reserved ?? 0) + m.Reserved, (sum?.PeakAllocated ?? 0) + m.PeakAllocated, (sum?.PeakReserved ?? 0) + m.PeakReserved));

    public void Dispose()
    {
        if (ReferenceEquals(this, Cpu))
        {
            return;
        }

        foreach (var backend in Backends)
        {
            backend.Dispose();
        }

        foreach (var gpu in _gpus)
        {
            gpu.Dispose();
        }
    }
}
