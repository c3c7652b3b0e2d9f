using System.Security.Cryptography;
using System.Text;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// Compiled kernels on disk, so a process compiles each kernel file once per GPU architecture rather than
/// at every start. The key hashes everything the PTX depends on: the file's name and text, every header's
/// name and text, the NVRTC options (which name the architecture) and NVRTC's version. Editing a
/// <c>.cu</c> file under <c>PARACUDA_KERNELS</c> therefore recompiles it on the next run.
/// </summary>
public sealed class KernelCache(string directory)
{
    /// <summary><c>$XDG_CACHE_HOME/paracuda/kernels</c>, else <c>~/.cache/paracuda/kernels</c>.</summary>
    public static string DefaultDirectory
    {
        get
        {
            var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "paracuda", "kernels");
        }
    }

    public string Directory { get; } = directory;

    /// <summary>Lookups answered from disk since this cache was created.</summary>
    public int Hits { get; private set; }

    /// <summary>Lookups that had to compile.</summary>
    public int Misses { get; private set; }

    /// <summary>The PTX of <paramref name="file"/> for <paramref name="architecture"/>, from disk or freshly compiled.</summary>
    public string GetPtx(KernelSources sources, string file, int architecture)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var source = sources.Source(file);
        var path = Path.Combine(Directory, $"{Path.GetFileNameWithoutExtension(file)}-sm{architecture}-{Key(sources, file, source, architecture)}.ptx");
        // An empty file is a write that never finished (the rename below makes that unlikely, not impossible).
        if (File.Exists(path) && new FileInfo(path).Length > 0)
        {
            Hits++;
            return File.ReadAllText(path);
        }

        Misses++;
        var ptx = KernelCompiler.Compile(sources, file, architecture).Ptx;
        System.IO.Directory.CreateDirectory(Directory);
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, ptx);
        File.Move(temporary, path, overwrite: true);
        return ptx;
    }

    private static string Key(KernelSources sources, string file, string source, int architecture)
    {
        var text = new StringBuilder();
        var (major, minor) = Nvrtc.Version;
        text.Append(file).Append('\0').Append(source).Append('\0');
        foreach (var (name, header) in sources.Headers.OrderBy(h => h.Key, StringComparer.Ordinal))
        {
            text.Append(name).Append('\0').Append(header).Append('\0');
        }

        text.AppendJoin(' ', KernelCompiler.Options(architecture)).Append('\0').Append($"nvrtc {major}.{minor}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
    }
}
