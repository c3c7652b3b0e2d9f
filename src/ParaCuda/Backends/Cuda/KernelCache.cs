using System.Security.Cryptography;
using System.Text;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// Compiled kernels on disk, so a process compiles each kernel file once per GPU architecture rather than
/// at every start. The key hashes everything the code depends on: the file's name and text, every header's
/// name and text, the NVRTC options (which name the architecture, cubin or PTX, and the defines) and
/// NVRTC's version. Editing a <c>.cu</c> file under <c>PARACUDA_KERNELS</c> therefore recompiles it on the
/// next run. Safe to use from several threads and processes: a file appears by an atomic rename.
/// </summary>
public sealed class KernelCache(string directory)
{
    private int _hits;
    private int _misses;

    /// <summary><c>$XDG_CACHE_HOME/paracuda/kernels</c>, else <c>~/.cache/paracuda/kernels</c>.</summary>
    public static string DefaultDirectory => Path.Combine(CacheRoot, "kernels");

    /// <summary><c>$XDG_CACHE_HOME/paracuda</c>, else <c>~/.cache/paracuda</c>.</summary>
    public static string CacheRoot => Path.Combine(
        Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
        "paracuda");

    public string Directory { get; } = directory;

    /// <summary>Lookups answered from disk since this cache was created.</summary>
    public int Hits => Volatile.Read(ref _hits);

    /// <summary>Lookups that had to compile.</summary>
    public int Misses => Volatile.Read(ref _misses);

    /// <summary>
    /// The image of <paramref name="file"/> for a GPU of compute capability <paramref name="architecture"/>
    /// (see <see cref="KernelCompiler.Target"/>), from disk or freshly compiled.
    /// </summary>
    public NvrtcOutput Get(KernelSources sources, string file, int architecture, IReadOnlyList<string>? defines = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var (target, cubin) = KernelCompiler.Target(architecture);
        var options = KernelCompiler.Options(target, cubin, defines);
        var source = sources.Source(file);
        var path = Path.Combine(Directory, $"{Path.GetFileNameWithoutExtension(file)}-sm{target}-{Key(sources, file, source, options)}.{(cubin ? "cubin" : "ptx")}");
        // An empty file is a write that never finished (the rename below makes that unlikely, not impossible).
        if (File.Exists(path) && new FileInfo(path).Length > 0)
        {
            Interlocked.Increment(ref _hits);
            return new NvrtcOutput(File.ReadAllBytes(path), cubin, "");
        }

        Interlocked.Increment(ref _misses);
        var output = KernelCompiler.Compile(sources, file, target, cubin, defines);
        System.IO.Directory.CreateDirectory(Directory);
        var temporary = $"{path}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp";
        File.WriteAllBytes(temporary, output.Image);
        File.Move(temporary, path, overwrite: true);
        return output;
    }

    /// <summary>The text a cached file's name hashes: sources, headers, options and the compiler's identity.</summary>
    internal static string Key(KernelSources sources, string file, string source, IEnumerable<string> options, string? compiler = null)
    {
        var text = new StringBuilder();
        text.Append(file).Append('\0').Append(source).Append('\0');
        foreach (var (name, header) in sources.Headers.OrderBy(h => h.Key, StringComparer.Ordinal))
        {
            text.Append(name).Append('\0').Append(header).Append('\0');
        }

        var (major, minor) = compiler is null ? Nvrtc.Version : default;
        text.AppendJoin(' ', options).Append('\0').Append(compiler ?? $"nvrtc {major}.{minor}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }
}
