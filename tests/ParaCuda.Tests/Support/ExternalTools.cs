using System.Diagnostics;

namespace ParaCuda.Tests.Support;

/// <summary>
/// The programs the embedding tests drive: dotnet (to publish the C library and build a package consumer), gcc,
/// and a Python with PyTorch. A missing one skips its tests with the reason, unless
/// PARACUDA_REQUIRE_EMBEDDING=1 (as CI sets) turns the skip into a failure.
/// </summary>
internal static class ExternalTools
{
    public const string RequireVariable = "PARACUDA_REQUIRE_EMBEDDING";

    private static readonly Lazy<(string? Directory, string? Problem)> s_nativeLibrary = new(PublishNativeLibrary);

    /// <summary>Skips (or, when CI requires the tools, fails) with <paramref name="problem"/> when there is one.</summary>
    public static void Require(string? problem)
    {
        if (problem is null)
        {
            return;
        }

        if (Environment.GetEnvironmentVariable(RequireVariable) == "1")
        {
            Assert.Fail($"{RequireVariable}=1 but {problem}");
        }

        Assert.Ignore(problem);
    }

    /// <summary>The dotnet host running these tests.</summary>
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    /// <summary>A Python that imports torch and numpy (PARACUDA_PYTHON, python3, or Debian's /usr/bin/python3).</summary>
    public static string PythonWithTorch()
    {
        string?[] candidates = [Environment.GetEnvironmentVariable("PARACUDA_PYTHON"), "python3", "/usr/bin/python3"];
        foreach (var python in candidates.OfType<string>())
        {
            if (TryRun(python, ["-c", "import torch, numpy"], out _))
            {
                return python;
            }
        }

        Require("no Python with torch and numpy (Debian: apt-get install python3-torch; or set PARACUDA_PYTHON)");
        throw new UnreachableException();
    }

    /// <summary>gcc, for the C example.</summary>
    public static string Gcc()
    {
        Require(TryRun("gcc", ["--version"], out _) ? null : "no gcc to compile the C example (apt-get install gcc)");
        return "gcc";
    }

    /// <summary>The folder holding libparacuda.so and paracuda.h, published once per test run.</summary>
    public static string NativeLibrary()
    {
        var (directory, problem) = s_nativeLibrary.Value;
        Require(problem);
        return directory!;
    }

    /// <summary>Runs a program to its end (10 minutes at most); its exit code, stdout and stderr.</summary>
    public static (int Code, string Stdout, string Stderr) Run(string program, IEnumerable<string> args, string? directory = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory ?? Environment.CurrentDirectory };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)} ran for 10 minutes");
        }

        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static bool TryRun(string program, string[] args, out string output)
    {
        try
        {
            var (code, stdout, stderr) = Run(program, args);
            output = stdout + stderr;
            return code == 0;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output = e.Message;
            return false;
        }
    }

    private static (string?, string?) PublishNativeLibrary()
    {
        var output = Path.Combine(AppContext.BaseDirectory, "libparacuda");
        var project = Path.Combine(Repository.Root, "native", "libparacuda");
        var (code, stdout, stderr) = Run(Dotnet, ["publish", project, "-c", "Release", "-o", output, "-nologo", "--disable-build-servers", "-nodeReuse:false"]);
        return code == 0 && File.Exists(Path.Combine(output, "libparacuda.so"))
            ? (output, null)
            : (null, $"dotnet publish native/libparacuda failed (NativeAOT needs gcc or clang and zlib1g-dev): {string.Join('\n', (stdout + stderr).Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)).Take(5))}");
    }
}
