using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>
/// Maps the short library names used by the bindings ("cuda", "nvrtc", "cublas", "cublasLt") to the versioned files that
/// driver and toolkit installs actually ship, trying each candidate in order: by name (the loader's search
/// path), then in the toolkit folders ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda). The choice is made once per
/// name, so the probe that reports a library and the bindings that call it use the same file.
/// </summary>
internal static unsafe class NativeLibraries
{
    public const string Driver = "cuda";

    public const string Nvrtc = "nvrtc";

    public const string Cublas = "cublas";

    public const string CublasLt = "cublasLt";

    private static readonly Dictionary<string, string[]> s_candidates = new()
    {
        [Driver] = OperatingSystem.IsWindows() ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"],
        // Newest first: CUDA 13 and 12 toolkits, then Debian's CUDA 11.8 package (soname 11.2), then a bare link.
        [Nvrtc] = OperatingSystem.IsWindows()
            ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll"]
            : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
        [Cublas] = OperatingSystem.IsWindows()
            ? ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"]
            : ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"],
        [CublasLt] = OperatingSystem.IsWindows()
            ? ["cublasLt64_13.dll", "cublasLt64_12.dll", "cublasLt64_11.dll"]
            : ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"],
    };

    private static readonly ConcurrentDictionary<string, Lazy<(IntPtr Handle, string Tried)>> s_chosen = new();

    private static int s_registered;

    /// <summary>Installs the resolver once; every binding class calls this from its static constructor.</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    /// <summary>The chosen file's handle, or zero with the names tried.</summary>
    public static IntPtr TryLoad(string name, out string tried)
    {
        var (handle, names) = s_chosen.GetOrAdd(name, n => new Lazy<(IntPtr, string)>(() => Choose(n))).Value;
        tried = names;
        return handle;
    }

    /// <summary>
    /// The first candidate that loads and that the CUDA driver can use: an NVRTC newer than the driver makes
    /// code the driver cannot load, so NVRTCs above the driver's CUDA version are passed over.
    /// </summary>
    private static (IntPtr Handle, string Tried) Choose(string name)
    {
        var files = s_candidates.TryGetValue(name, out var list) ? list : [name];
        var folders = new[] { Environment.GetEnvironmentVariable("CUDA_HOME"), Environment.GetEnvironmentVariable("CUDA_PATH"), "/usr/local/cuda" }
            .Where(f => !string.IsNullOrEmpty(f)).SelectMany(f => new[] { Path.Combine(f!, "lib64"), Path.Combine(f!, "lib") }).ToList();
        var tried = new List<string>();
        foreach (var file in files)
        {
            tried.Add(file);
            foreach (var path in folders.Select(f => Path.Combine(f, file)).Where(File.Exists).Prepend(file))
            {
                if (NativeLibrary.TryLoad(path, out var handle))
                {
                    if (name != Nvrtc || UsableNvrtc(handle))
                    {
                        return (handle, string.Join(", ", tried));
                    }

                    NativeLibrary.Free(handle);
                    tried[^1] = $"{file} (newer than the driver)";
                    break;
                }
            }
        }

        return (IntPtr.Zero, string.Join(", ", tried));
    }

    private static bool UsableNvrtc(IntPtr handle)
    {
        if (!CudaDriver.IsAvailable || !NativeLibrary.TryGetExport(handle, "nvrtcVersion", out var export))
        {
            return true;
        }

        int major, minor;
        if (((delegate* unmanaged<int*, int*, int>)export)(&major, &minor) != 0)
        {
            return false;
        }

        var driver = CudaDriver.Version;
        return (major, minor).CompareTo(driver) <= 0;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) => TryLoad(name, out _);
}
