using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>Compiles kernel files with NVRTC for one GPU architecture.</summary>
public static class KernelCompiler
{
    /// <summary>
    /// NVRTC options for compute capability <paramref name="architecture"/> (80 for sm_80): a cubin for that
    /// GPU (<c>sm_XX</c>), or PTX for that virtual architecture (<c>compute_XX</c>), which the driver finishes
    /// for a newer GPU; IEEE division and square root (no fast math) so results match the CPU reference;
    /// line info for profilers and the sanitizer; then the defines (<c>NAME=VALUE</c>) a kernel is specialised by.
    /// </summary>
    public static IReadOnlyList<string> Options(int architecture, bool cubin = false, IReadOnlyList<string>? defines = null) =>
        [$"--gpu-architecture={(cubin ? "sm" : "compute")}_{architecture}", "--std=c++17", "--generate-line-info", .. (defines ?? []).Select(d => $"-D{d}")];

    /// <summary>
    /// <paramref name="file"/> compiled for <paramref name="architecture"/>. A compile error throws
    /// <see cref="NvrtcException"/> whose message holds NVRTC's log, lines reading <c>file(line): error: …</c>.
    /// </summary>
    public static NvrtcOutput Compile(KernelSources sources, string file, int architecture, bool cubin = false, IReadOnlyList<string>? defines = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        return Nvrtc.Compile(file, sources.Source(file), sources.Headers, Options(architecture, cubin, defines));
    }

    /// <summary>
    /// What to build for a GPU of compute capability <paramref name="architecture"/>: its own cubin when this
    /// NVRTC knows the GPU, else PTX for the newest architecture it knows below it.
    /// </summary>
    public static (int Architecture, bool Cubin) Target(int architecture)
    {
        var supported = Nvrtc.SupportedArchitectures;
        if (supported.Contains(architecture))
        {
            return (architecture, true);
        }

        var below = supported.Where(a => a <= architecture).DefaultIfEmpty(-1).Max();
        return below > 0
            ? (below, false)
            : throw new NvrtcException($"NVRTC {Nvrtc.Version.Major}.{Nvrtc.Version.Minor} targets sm_{string.Join(", sm_", supported)}; none runs on an sm_{architecture} GPU");
    }
}
