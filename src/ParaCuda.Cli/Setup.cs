using System.CommandLine;
using System.Globalization;
using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Cli;

/// <summary>What every command resolves the same way: the device, the datasets, the model config.</summary>
internal static class Setup
{
    public const string SyntheticName = "synthetic";

    public static IReadOnlyList<string> DatasetNames { get; } = [.. Datasets.Names, SyntheticName];

    /// <summary>
    /// Where the command runs, from --device, --devices, --precision, --linear-kernels and --branch-exec: "auto" takes a GPU when
    /// the driver finds one, else the CPU, with a one-line notice either way. Every inconsistency is a user error.
    /// </summary>
    public static Placement Placement(ParseResult parse, Action<string> notice)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var device = parse.GetValue(Options.Device)!.Trim().ToLowerInvariant();
        var devicesText = parse.GetValue(Options.Devices);
        var precision = parse.GetValue(Options.Precision) is { } p ? Enum.Parse<GemmPrecision>(p, ignoreCase: true) : (GemmPrecision?)null;
        var givenExecution = parse.GetValue(Options.BranchExec) is { } e ? Enum.Parse<BranchExecution>(e, ignoreCase: true) : (BranchExecution?)null;
        var linearKernels = parse.GetValue(Options.LinearKernels) is { } k ? Enum.Parse<LinearKernels>(k.Replace("-", "", StringComparison.Ordinal), ignoreCase: true) : (LinearKernels?)null;
        var graphs = parse.GetResult(Options.Graphs) is { Implicit: false } && parse.GetValue(Options.Graphs) == "on";
        if (device == "auto")
        {
            device = CudaDriver.IsAvailable ? "cuda" : "cpu";
            notice(CudaDriver.IsAvailable ? $"device: auto picked the GPU ({CudaDriver.Name(0)})" : $"device: {CudaDriver.UnavailableReason}; using the CPU");
        }

        if (device == "cpu")
        {
            var cudaOnly = new[] { (Options.Devices, devicesText is not null), (Options.Precision, precision is not null), (Options.LinearKernels, linearKernels is not null), (Options.BranchExec, givenExecution is not null), ((Option)Options.Graphs, graphs) }.Where(o => o.Item2).Select(o => o.Item1.Name).ToList();
            return cudaOnly.Count > 0
                ? throw new UserError($"{string.Join(", ", cudaOnly)} appl{(cudaOnly.Count == 1 ? "ies" : "y")} to CUDA devices; the CPU backend runs in float32, one branch after another")
                : ParaCuda.Backends.Placement.Cpu;
        }

        var emulated = device == "emu";
        int? named = null;
        if (!emulated)
        {
            try
            {
                var parsed = Device.Parse(device);
                named = parsed.Kind == DeviceKind.Cuda ? parsed.Index : throw new FormatException($"'{device}' is not a device");
            }
            catch (FormatException error)
            {
                throw new UserError($"--device: {error.Message} (or auto, or emu)");
            }
        }

        var devices = devicesText is null ? [named ?? 0] : ParseDevices(devicesText);
        if (named is { } index && devicesText is not null && !devices.Contains(index))
        {
            throw new UserError($"--device {device} and --devices {devicesText} disagree; give --device cuda with --devices");
        }

        if (!emulated && !CudaDriver.IsAvailable)
        {
            throw new UserError($"--device {device}: {CudaDriver.UnavailableReason}; use --device cpu, or --device emu to run the CUDA code on the emulated device");
        }

        if (emulated && EmulatedGpu.UnavailableReason is { } reason)
        {
            throw new UserError($"--device emu: {reason}");
        }

        // Batched measured fastest on one device (perf/NOTES.md); it cannot spread branches over several.
        var execution = givenExecution ?? (devices.Length == 1 ? BranchExecution.Batched : BranchExecution.Streams);
        if (graphs && execution == BranchExecution.Streams)
        {
            throw new UserError("--graphs on captures one stream, and --branch-exec streams puts each branch on a stream of its own: use --branch-exec batched or serial with graphs");
        }

        try
        {
            return ParaCuda.Backends.Placement.Cuda(devices, emulated, execution, precision, linearKernels ?? LinearKernels.Library);
        }
        catch (Exception error) when (error is CudaException or ArgumentException)
        {
            throw new UserError($"--device {device}: {error.Message}");
        }
    }

    private static int[] ParseDevices(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var devices = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out devices[i]))
            {
                throw new UserError($"--devices: '{parts[i]}' is not a device number (expected e.g. 0,1 or 0,0)");
            }
        }

        return devices;
    }

    /// <summary>The checkpoint file an option names: a missing file or a folder is a user error that says which.</summary>
    public static string CheckpointFile(string path, string option)
    {
        if (Directory.Exists(path))
        {
            throw new UserError($"{option}: {path} is a folder; give a checkpoint file, such as {Path.Combine(path, Trainer.BestFile)}");
        }

        return File.Exists(path) ? path : throw new UserError($"{option}: {path} does not exist");
    }

    /// <summary>A checkpoint file to create: a .safetensors name not yet taken (a command never overwrites a checkpoint).</summary>
    public static string NewCheckpointFile(string path, string option)
    {
        var full = Path.GetFullPath(path);
        return !full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? throw new UserError($"{option} must name a .safetensors file, got {full}")
            : File.Exists(full) || Directory.Exists(full) ? throw new UserError($"{full} already exists; choose another {option} (checkpoints are never overwritten)")
            : full;
    }

    /// <summary>Training and test sets of a named dataset (synthetic data is generated, the rest read from disk).</summary>
    public static (ImageDataset Train, ImageDataset Test) Load(string dataset, string? directory, int seed)
    {
        if (dataset.Equals(SyntheticName, StringComparison.OrdinalIgnoreCase))
        {
            // One set split in two: the class patterns come from the seed, so both parts must share it.
            var (train, test) = Synthetic.Create(7000, 10, 1, 28, seed).Split(1.0 / 7, seed);
            return (train, test);
        }

        return Datasets.Load(dataset, directory);
    }

    /// <summary>The test set of a named dataset alone (the training files are not read).</summary>
    public static ImageDataset LoadTest(string dataset, string? directory, int seed) =>
        dataset.Equals(SyntheticName, StringComparison.OrdinalIgnoreCase) ? Load(dataset, directory, seed).Test : Datasets.LoadTest(dataset, directory);

    /// <summary>Checks that a model built for <paramref name="config"/> can read <paramref name="data"/>.</summary>
    public static void CheckFits(ModelConfig config, ImageDataset data, string what)
    {
        if (data.Channels != config.Channels)
        {
            throw new UserError($"{what} has {data.Channels}-channel images but the model expects {config.Channels}");
        }

        if (data.Classes != config.Classes)
        {
            throw new UserError($"{what} has {data.Classes} classes but the model classifies {config.Classes}");
        }
    }

    /// <summary>The reference normalisation, resizing to the model's input size (and augmenting when training).</summary>
    public static Transform Transform(ModelConfig config, bool train) => Data.Transform.Reference(config.Channels, config.ImageSize, train);
}
