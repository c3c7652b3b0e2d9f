using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace ParaCuda.Perf;

/// <summary>
/// One measured item. Rate is GFLOP/s for compute-bound work and GB/s for memory-bound work
/// (<see cref="Unit"/> says which); Fraction is the rate over the matching ceiling measured in the
/// same run; Ratio compares against <see cref="Reference"/>, also measured in the same run.
/// </summary>
public sealed record Result(
    string Suite,
    string Name,
    string Shape,
    string DType,
    Stats Time,
    double Work,
    string Unit,
    double Rate,
    double? Fraction,
    string? Reference = null,
    double? Ratio = null);

/// <summary>Everything one invocation measured, with what it ran on.</summary>
public sealed record Run(
    string Date,
    string Device,
    string Machine,
    string Runtime,
    IReadOnlyDictionary<string, double> Ceilings,
    IReadOnlyList<Result> Results,
    string Command,
    IReadOnlyDictionary<string, string> Notes);

public static class Report
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void WriteJson(Run run, string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        File.WriteAllText(path, JsonSerializer.Serialize(run, s_json));
    }

    public static void PrintTable(Run run)
    {
        var table = new Table().Title($"[bold]{Markup.Escape(run.Device)}[/] · {Markup.Escape(run.Machine)}");
        foreach (var column in new[] { "suite", "item", "shape", "median ms", "p10–p90 ms", "rate", "of ceiling", "vs reference" })
        {
            table.AddColumn(column);
        }

        foreach (var r in run.Results)
        {
            table.AddRow(
                r.Suite,
                Markup.Escape(r.Name),
                Markup.Escape(r.Shape),
                F(r.Time.MedianMs, 3),
                $"{F(r.Time.P10Ms, 3)}–{F(r.Time.P90Ms, 3)}",
                $"{F(r.Rate, 1)} {r.Unit}",
                r.Fraction is { } f ? $"{f:P0}" : "",
                r.Ratio is { } x ? $"{x:F2}× {Markup.Escape(r.Reference ?? "")}" : "");
        }

        AnsiConsole.Write(table);
        var ceilings = string.Join(", ", run.Ceilings.Select(c => $"{c.Key} {F(c.Value, 1)}"));
        AnsiConsole.MarkupLine($"[grey]ceilings measured in this run: {Markup.Escape(ceilings)}[/]");
        foreach (var (what, note) in run.Notes)
        {
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(what)}: {Markup.Escape(note)}[/]");
        }
    }

    private static string F(double v, int digits) => v.ToString($"F{digits}", CultureInfo.InvariantCulture);
}
