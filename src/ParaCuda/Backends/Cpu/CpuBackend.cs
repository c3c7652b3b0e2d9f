using System.Runtime.Intrinsics;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

/// <summary>
/// The host backend: multithreaded, vectorized, and the reference the CUDA kernels are tested against.
/// Work is executed at issue time, so every context is trivially ordered and events are always complete;
/// several contexts still exist so that code written for streams runs unchanged here.
/// </summary>
public sealed class CpuBackend : Backend
{
    private readonly CpuContext _default;

    private CpuBackend()
    {
        Ops = new CpuOps();
        _default = new CpuContext(this, "main");
    }

    public static CpuBackend Instance { get; } = new();

    public override Device Device => Device.Cpu;

    public override string Description =>
        $"CPU: {Engine.Threads} threads, {(Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? "AVX2" : "scalar")} kernels";

    public override ComputeContext DefaultContext => _default;

    internal CpuOps Ops { get; }

    public override ComputeContext CreateContext(string name) => new CpuContext(this, name);

    public override Storage Allocate(long bytes, ComputeContext context)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        return new CpuStorage(bytes);
    }

    private sealed class CpuContext(CpuBackend backend, string name) : ComputeContext(backend, name)
    {
        private static readonly CompletedEvent s_done = new();

        public override Ops Ops => backend.Ops;

        public override ContextEvent RecordEvent() => s_done;

        public override void Wait(ContextEvent e)
        {
        }

        public override void Synchronize()
        {
        }
    }

    private sealed class CompletedEvent : ContextEvent
    {
        public override bool IsCompleted => true;
    }
}
