using System.Runtime.InteropServices;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>Device memory holding 32-bit elements (float or int), freed on dispose.</summary>
public sealed class DeviceBuffer : IDisposable
{
    private bool _disposed;

    internal DeviceBuffer(long elements)
    {
        Elements = elements;
        Pointer = CudaDriver.Allocate(Math.Max(elements, 1) * 4);
    }

    public ulong Pointer { get; }

    public long Elements { get; }

    public void Upload<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(values);
        if (bytes.Length > Elements * 4)
        {
            throw new ArgumentException($"{bytes.Length} bytes do not fit a buffer of {Elements} 32-bit elements", nameof(values));
        }

        CudaDriver.CopyToDevice(Pointer, bytes);
    }

    public T[] Download<T>()
        where T : unmanaged
    {
        var values = new T[Elements * 4 / Marshal.SizeOf<T>()];
        CudaDriver.CopyToHost(MemoryMarshal.AsBytes(values.AsSpan()), Pointer);
        return values;
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            CudaDriver.Free(Pointer);
        }
    }
}

/// <summary>One kernel argument as the driver wants it: the bytes of a scalar, or a device pointer.</summary>
public readonly struct KernelArgument
{
    private KernelArgument(ulong bits) => Bits = bits;

    /// <summary>The value in the low bytes of a 64-bit slot (little-endian, as every CUDA host is).</summary>
    internal ulong Bits { get; }

    /// <summary>
    /// Lays the arguments out as cuLaunchKernel reads them: one 64-bit slot per argument, and a pointer to
    /// each slot. Both spans must hold <paramref name="arguments"/>.Length entries.
    /// </summary>
    public static unsafe void Pack(ReadOnlySpan<KernelArgument> arguments, ulong* slots, void** pointers)
    {
        for (var i = 0; i < arguments.Length; i++)
        {
            slots[i] = arguments[i].Bits;
            pointers[i] = slots + i;
        }
    }

    public static implicit operator KernelArgument(int value) => new((uint)value);

    public static implicit operator KernelArgument(long value) => new((ulong)value);

    public static implicit operator KernelArgument(ulong value) => new(value);

    public static implicit operator KernelArgument(float value) => new(BitConverter.SingleToUInt32Bits(value));

    public static implicit operator KernelArgument(DeviceBuffer? buffer) => new(buffer?.Pointer ?? 0);
}

/// <summary>The functions of one kernel file, loaded into the current context.</summary>
public sealed unsafe class KernelModule : IDisposable
{
    private readonly IntPtr _module;
    private readonly Dictionary<string, IntPtr> _functions = new(StringComparer.Ordinal);

    internal KernelModule(string file, string ptx)
    {
        File = file;
        _module = CudaDriver.LoadModule(ptx, file);
    }

    public string File { get; }

    /// <summary>Launches <paramref name="kernel"/> on the default stream.</summary>
    public void Launch(string kernel, (uint X, uint Y, uint Z) grid, uint block, params KernelArgument[] arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (!_functions.TryGetValue(kernel, out var function))
        {
            _functions[kernel] = function = CudaDriver.Function(_module, kernel);
        }

        var slots = stackalloc ulong[arguments.Length];
        var pointers = stackalloc void*[arguments.Length];
        KernelArgument.Pack(arguments, slots, pointers);
        CudaDriver.Launch(function, $"{File}:{kernel}", grid, (block, 1, 1), 0, IntPtr.Zero, pointers);
    }

    public void Dispose() => CudaDriver.UnloadModule(_module);
}

/// <summary>
/// One GPU with its primary context current on the calling thread, and the kernel files compiled (through
/// the disk cache) for its architecture.
/// </summary>
public sealed class CudaDevice : IDisposable
{
    private readonly KernelSources _sources;
    private readonly KernelCache _cache;
    private readonly Dictionary<string, KernelModule> _modules = new(StringComparer.Ordinal);
    private bool _disposed;

    private CudaDevice(int ordinal, KernelSources sources, KernelCache cache)
    {
        Ordinal = ordinal;
        _sources = sources;
        _cache = cache;
        var (major, minor) = CudaDriver.ComputeCapability(ordinal);
        Architecture = (major * 10) + minor;
        CudaDriver.UsePrimaryContext(ordinal);
    }

    public int Ordinal { get; }

    /// <summary>The compute capability as NVRTC names it: 90 for sm_90.</summary>
    public int Architecture { get; }

    public static CudaDevice Open(int ordinal = 0, KernelSources? sources = null, KernelCache? cache = null)
    {
        if (!CudaDriver.IsAvailable)
        {
            throw new InvalidOperationException(CudaDriver.UnavailableReason);
        }

        return new CudaDevice(ordinal, sources ?? KernelSources.Load(), cache ?? new KernelCache(KernelCache.DefaultDirectory));
    }

    /// <summary>The kernels of <paramref name="file"/>, compiled for this device on first use.</summary>
    public KernelModule Module(string file)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_modules.TryGetValue(file, out var module))
        {
            _modules[file] = module = new KernelModule(file, _cache.GetPtx(_sources, file, Architecture));
        }

        return module;
    }

    public DeviceBuffer Allocate(long elements)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new DeviceBuffer(elements);
    }

    public static void Synchronize() => CudaDriver.Synchronize();

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var module in _modules.Values)
        {
            module.Dispose();
        }

        CudaDriver.ReleasePrimaryContext(Ordinal);
    }
}
