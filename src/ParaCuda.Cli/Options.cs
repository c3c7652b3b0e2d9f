using System.CommandLine;

namespace ParaCuda.Cli;

/// <summary>Options several commands share, and a helper for options with a fixed set of values.</summary>
internal static class Options
{
    public static Option<string> Dataset { get; } = Choice("--dataset", "Dataset to train or evaluate on", "fashion-mnist", [.. Setup.DatasetNames]);

    public static Option<string?> Data { get; } = new("--data") { Description = "Folder holding the dataset files (default: its standard location)" };

    public static Option<string> Device { get; } = new("--device")
    {
        Description = "auto (a GPU if there is one, else the CPU), cpu, cuda, cuda:N, or emu: the emulated CUDA device (the CUDA code run on the CPU, slowly, to check kernels without a GPU)",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string?> Devices { get; } = new("--devices") { Description = "GPUs (or emulated devices) to spread the branches over, round-robin, e.g. 0,1; 0,0 runs the multi-device path on one card" };

    public static Option<string?> Precision { get; } = Choice<string?>("--precision", "GEMMs on the GPU: tf32 (tensor cores, the default where the GPU has them) or fp32 (strict)", null, ["fp32", "tf32"]);

    public static Option<string?> BranchExec { get; } = Choice<string?>("--branch-exec", "How branches run on a GPU: streams (each on its own stream, the default) or serial (one stream per device)", null, ["serial", "streams"]);

    /// <summary>The options that say where a command runs.</summary>
    public static IReadOnlyList<Option> Placement { get; } = [Device, Devices, Precision, BranchExec];

    public static Option<T> Choice<T>(string name, string description, T defaultValue, string[] values)
    {
        var option = new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(values);
        return option;
    }
}
