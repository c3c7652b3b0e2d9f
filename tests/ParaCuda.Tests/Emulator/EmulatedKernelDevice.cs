using System.Diagnostics;
using System.Runtime.InteropServices;
using ParaCuda.Backends.Cuda;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Emulator;

/// <summary>
/// Runs the kernels of kernels/ on the CPU: each file is compiled by g++ together with cuda_emulator.h
/// into a shared library whose <c>pc_launch</c> runs a grid the way the GPU would (see the header). Device
/// memory is host memory, so a buffer's address is what the kernel dereferences.
/// </summary>
internal sealed unsafe class EmulatedKernelDevice : IKernelDevice
{
    private readonly string _directory = Directory.CreateTempSubdirectory("paracuda-emulator-").FullName;
    private readonly KernelSources _sources = KernelSources.Load();
    private readonly Dictionary<string, IntPtr> _modules = new(StringComparer.Ordinal);

    /// <summary>Writes the kernels, their headers and the emulator header where g++ will find them.</summary>
    public EmulatedKernelDevice()
    {
        foreach (var (name, text) in _sources.Headers.Concat(_sources.Kernels))
        {
            File.WriteAllText(Path.Combine(_directory, name), text);
        }

        using var header = typeof(EmulatedKernelDevice).Assembly.GetManifestResourceStream("cuda_emulator.h")!;
        using var copy = File.Create(Path.Combine(_directory, "cuda_emulator.h"));
        header.CopyTo(copy);
    }

    /// <summary>Why the emulator cannot run here (no C++ compiler), or null.</summary>
    public static string? UnavailableReason { get; } = FindCompiler() is null ? "no g++ on PATH (the emulator compiles the kernels as C++)" : null;

    public KernelBuffer Allocate(long elements) => new HostBuffer(elements);

    public void Launch(string file, string kernel, (uint X, uint Y, uint Z) grid, uint block, params KernelArgument[] arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var launch = (delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, void**, int>)Module(file);
        var slots = stackalloc ulong[arguments.Length];
        var pointers = stackalloc void*[arguments.Length];
        KernelArgument.Pack(arguments, slots, pointers);
        var name = System.Text.Encoding.ASCII.GetBytes(kernel + "\0");
        fixed (byte* n = name)
        {
            if (launch(n, grid.X, grid.Y, grid.Z, block, 1, 1, pointers) != 0)
            {
                throw new InvalidOperationException($"{file} has no kernel {kernel}");
            }
        }
    }

    public void Synchronize()
    {
    }

    // The libraries stay loaded until the process exits: unloading one runs its static destructors, which
    // crashed the test host. Deleting the files of loaded libraries is fine on Linux.
    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private IntPtr Module(string file)
    {
        if (_modules.TryGetValue(file, out var launch))
        {
            return launch;
        }

        var stem = Path.GetFileNameWithoutExtension(file);
        var unit = Path.Combine(_directory, $"{stem}.emulated.cpp");
        var registrations = KernelSources.EntryPoints(_sources.Source(file)).Select(e => $"PC_EMULATOR_REGISTER({e})");
        File.WriteAllLines(unit, ["#include \"cuda_emulator.h\"", $"#include \"{file}\"", .. registrations]);
        var library = Path.Combine(_directory, $"lib{stem}.so");
        var (code, output) = Run(FindCompiler()!, ["-std=c++20", "-O2", "-fPIC", "-shared", "-I", _directory, unit, "-o", library]);
        if (code != 0)
        {
            throw new InvalidOperationException($"g++ could not build the emulated {file}:\n{output}");
        }

        return _modules[file] = NativeLibrary.GetExport(NativeLibrary.Load(library), "pc_launch");
    }

    private static string? FindCompiler() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Select(d => Path.Combine(d, "g++")).FirstOrDefault(File.Exists);

    private static (int Code, string Output) Run(string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true };
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

    private sealed class HostBuffer : KernelBuffer
    {
        private readonly void* _memory;

        public HostBuffer(long elements)
            : base(elements) => _memory = NativeMemory.AllocZeroed((nuint)(Math.Max(elements, 1) * 4));

        public override ulong Pointer => (ulong)_memory;

        public override void Upload<T>(ReadOnlySpan<T> values) => MemoryMarshal.AsBytes(values).CopyTo(new Span<byte>(_memory, (int)(Elements * 4)));

        public override T[] Download<T>() => new ReadOnlySpan<T>(_memory, (int)(Elements * 4 / sizeof(T))).ToArray();

        public override void Dispose() => NativeMemory.Free(_memory);
    }
}
