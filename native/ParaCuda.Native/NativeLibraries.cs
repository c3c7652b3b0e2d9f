using System.Reflection;
using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>
/// Maps the short library names used by the bindings ("cuda", "nvrtc") to the versioned files that driver
/// and toolkit installs actually ship, trying each candidate in order.
/// </summary>
internal static class NativeLibraries
{
    public const string Driver = "cuda";

    public const string Nvrtc = "nvrtc";

    private static readonly Dictionary<string, string[]> s_candidates = new()
    {
        [Driver] = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"],
        // Newest first: CUDA 13 and 12 toolkits, then Debian's CUDA 11.8 package (soname 11.2), then a bare link.
        [Nvrtc] = OperatingSystem.IsWindows()
            ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
            : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
    };

    private static int s_registered;

    /// <summary>Installs the resolver once; every binding class calls this from its static constructor.</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    /// <summary>The first candidate file that loads, or null with the names tried.</summary>
    public static IntPtr TryLoad(string name, out string tried)
    {
        var candidates = s_candidates.TryGetValue(name, out var list) ? list : [name];
        tried = string.Join(", ", candidates);
        foreach (var file in candidates)
        {
            if (NativeLibrary.TryLoad(file, out var handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) => TryLoad(name, out _);
}
