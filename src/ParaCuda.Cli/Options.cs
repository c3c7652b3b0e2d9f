using System.CommandLine;
using System.Globalization;

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

    public static Option<string?> Precision { get; } = Choice<string?>("--precision", "Products on the GPU (GEMMs, attention): tf32 (tensor cores, the default where the GPU has them), bf16 (mixed precision: bf16 activations and tensor-core products, twice TF32's rate, about 4e-3 relative; float32 weights, optimizer, LayerNorm and loss) or fp32 (strict)", null, ["fp32", "tf32", "bf16"]);

    public static Option<string?> LinearKernels { get; } = Choice<string?>("--linear-kernels", "Linear layers' forward and the MLP's backward on the GPU: library (cuBLAS and our element-wise kernels, the default), hand-written (our tensor-core kernels with bias, GELU or dropout in their epilogues; TF32 or bf16 precision) or fastest (per shape, whichever ran faster when first timed)", null, ["library", "hand-written", "fastest"]);

    public static Option<string?> BranchExec { get; } = Choice<string?>("--branch-exec", "How branches run on a GPU: batched (the branches of a prefix as one batch: every op launched once for all of them; the default on one device, where it measured fastest), streams (each on its own stream; the default over several devices) or serial (one stream per device)", null, ["serial", "streams", "batched"]);

    /// <summary>Commands that train or predict: CUDA graphs on or off.</summary>
    public static Option<string> Graphs { get; } = Choice("--graphs", "on: capture each kind of training step (and the inference forward) as a CUDA graph once and replay it, one launch instead of hundreds (a GPU, with --branch-exec batched or serial); off: issue each kernel", "off", ["on", "off"]);

    /// <summary>Every command: how many threads the engine may use on the CPU (results do not depend on it).</summary>
    public static Option<int?> Threads { get; } = new Option<int?>("--threads") { Description = "CPU threads the engine may use (default: one per core)", Recursive = true }.Positive();

    /// <summary>The options that say where a command runs.</summary>
    public static IReadOnlyList<Option> Placement { get; } = [Device, Devices, Precision, LinearKernels, BranchExec];

    /// <summary>Checks at parse time, before any work, that a given number is at least one (a count, a size).</summary>
    public static Option<T> Positive<T>(this Option<T> option) => Check(option, v => v >= 1 || (v > 0 && !IsWhole<T>()), IsWhole<T>() ? "must be at least 1" : "must be a positive number");

    /// <summary>Checks at parse time that a given number is zero or more.</summary>
    public static Option<T> NotNegative<T>(this Option<T> option) => Check(option, v => v >= 0, "cannot be negative");

    /// <summary>Checks at parse time that a given number is a fraction in [0, 1).</summary>
    public static Option<T> Fraction<T>(this Option<T> option) => Check(option, v => v is >= 0 and < 1, "must be in [0, 1)");

    public static Option<T> Choice<T>(string name, string description, T defaultValue, string[] values)
    {
        var option = new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(values);
        return option;
    }

    private static bool IsWhole<T>() => (Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T)) is var t && (t == typeof(int) || t == typeof(long));

    private static Option<T> Check<T>(Option<T> option, Func<double, bool> valid, string rule)
    {
        option.Validators.Add(result =>
        {
            if (result.Implicit)
            {
                return;
            }

            T? value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                // Not a number at all: the parser reports that itself.
                return;
            }

            if (value is null)
            {
                return;
            }

            var number = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            var text = Convert.ToString(value, CultureInfo.InvariantCulture);
            if (!double.IsFinite(number))
            {
                result.AddError($"{option.Name} must be a finite number, got {text}");
            }
            else if (!valid(number))
            {
                result.AddError($"{option.Name} {rule}, got {text}");
            }
        });
        return option;
    }
}
