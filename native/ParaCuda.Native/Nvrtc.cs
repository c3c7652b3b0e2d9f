using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>An NVRTC call failed; the message names the call and NVRTC's error, and carries the compile log if any.</summary>
public sealed class NvrtcException(string message) : Exception(message);

/// <summary>
/// What one NVRTC compilation produced: PTX (for a virtual architecture, compute_XX) or a cubin (for a real
/// one, sm_XX), and the compiler's log (warnings, or empty).
/// </summary>
public sealed record NvrtcOutput(byte[] Image, bool IsCubin, string Log)
{
    /// <summary>The PTX text; empty for a cubin.</summary>
    public string Ptx => IsCubin ? "" : System.Text.Encoding.ASCII.GetString(Image).TrimEnd('\0');
}

/// <summary>
/// NVRTC, the CUDA run-time compiler: CUDA C source in, PTX out. Needs no GPU and no driver, which is what
/// lets a machine without a GPU (CI) compile every kernel.
/// </summary>
public static partial class Nvrtc
{
    private const int Success = 0;

    private static readonly Lazy<string?> s_unavailableReason = new(Probe);

    static Nvrtc() => NativeLibraries.EnsureResolver();

    /// <summary>True when an NVRTC library loads.</summary>
    public static bool IsAvailable => s_unavailableReason.Value is null;

    /// <summary>Why <see cref="IsAvailable"/> is false, in words a user can act on; null when it is true.</summary>
    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>NVRTC's own version, e.g. (11, 8).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            Check(nvrtcVersion(out var major, out var minor), "nvrtcVersion()");
            return (major, minor);
        }
    }

    /// <summary>The GPU architectures this NVRTC can target, e.g. 80 and 90 for sm_80 and sm_90.</summary>
    public static IReadOnlyList<int> SupportedArchitectures
    {
        get
        {
            Check(nvrtcGetNumSupportedArchs(out var count), "nvrtcGetNumSupportedArchs()");
            var archs = new int[count];
            Check(nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs()");
            return archs;
        }
    }

    /// <summary>
    /// Compiles <paramref name="source"/> (named <paramref name="name"/> in diagnostics) with the given headers
    /// available to <c>#include "…"</c>: a cubin when the options name a real architecture (sm_XX), else PTX.
    /// A compile error throws with NVRTC's log, whose lines read <c>name(line): error: …</c>.
    /// </summary>
    public static NvrtcOutput Compile(string name, string source, IReadOnlyDictionary<string, string> headers, IReadOnlyList<string> options)
    {
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(options);
        var headerNames = headers.Keys.ToArray();
        var headerSources = headerNames.Select(h => headers[h]).ToArray();
        Check(nvrtcCreateProgram(out var program, source, name, headerNames.Length, headerSources, headerNames), $"nvrtcCreateProgram({name})");
        try
        {
            var status = nvrtcCompileProgram(program, options.Count, [.. options]);
            var log = Log(program);
            if (status != Success)
            {
                throw new NvrtcException($"{ErrorName(status)} in nvrtcCompileProgram({name}, {string.Join(' ', options)}):\n{log}");
            }

            if (options.Any(o => o.Contains("=sm_", StringComparison.Ordinal)))
            {
                Check(nvrtcGetCUBINSize(program, out var cubinSize), $"nvrtcGetCUBINSize({name})");
                var cubin = new byte[cubinSize];
                Check(nvrtcGetCUBIN(program, cubin), $"nvrtcGetCUBIN({name})");
                return new NvrtcOutput(cubin, IsCubin: true, log);
            }

            Check(nvrtcGetPTXSize(program, out var size), $"nvrtcGetPTXSize({name})");
            var ptx = new byte[size];
            Check(nvrtcGetPTX(program, ptx), $"nvrtcGetPTX({name})");
            return new NvrtcOutput(ptx, IsCubin: false, log);
        }
        finally
        {
            nvrtcDestroyProgram(ref program);
        }
    }

    private static string Log(IntPtr program)
    {
        Check(nvrtcGetProgramLogSize(program, out var size), "nvrtcGetProgramLogSize()");
        var log = new byte[size];
        Check(nvrtcGetProgramLog(program, log), "nvrtcGetProgramLog()");
        return System.Text.Encoding.UTF8.GetString(log, 0, Math.Max((int)size - 1, 0)).Trim();
    }

    private static string? Probe() =>
        NativeLibraries.TryLoad(NativeLibraries.Nvrtc, out var tried) == IntPtr.Zero
            ? $"no NVRTC: none of {tried} could be loaded (a CUDA toolkit, or Debian's libnvrtc11.2 from non-free)"
            : null;

    private static void Check(int status, string call)
    {
        if (status != Success)
        {
            throw new NvrtcException($"{ErrorName(status)} in {call}");
        }
    }

    private static string ErrorName(int status) => Marshal.PtrToStringAnsi(nvrtcGetErrorString(status)) ?? $"NVRTC error {status}";

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial IntPtr nvrtcGetErrorString(int result);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcVersion(out int major, out int minor);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetNumSupportedArchs(out int count);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetSupportedArchs([Out] int[] archs);

    [LibraryImport(NativeLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int nvrtcCreateProgram(out IntPtr program, string source, string name, int headerCount, string[] headers, string[] includeNames);

    [LibraryImport(NativeLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int nvrtcCompileProgram(IntPtr program, int optionCount, string[] options);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetProgramLogSize(IntPtr program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetProgramLog(IntPtr program, [Out] byte[] log);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetPTXSize(IntPtr program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetPTX(IntPtr program, [Out] byte[] ptx);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetCUBINSize(IntPtr program, out nuint size);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcGetCUBIN(IntPtr program, [Out] byte[] cubin);

    [LibraryImport(NativeLibraries.Nvrtc)]
    private static partial int nvrtcDestroyProgram(ref IntPtr program);
}
