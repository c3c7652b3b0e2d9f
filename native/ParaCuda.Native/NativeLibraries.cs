using System.Reflection;
using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>
/// Maps the short library names used by the bindings ("cuda", ...) to the versioned files that driver
/// and toolkit installs actually ship, trying each candidate in order.
/// </summary>
internal static class NativeLibraries
{
    public const string Driver = "cuda";

    private static readonly Dictionary<string, string[]> s_candidates = new()
    {
        [Driver] = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"],
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
