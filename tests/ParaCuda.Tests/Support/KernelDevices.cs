using System.Runtime.InteropServices;
using ParaCuda.Backends.Cuda;

namespace ParaCuda.Tests.Support;

/// <summary>32-bit elements in the memory of an <see cref="IKernelDevice"/>; passes to a kernel as its address.</summary>
internal abstract class KernelBuffer(long elements) : IDisposable
{
    public long Elements { get; } = elements;

    public abstract ulong Pointer { get; }

    public abstract void Upload<T>(ReadOnlySpan<T> values)
        where T : unmanaged;

    public abstract T[] Download<T>()
        where T : unmanaged;

    /// <summary>Fills the buffer with NaN, so an element a kernel forgets to write fails its comparison.</summary>
    public void Poison() => Upload<float>(Enumerable.Repeat(float.NaN, (int)Elements).ToArray());

    public abstract void Dispose();

    public static implicit operator KernelArgument(KernelBuffer? buffer) => buffer?.Pointer ?? 0UL;
}

/// <summary>Where kernel tests run the kernels: a real GPU, or the CPU emulator.</summary>
internal interface IKernelDevice : IDisposable
{
    KernelBuffer Allocate(long elements);

    void Launch(string file, string kernel, (uint X, uint Y, uint Z) grid, uint block, params KernelArgument[] arguments);

    void Synchronize();
}

internal static class KernelDeviceExtensions
{
    public static KernelBuffer Upload<T>(this IKernelDevice device, ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var buffer = device.Allocate(MemoryMarshal.AsBytes(values).Length / 4);
        buffer.Upload(values);
        return buffer;
    }

    public static void Launch(this IKernelDevice device, string file, string kernel, uint grid, uint block, params KernelArgument[] arguments) =>
        device.Launch(file, kernel, (grid, 1, 1), block, arguments);
}

/// <summary>The GPU, through the driver bindings the CUDA backend uses.</summary>
internal sealed class GpuKernelDevice : IKernelDevice
{
    private readonly CudaDevice _device = CudaDevice.Open();

    public KernelBuffer Allocate(long elements) => new Buffer(_device.Allocate(elements));

    public void Launch(string file, string kernel, (uint X, uint Y, uint Z) grid, uint block, params KernelArgument[] arguments) =>
        _device.Module(file).Launch(kernel, grid, block, arguments);

    public void Synchronize() => CudaDevice.Synchronize();

    public void Dispose() => _device.Dispose();

    private sealed class Buffer(DeviceBuffer buffer) : KernelBuffer(buffer.Elements)
    {
        public override ulong Pointer => buffer.Pointer;

        public override void Upload<T>(ReadOnlySpan<T> values) => buffer.Upload(values);

        public override T[] Download<T>() => buffer.Download<T>();

        public override void Dispose() => buffer.Dispose();
    }
}
