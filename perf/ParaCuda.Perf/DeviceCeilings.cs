using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Perf;

/// <summary>What a device can do at best, measured in the same run: device-to-device copy and a large GEMM (best of the repeats).</summary>
public static class DeviceCeilings
{
    /// <summary>GB/s of a device-to-device copy of <paramref name="megabytes"/> MB, counting bytes read plus bytes written.</summary>
    public static double CopyGBps(ComputeContext context, int megabytes)
    {
        ArgumentNullException.ThrowIfNull(context);
        using var scope = TensorScope.Begin();
        var count = megabytes << 18;
        var source = Tensors.Random(new Shape(count), 1, context);
        var destination = Tensor.Empty(new Shape(count), DType.Float32, context);
        var stats = Timing.Measure(context, _ => context.Ops.CopyAcross(source, destination), budgetSeconds: 1, minRepeats: 10);
        return 2.0 * count * sizeof(float) / (stats.P10Ms * 1e6);
    }

    /// <summary>GFLOP/s of an n×n×n GEMM in the backend's precision.</summary>
    public static double GemmGflops(ComputeContext context, int n)
    {
        ArgumentNullException.ThrowIfNull(context);
        using var scope = TensorScope.Begin();
        var (a, b) = (Tensors.Random(new Shape(n, n), 2, context), Tensors.Random(new Shape(n, n), 3, context));
        var c = Tensor.Empty(new Shape(n, n), DType.Float32, context);
        var stats = Timing.Measure(context, _ => context.Ops.Gemm(a, b, c), budgetSeconds: 1, minRepeats: 10);
        return 2.0 * n * n * n / (stats.P10Ms * 1e6);
    }
}
