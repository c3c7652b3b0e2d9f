using System.CommandLine;

namespace ParaCuda.Cli;

/// <summary>Options several commands share, and a helper for options with a fixed set of values.</summary>
internal static class Options
{
    public static Option<string> Dataset { get; } = Choice("--dataset", "Dataset to train or evaluate on", "fashion-mnist", [.. Setup.DatasetNames]);

    public static Option<string?> Data { get; } = new("--data") { Description = "Folder holding the dataset files (default: its standard location)" };

    public static Option<string> Device { get; } = new("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };

    public static Option<T> Choice<T>(string name, string description, T defaultValue, string[] values)
    {
        var option = new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(values);
        return option;
    }
}
