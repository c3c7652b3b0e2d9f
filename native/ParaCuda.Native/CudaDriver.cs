using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>Whether a CUDA driver with at least one device is usable in this process.</summary>
public static partial class CudaDriver
{
    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    static CudaDriver() => NativeLibraries.EnsureResolver();

    /// <summary>True when libcuda loads, cuInit succeeds and a device exists.</summary>
    public static bool IsAvailable => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="IsAvailable"/> is false, in words a user can act on; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

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
}
