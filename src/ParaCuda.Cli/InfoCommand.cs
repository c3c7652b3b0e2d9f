using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Nn;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary><c>paracuda info</c>: what this build and this machine offer.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Show the build, the devices and the presets");
        command.SetAction(_ => Cli.Run(Info));
        return command;
    }

    private static int Info()
    {
        var version = typeof(InfoCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("paracuda", Markup.Escape(version));
        grid.AddRow("runtime", Markup.Escape($"{RuntimeInformation.FrameworkDescription} on {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture}"));
        grid.AddRow("cpu backend", Markup.Escape(CpuBackend.Instance.Description));
        grid.AddRow("cuda", Markup.Escape(CudaDriver.IsAvailable ? "driver and device present; this build has no CUDA backend yet" : CudaDriver.UnavailableReason!));
        grid.AddRow("nvrtc", Markup.Escape(Nvrtc.IsAvailable ? $"{Nvrtc.Version.Major}.{Nvrtc.Version.Minor}, targets sm_{string.Join(", sm_", Nvrtc.SupportedArchitectures)}" : Nvrtc.UnavailableReason!));
        var kernels = KernelSources.Load();
        grid.AddRow("kernels", Markup.Escape($"{kernels.Kernels.Count} files ({kernels.Origin}; {KernelSources.DirectoryVariable}=DIR to use a folder)"));
        AnsiConsole.Write(grid);

        var presets = new Table().Title("presets (Fashion-MNIST: 1 channel, 10 classes)").AddColumns("name", "model", "parameters", "description");
        foreach (var preset in Presets.All)
        {
            var config = Presets.ForData(preset.Model, 28, 1, 10);
            using var model = ModelFactory.Create(config, ModuleInit.Create(0));
            presets.AddRow(preset.Name, Markup.Escape($"{config.Branches}×{config.BranchDepth} blocks, dim {config.Dim}, {config.ImageSize}px/{config.Patch}"), model.ParameterCount().ToString("N0", System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(preset.Description));
        }

        AnsiConsole.Write(presets);
        return 0;
    }
}
