using System.Text.RegularExpressions;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// The CUDA C kernels (<c>kernels/*.cu</c>) and the headers they include (<c>*.cuh</c>): embedded in this
/// assembly, or read from the folder named by <c>PARACUDA_KERNELS</c> so that an edited <c>.cu</c> file is
/// used on the next run without a rebuild.
/// </summary>
public sealed partial class KernelSources
{
    /// <summary>The environment variable that points at a kernels folder to use instead of the embedded copy.</summary>
    public const string DirectoryVariable = "PARACUDA_KERNELS";

    private const string ResourcePrefix = "kernels/";

    private KernelSources(string origin, Dictionary<string, string> kernels, Dictionary<string, string> headers)
    {
        Origin = origin;
        Kernels = kernels;
        Headers = headers;
    }

    /// <summary>"embedded", or the folder the sources were read from.</summary>
    public string Origin { get; }

    /// <summary>Kernel files by name (<c>layernorm_forward.cu</c>), sorted by name.</summary>
    public IReadOnlyDictionary<string, string> Kernels { get; }

    /// <summary>Header files by the name a kernel includes them under (<c>common.cuh</c>).</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>
    /// The sources from <paramref name="directory"/>, else from <c>$PARACUDA_KERNELS</c>, else the embedded
    /// copy. A folder that does not exist or holds no <c>.cu</c> file is an error naming it.
    /// </summary>
    public static KernelSources Load(string? directory = null)
    {
        directory ??= Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
        return directory is null ? Embedded() : FromDirectory(directory);
    }

    /// <summary>The text of kernel file <paramref name="file"/>; an unknown name is an error listing the known ones.</summary>
    public string Source(string file) =>
        Kernels.TryGetValue(file, out var source)
            ? source
            : throw new ArgumentException($"no kernel file {file} in {Origin} (there are: {string.Join(", ", Kernels.Keys)})", nameof(file));

    /// <summary>The names of the <c>extern "C" __global__</c> functions a kernel file defines, in file order.</summary>
    public static IReadOnlyList<string> EntryPoints(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return EntryPointPattern().Matches(source).Select(m => m.Groups[1].Value).ToList();
    }

    private static KernelSources Embedded()
    {
        var assembly = typeof(KernelSources).Assembly;
        var kernels = new Dictionary<string, string>(StringComparer.Ordinal);
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            Add(resource[ResourcePrefix.Length..], reader.ReadToEnd(), kernels, headers);
        }

        return new KernelSources("embedded", kernels, headers);
    }

    private static KernelSources FromDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"kernel folder {directory} (from {DirectoryVariable}) does not exist");
        }

        var kernels = new Dictionary<string, string>(StringComparer.Ordinal);
        var headers = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
        {
            Add(Path.GetFileName(file), File.ReadAllText(file), kernels, headers);
        }

        if (kernels.Count == 0)
        {
            throw new FileNotFoundException($"kernel folder {directory} holds no .cu file");
        }

        return new KernelSources(Path.GetFullPath(directory), kernels, headers);
    }

    private static void Add(string name, string text, Dictionary<string, string> kernels, Dictionary<string, string> headers)
    {
        if (name.EndsWith(".cu", StringComparison.Ordinal))
        {
            kernels[name] = text;
        }
        else if (name.EndsWith(".cuh", StringComparison.Ordinal))
        {
            headers[name] = text;
        }
    }

    [GeneratedRegex(@"extern\s+""C""\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s+)?(\w+)\s*\(")]
    private static partial Regex EntryPointPattern();
}
