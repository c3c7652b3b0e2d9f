using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>Compiles kernel files with NVRTC for one GPU architecture.</summary>
public static class KernelCompiler
{
    /// <summary>
    /// NVRTC options for compute capability <paramref name="architecture"/> (80 for sm_80): PTX for that
    /// virtual architecture, which the driver finishes for the GPU at hand; IEEE division and square root
    /// (no fast math) so results match the CPU reference; line info for profilers and the sanitizer.
    /// </summary>
    public static IReadOnlyList<string> Options(int architecture) =>
        [$"--gpu-architecture=compute_{architecture}", "--std=c++17", "--generate-line-info"];

    /// <summary>
    /// The PTX of <paramref name="file"/> for <paramref name="architecture"/>. A compile error throws
    /// <see cref="NvrtcException"/> whose message holds NVRTC's log, lines reading <c>file(line): error: …</c>.
    /// </summary>
    public static NvrtcOutput Compile(KernelSources sources, string file, int architecture)
    {
        ArgumentNullException.ThrowIfNull(sources);
        return Nvrtc.Compile(file, sources.Source(file), sources.Headers, Options(architecture));
    }
}
