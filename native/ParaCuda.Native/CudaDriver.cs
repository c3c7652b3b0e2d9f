using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>A CUDA driver call failed; the message names the error and the call (with sizes where they matter).</summary>
public sealed class CudaException(string message, int status) : Exception(message)
{
    /// <summary>The driver's CUresult.</summary>
    public int Status { get; } = status;
}

/// <summary>
/// The CUDA driver API, as much of it as ParaCuda uses: device discovery, the primary context, memory,
/// modules and launches. Every call checks its result and throws <see cref="CudaException"/> naming the
/// error (<c>CUDA_ERROR_OUT_OF_MEMORY in cuMemAlloc(1073741824 bytes) with 52428800 bytes free</c>).
/// </summary>
public static unsafe partial class CudaDriver
{
    private const int Success = 0;
    private const int OutOfMemory = 2;
    private const int ComputeCapabilityMajor = 75;
    private const int ComputeCapabilityMinor = 76;

    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    static CudaDriver() => NativeLibraries.EnsureResolver();

    /// <summary>True when libcuda loads, cuInit succeeds and a device exists.</summary>
    public static bool IsAvailable => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="IsAvailable"/> is false, in words a user can act on; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>The compute capability of device <paramref name="ordinal"/>, e.g. (9, 0) for an H100.</summary>
    public static (int Major, int Minor) ComputeCapability(int ordinal)
    {
        var device = Device(ordinal);
        Check(cuDeviceGetAttribute(out var major, ComputeCapabilityMajor, device), $"cuDeviceGetAttribute(major, device {ordinal})");
        Check(cuDeviceGetAttribute(out var minor, ComputeCapabilityMinor, device), $"cuDeviceGetAttribute(minor, device {ordinal})");
        return (major, minor);
    }

    /// <summary>Retains device <paramref name="ordinal"/>'s primary context and makes it current on this thread.</summary>
    public static IntPtr UsePrimaryContext(int ordinal)
    {
        var device = Device(ordinal);
        Check(cuDevicePrimaryCtxRetain(out var context, device), $"cuDevicePrimaryCtxRetain(device {ordinal})");
        Check(cuCtxSetCurrent(context), "cuCtxSetCurrent()");
        return context;
    }

    public static void ReleasePrimaryContext(int ordinal) => Check(cuDevicePrimaryCtxRelease(Device(ordinal)), $"cuDevicePrimaryCtxRelease(device {ordinal})");

    public static ulong Allocate(long bytes)
    {
        var status = cuMemAlloc_v2(out var pointer, (nuint)bytes);
        if (status == OutOfMemory && cuMemGetInfo_v2(out var free, out _) == Success)
        {
            throw new CudaException($"{ErrorName(status)} in cuMemAlloc({bytes} bytes) with {free} bytes free", status);
        }

        Check(status, $"cuMemAlloc({bytes} bytes)");
        return pointer;
    }

    public static void Free(ulong pointer) => Check(cuMemFree_v2(pointer), "cuMemFree()");

    public static void CopyToDevice(ulong destination, ReadOnlySpan<byte> source)
    {
        fixed (byte* s = source)
        {
            Check(cuMemcpyHtoD_v2(destination, s, (nuint)source.Length), $"cuMemcpyHtoD({source.Length} bytes)");
        }
    }

    public static void CopyToHost(Span<byte> destination, ulong source)
    {
        fixed (byte* d = destination)
        {
            Check(cuMemcpyDtoH_v2(d, source, (nuint)destination.Length), $"cuMemcpyDtoH({destination.Length} bytes)");
        }
    }

    /// <summary>Loads PTX (JIT-compiled by the driver for the current device) and returns the module.</summary>
    public static IntPtr LoadModule(string ptx, string name)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(ptx + "\0");
        fixed (byte* image = bytes)
        {
            Check(cuModuleLoadData(out var module, image), $"cuModuleLoadData({name})");
            return module;
        }
    }

    public static void UnloadModule(IntPtr module) => Check(cuModuleUnload(module), "cuModuleUnload()");

    public static IntPtr Function(IntPtr module, string name)
    {
        Check(cuModuleGetFunction(out var function, module, name), $"cuModuleGetFunction({name})");
        return function;
    }

    /// <summary>Launches <paramref name="function"/>; <paramref name="arguments"/> points at one pointer per kernel parameter.</summary>
    public static void Launch(IntPtr function, string name, (uint X, uint Y, uint Z) grid, (uint X, uint Y, uint Z) block, uint sharedBytes, IntPtr stream, void** arguments) =>
        Check(
            cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedBytes, stream, arguments, null),
            $"cuLaunchKernel({name}, grid {grid}, block {block})");

    public static void Synchronize() => Check(cuCtxSynchronize(), "cuCtxSynchronize()");

    private static int Device(int ordinal)
    {
        Check(cuDeviceGet(out var device, ordinal), $"cuDeviceGet({ordinal})");
        return device;
    }

    private static void Check(int status, string call)
    {
        if (status != Success)
        {
            throw new CudaException($"{ErrorName(status)} in {call}", status);
        }
    }

    private static string ErrorName(int status) =>
        cuGetErrorName(status, out var name) == Success && Marshal.PtrToStringAnsi(name) is { } text ? text : $"CUDA error {status}";

    private static string? Probe()
    {
        if (NativeLibraries.TryLoad(NativeLibraries.Driver, out var tried) == IntPtr.Zero)
        {
            return $"no CUDA driver: none of {tried} could be loaded";
        }

        var status = cuInit(0);
        if (status != 0)
        {
            return $"the CUDA driver is present but cuInit failed with error {status}";
        }

        status = cuDeviceGetCount(out var count);
        if (status != 0 || count == 0)
        {
            return "the CUDA driver found no device";
        }

        return null;
    }

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuInit(uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGetCount(out int count);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuCtxSetCurrent(IntPtr context);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuCtxSynchronize();

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemGetInfo_v2(out nuint free, out nuint total);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemAlloc_v2(out ulong pointer, nuint bytes);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemFree_v2(ulong pointer);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuModuleLoadData(out IntPtr module, void* image);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuModuleUnload(IntPtr module);

    [LibraryImport(NativeLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ, uint sharedBytes, IntPtr stream, void** parameters, void** extra);

    [LibraryImport(NativeLibraries.Driver)]
    private static partial int cuGetErrorName(int status, out IntPtr name);
}
