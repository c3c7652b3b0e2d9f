using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ParaCuda.Backends.Cuda.Emulator;

/// <summary>One kernel of an emulated module: where to call it, and its parameters' sizes and kinds.</summary>
internal sealed unsafe class EmulatedFunction(string name, int index, IntPtr launch, int[] sizes, int[] kinds)
{
    public string Name { get; } = name;

    public int Index { get; } = index;

    /// <summary>pc_launch of the module's library.</summary>
    public IntPtr LaunchEntry { get; } = launch;

    public int[] Sizes { get; } = sizes;

    /// <summary>Per parameter: 0 a value, 1 a pointer to const (read), 2 a pointer (read and written).</summary>
    public int[] Kinds { get; } = kinds;

    /// <summary>Dynamic shared memory this kernel may use, raised by cuFuncSetAttribute (48 KB without it).</summary>
    public int MaxDynamicShared { get; set; } = 48 * 1024;
}

/// <summary>
/// Builds kernel files into shared libraries with g++ and <c>cuda_emulator.h</c>, and loads them. Libraries are
/// cached on disk under <c>~/.cache/paracuda/emulator</c>, keyed like the PTX cache (sources, headers, defines)
/// plus the emulator header and the compiler's version, so a rebuilt file appears only when something changed.
/// </summary>
internal static unsafe class EmulatorKernels
{
    private const string Flags = "-std=c++20 -O2 -fPIC -shared -fvisibility=hidden -fno-gnu-unique -w";

    private static readonly Lazy<string> s_header = new(() =>
    {
        using var stream = typeof(EmulatorKernels).Assembly.GetManifestResourceStream("cuda_emulator.h")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    private static readonly Lazy<string?> s_compiler = new(() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, "g++")).FirstOrDefault(File.Exists));

    private static readonly Lazy<string> s_compilerVersion = new(() => Run(s_compiler.Value!, ["--version"], null).Output.Split('\n')[0]);

    private static readonly ConcurrentDictionary<string, Lazy<IntPtr>> s_libraries = new();

    /// <summary>Why kernels cannot be emulated here (no C++ compiler), or null.</summary>
    public static string? UnavailableReason => s_compiler.Value is null ? "no g++ on PATH (the emulated device compiles the kernels as C++)" : null;

    /// <summary><c>$XDG_CACHE_HOME/paracuda/emulator</c>, else <c>~/.cache/paracuda/emulator</c>.</summary>
    public static string CacheDirectory => Path.Combine(KernelCache.CacheRoot, "emulator");

    /// <summary>Compiles every kernel file of <paramref name="sources"/> not yet in the cache, several at a time.</summary>
    public static void Prepare(KernelSources sources) =>
        Parallel.ForEach(sources.Kernels.Keys, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, file => Library(sources, file, []));

    /// <summary>The functions of <paramref name="file"/>, compiled with <paramref name="defines"/>, by name.</summary>
    public static Dictionary<string, EmulatedFunction> Load(KernelSources sources, string file, IReadOnlyList<string> defines)
    {
        var library = Library(sources, file, defines);
        var count = ((delegate* unmanaged<int>)NativeLibrary.GetExport(library, "pc_kernel_count"))();
        var name = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(library, "pc_kernel_name");
        var parameters = (delegate* unmanaged<int, int*, int*, int, int>)NativeLibrary.GetExport(library, "pc_kernel_params");
        var launch = NativeLibrary.GetExport(library, "pc_launch");
        var functions = new Dictionary<string, EmulatedFunction>(StringComparer.Ordinal);
        for (var k = 0; k < count; k++)
        {
            var sizes = new int[48];
            var kinds = new int[48];
            int n;
            fixed (int* s = sizes, d = kinds)
            {
                n = parameters(k, s, d, 48);
            }

            var kernel = Marshal.PtrToStringUTF8((IntPtr)name(k))!;
            functions[kernel] = new EmulatedFunction(kernel, k, launch, sizes[..n], kinds[..n]);
        }

        return functions;
    }

    private static IntPtr Library(KernelSources sources, string file, IReadOnlyList<string> defines)
    {
        if (UnavailableReason is { } reason)
        {
            throw new InvalidOperationException(reason);
        }

        var source = sources.Source(file);
        var options = Flags.Split(' ').Concat(defines.Select(d => $"-D{d}")).ToList();
        var key = KernelCache.Key(sources, file, source, options, $"{s_compilerVersion.Value}\0{s_header.Value}");
        var path = Path.Combine(CacheDirectory, $"{Path.GetFileNameWithoutExtension(file)}-{key}.so");
        return s_libraries.GetOrAdd(path, p => new Lazy<IntPtr>(() =>
        {
            if (!File.Exists(p))
            {
                Build(sources, file, options, p);
            }

            return NativeLibrary.Load(p);
        })).Value;
    }

    private static void Build(KernelSources sources, string file, List<string> options, string path)
    {
        var work = Directory.CreateTempSubdirectory("paracuda-emulator-").FullName;
        try
        {
            foreach (var (name, text) in sources.Headers.Append(KeyValuePair.Create(file, sources.Source(file))))
            {
                File.WriteAllText(Path.Combine(work, name), text);
            }

            File.WriteAllText(Path.Combine(work, "cuda_emulator.h"), s_header.Value);
            var unit = Path.Combine(work, "unit.cpp");
            var registrations = KernelSources.EntryPoints(sources.Source(file)).Select(e => $"PC_EMULATOR_REGISTER({e})");
            File.WriteAllLines(unit, ["#include \"cuda_emulator.h\"", $"#include \"{file}\"", .. registrations]);
            var built = Path.Combine(work, "kernels.so");
            var (code, output) = Run(s_compiler.Value!, [.. options, "-I", work, unit, "-o", built], work);
            if (code != 0)
            {
                throw new InvalidOperationException($"g++ could not build the emulated {file}:\n{output.Replace(work + Path.DirectorySeparatorChar, "", StringComparison.Ordinal)}");
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temporary = $"{path}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp";
            File.Move(built, temporary);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static (int Code, string Output) Run(string program, IEnumerable<string> arguments, string? directory)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = directory ?? "" };
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output + error.Result);
    }
}
