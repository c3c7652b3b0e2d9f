using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Nn;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary><c>paracuda info</c>: what this build and this machine offer, and a self-check of the CUDA device.</summary>
internal static class InfoCommand
{
    private static readonly Option<bool> s_noCheck = new("--no-check") { Description = "Skip the self-check of the CUDA device" };

    public static Command Create()
    {
        var command = new Command("info", "Show the build, the devices and the presets; on a GPU (or with --device emu), check every op against the CPU")
        {
            Options.Device, Options.Precision, s_noCheck,
        };
        command.SetAction(parse => Cli.Run(() => Info(parse)));
        return command;
    }

    private static int Info(ParseResult parse)
    {
        var version = typeof(InfoCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string name, string value) => grid.AddRow(name, Markup.Escape(value));
        Row("paracuda", version);
        Row("runtime", $"{RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture}");
        Row("cpu backend", CpuBackend.Instance.Description);
        if (CudaDriver.IsAvailable)
        {
            var (major, minor) = CudaDriver.Version;
            Row("cuda", $"driver for CUDA {major}.{minor}, {CudaDriver.DeviceCount} GPU(s)");
            for (var d = 0; d < CudaDriver.DeviceCount; d++)
            {
                Row($"  gpu {d}", string.Create(
                    CultureInfo.InvariantCulture,
                    $"{CudaDriver.Name(d)}: sm_{CudaDriver.Attribute(d, DeviceProperty.ComputeCapabilityMajor)}{CudaDriver.Attribute(d, DeviceProperty.ComputeCapabilityMinor)}, {CudaDriver.Attribute(d, DeviceProperty.MultiprocessorCount)} SMs, {CudaDriver.TotalMemory(d) / (double)(1L << 30):F1} GiB"));
            }
        }
        else
        {
            Row("cuda", CudaDriver.UnavailableReason!);
        }

        Row("nvrtc", Nvrtc.IsAvailable ? $"{Nvrtc.Version.Major}.{Nvrtc.Version.Minor}, targets sm_{string.Join(", sm_", Nvrtc.SupportedArchitectures)}" : Nvrtc.UnavailableReason!);
        Row("cublas", Cublas.IsAvailable ? "loaded" : Cublas.UnavailableReason!);
        Row("emulated gpu", EmulatedGpu.UnavailableReason ?? "available: --device emu runs the CUDA backend on the CPU");
        var kernels = KernelSources.Load();
        Row("kernels", $"{kernels.Kernels.Count} files ({kernels.Origin}; {KernelSources.DirectoryVariable}=DIR to use a folder)");
        Row("kernel cache", $"{KernelCache.DefaultDirectory} (cubin, PTX); {Path.Combine(KernelCache.CacheRoot, "emulator")} (emulated)");
        AnsiConsole.Write(grid);

        var passed = parse.GetValue(s_noCheck) || Check(parse);

        var presets = new Table().Title("presets (Fashion-MNIST: 1 channel, 10 classes)").AddColumns("name", "model", "parameters", "description");
        foreach (var preset in Presets.All)
        {
            var config = Presets.ForData(preset.Model, 28, 1, 10);
            using var model = ModelFactory.Create(config, ModuleInit.Create(0));
            presets.AddRow(preset.Name, Markup.Escape($"{config.Branches}×{Count.Of(config.BranchDepth, "block")}, dim {config.Dim}, {config.ImageSize}px/{config.Patch}"), model.ParameterCount().ToString("N0", CultureInfo.InvariantCulture), Markup.Escape(preset.Description));
        }

        AnsiConsole.Write(presets);
        return passed ? 0 : Cli.CheckFailedCode;
    }

    /// <summary>The self-check of the device --device names (auto: the GPU when there is one); true when every op passed or there is no CUDA device to check.</summary>
    private static bool Check(ParseResult parse)
    {
        using var placement = Setup.Placement(parse, _ => { });
        if (placement.Backends[0] is not CudaBackend backend)
        {
            Cli.Notice("self-check: no GPU here (paracuda info --device emu checks the CUDA code on the emulated device)");
            return true;
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var results = SelfCheck.Run(backend);
        var table = new Table()
            .Title(Markup.Escape($"self-check of {backend.Description}, GEMMs by {backend.BlasDescription}: every op against the CPU ({clock.Elapsed.TotalSeconds:F1} s)"))
            .AddColumns("ops", "result", "relative error", "bound");
        foreach (var r in results)
        {
            table.AddRow(
                Markup.Escape(r.Ops),
                r.Passed ? "[green]pass[/]" : "[red]FAIL[/]",
                r.Error.ToString("E1", CultureInfo.InvariantCulture),
                r.Tolerance.ToString("E0", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        return results.All(r => r.Passed);
    }
}
