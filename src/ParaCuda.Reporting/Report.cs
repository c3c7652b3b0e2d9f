using System.Globalization;
using System.Text;
using System.Text.Json;
using ParaCuda.Compression;
using ParaCuda.Continual;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Training;

namespace ParaCuda.Reporting;

/// <summary>A training run found on disk: its folder, its metrics and (when a checkpoint is there) its model.</summary>
public sealed record RunSummary(string Name, string Directory, IReadOnlyList<EpochMetrics> Epochs, ModelConfig? Config, long Parameters);

/// <summary>
/// Turns what paracuda wrote (training runs' <c>metrics.jsonl</c>, compression reports, <c>continual.json</c>)
/// into <c>REPORT.md</c> with PNG figures: accuracy against epochs and against wall-clock time, accuracy against
/// the number of branches k, the compression trade-off and the continual-learning bars.
/// </summary>
public static class Report
{
    public const string FileName = "REPORT.md";

    /// <summary>Reads every input (run folders, folders holding runs, or report files), writes the report, returns its path.</summary>
    public static string Write(IReadOnlyList<string> inputs, string outDirectory)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var (runs, compressions, continual) = Discover(inputs);
        if (runs.Count + compressions.Count + continual.Count == 0)
        {
            throw new FileNotFoundException($"nothing to report: no metrics.jsonl, compression report or {ContinualReport.FileName} under {string.Join(", ", inputs)}");
        }

        Directory.CreateDirectory(outDirectory);
        var md = new StringBuilder();
        md.AppendLine("# ParaCuda report").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Generated {DateTime.Now:yyyy-MM-dd HH:mm} from: {string.Join(", ", inputs.Select(i => $"`{i}`"))}.").AppendLine();
        if (runs.Count > 0)
        {
            Runs(md, runs, outDirectory);
        }

        foreach (var (path, report) in compressions)
        {
            Compression(md, path, report, outDirectory);
        }

        foreach (var (path, report) in continual)
        {
            ContinualLearning(md, path, report, outDirectory);
        }

        var file = Path.Combine(outDirectory, FileName);
        File.WriteAllText(file, md.ToString());
        return file;
    }

    private static void Runs(StringBuilder md, IReadOnlyList<RunSummary> runs, string outDirectory)
    {
        md.AppendLine("## Training runs").AppendLine();
        md.AppendLine("| run | model | schedule | parameters | epochs | best val acc | test acc (last epoch) | test acc by k | wall clock | images/s |");
        md.AppendLine("|---|---|---|---:|---:|---:|---:|---|---:|---:|");
        foreach (var r in runs)
        {
            var last = r.Epochs[^1];
            var byK = string.Join(" · ", last.Prefixes.Select(p => Pct(p.TestAccuracy)));
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.Name} | {Describe(r.Config, last.Model)} | {last.Schedule} | {(r.Parameters > 0 ? r.Parameters.ToString("N0", CultureInfo.InvariantCulture) : "?")} | {last.Epoch} | {Pct(r.Epochs.Max(e => e.ValAccuracy))} | {Pct(last.TestAccuracy)} | {byK} | {last.ElapsedSeconds:F0} s | {r.Epochs.Average(e => e.ImagesPerSecond):N0} |");
        }

        md.AppendLine();
        Plots.Lines(Path.Combine(outDirectory, "accuracy_vs_epoch.png"), "test accuracy per epoch", "epoch", "test accuracy (%)",
            runs.Select(r => (r.Name, (IReadOnlyList<double>)r.Epochs.Select(e => (double)e.Epoch).ToList(), (IReadOnlyList<double>)r.Epochs.Select(e => e.TestAccuracy * 100).ToList())).ToList());
        Plots.Lines(Path.Combine(outDirectory, "accuracy_vs_time.png"), "test accuracy against wall-clock time", "seconds", "test accuracy (%)",
            runs.Select(r => (r.Name, (IReadOnlyList<double>)r.Epochs.Select(e => e.ElapsedSeconds).ToList(), (IReadOnlyList<double>)r.Epochs.Select(e => e.TestAccuracy * 100).ToList())).ToList());
        md.AppendLine("![test accuracy per epoch](accuracy_vs_epoch.png)").AppendLine();
        md.AppendLine("![test accuracy against wall-clock time](accuracy_vs_time.png)").AppendLine();

        var branched = runs.Where(r => r.Epochs[^1].Prefixes.Count > 1).ToList();
        if (branched.Count > 0)
        {
            Plots.Lines(Path.Combine(outDirectory, "accuracy_vs_k.png"), "test accuracy using the first k branches (last epoch)", "branches k", "test accuracy (%)",
                branched.Select(r => (r.Name, (IReadOnlyList<double>)r.Epochs[^1].Prefixes.Select(p => (double)p.K).ToList(), (IReadOnlyList<double>)r.Epochs[^1].Prefixes.Select(p => p.TestAccuracy * 100).ToList())).ToList());
            md.AppendLine("![test accuracy against k](accuracy_vs_k.png)").AppendLine();
        }
    }

    private static void Compression(StringBuilder md, string path, CompressionReport report, string outDirectory)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        md.AppendLine(CultureInfo.InvariantCulture, $"## Compression: {name}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Source `{report.Source}`, strategy {report.Strategy}, device {report.Device}. Kept branches {report.KeptBranches} (k = {report.KeptK}).");
        if (report.RefitEpochs > 0)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"Head re-fitted for {report.RefitEpochs} epochs: test accuracy {Pct(report.TestAccuracyBeforeRefit)} → {Pct(report.TestAccuracyAfterRefit)}.");
        }

        md.AppendLine();
        md.AppendLine("| k | branches | parameters | compression | val acc | test acc | latency (batch 1) | throughput |");
        md.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in report.Rows)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.K} | {r.Branches} | {r.Parameters:N0} | {r.CompressionRatio:F2}× | {Pct(r.ValAccuracy)} | {Pct(r.TestAccuracy)} | {r.LatencyMs:F2} ms | {r.ImagesPerSecond:N0} img/s |");
        }

        var png = $"compression_{Safe(name)}.png";
        Plots.Lines(Path.Combine(outDirectory, png), $"compression trade-off: {name}", "kept parameters", "test accuracy (%)",
            [(report.Strategy, report.Rows.Select(r => (double)r.Parameters).ToList(), report.Rows.Select(r => r.TestAccuracy * 100).ToList())]);
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"![compression trade-off]({png})").AppendLine();
    }

    private static void ContinualLearning(StringBuilder md, string path, ContinualReport report, string outDirectory)
    {
        var name = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(path))) ?? "continual";
        md.AppendLine(CultureInfo.InvariantCulture, $"## Continual learning ({report.Protocol}): {name}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Old classes {string.Join(",", report.OldClasses)}, new classes {string.Join(",", report.NewClasses)}; {report.EpochsPerPhase} epochs per phase; +{report.AddedBranches} branches, existing {(report.FreezeExisting ? "frozen" : "fine-tuned")}; replay {report.Replay} images. Forgetting = old-class accuracy after phase 1 minus after phase 2.").AppendLine();
        md.AppendLine("| method | old classes | new classes | all classes | forgetting | parameters | seconds |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in report.Rows)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {r.Method} | {Pct(r.OldAccuracy)} | {Pct(r.NewAccuracy)} | {Pct(r.AllAccuracy)} | {r.Forgetting * 100:F2} pt | {r.Parameters:N0} | {r.Seconds:F0} |");
        }

        var png = $"continual_{Safe(name)}.png";
        Plots.Bars(Path.Combine(outDirectory, png), $"class-incremental: {name}", "test accuracy (%)", report.Rows.Select(r => r.Method).ToList(), [
            ("old classes", report.Rows.Select(r => r.OldAccuracy * 100).ToList()),
            ("new classes", report.Rows.Select(r => r.NewAccuracy * 100).ToList()),
            ("all classes", report.Rows.Select(r => r.AllAccuracy * 100).ToList()),
        ]);
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"![continual learning]({png})").AppendLine();
    }

    /// <summary>Finds runs and reports under the inputs; runs inside a continual-learning protocol's folder belong to its table instead.</summary>
    private static (List<RunSummary> Runs, List<(string, CompressionReport)> Compressions, List<(string, ContinualReport)> Continual) Discover(IReadOnlyList<string> inputs)
    {
        var runs = new List<RunSummary>();
        var compressions = new List<(string, CompressionReport)>();
        var continual = new List<(string, ContinualReport)>();
        foreach (var input in inputs)
        {
            if (!File.Exists(input) && !Directory.Exists(input))
            {
                throw new FileNotFoundException($"{input} does not exist", input);
            }

            var files = File.Exists(input) ? [input] : Directory.EnumerateFiles(input, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
            var protocolFolders = files.Where(f => Path.GetFileName(f) == ContinualReport.FileName).Select(f => Path.GetDirectoryName(Path.GetFullPath(f))! + Path.DirectorySeparatorChar).ToList();
            foreach (var file in files)
            {
                var name = Path.GetFileName(file);
                if (name == Trainer.MetricsFile && !protocolFolders.Any(p => Path.GetFullPath(file).StartsWith(p, StringComparison.Ordinal)))
                {
                    runs.Add(ReadRun(file));
                }
                else if (name == ContinualReport.FileName)
                {
                    continual.Add((file, Parse(file, ContinualReport.FromJson)));
                }
                else if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && LooksLikeCompression(file))
                {
                    compressions.Add((file, Parse(file, CompressionReport.FromJson)));
                }
            }
        }

        return (runs, compressions, continual);
    }

    private static RunSummary ReadRun(string metricsPath)
    {
        var epochs = EpochMetrics.ReadFile(metricsPath);
        if (epochs.Count == 0)
        {
            throw new InvalidDataException($"{metricsPath} holds no finished epoch");
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(metricsPath))!;
        var configFile = Path.Combine(directory, Trainer.ConfigFile);
        var checkpoint = new[] { Trainer.BestFile, Trainer.LastFile }.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);
        var config = File.Exists(configFile) ? Parse(configFile, ModelConfig.FromJson) : checkpoint is null ? null : Checkpoint.ReadConfig(checkpoint);
        long parameters = 0;
        if (config is not null)
        {
            using var model = ModelFactory.Create(config, ModuleInit.Create(0));
            parameters = model.ParameterCount();
        }

        return new RunSummary(Path.GetFileName(directory), directory, epochs, config, parameters);
    }

    private static bool LooksLikeCompression(string file)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("kept_branches", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static T Parse<T>(string file, Func<string, T> parse)
    {
        try
        {
            return parse(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: not a paracuda report ({e.Message})", e);
        }
    }

    private static string Describe(ModelConfig? c, string model) => c is null
        ? model
        : c.Kind == ModelKind.ParaFormer ? $"ParaFormer {c.Branches}×{c.BranchDepth}, d{c.Dim}, p{c.Patch}" : $"ViT depth {c.Depth}, d{c.Dim}, p{c.Patch}";

    private static string Pct(double fraction) => double.IsNaN(fraction) ? "–" : (fraction * 100).ToString("F2", CultureInfo.InvariantCulture) + " %";

    private static string Safe(string name) => string.Concat(name.Select(ch => char.IsLetterOrDigit(ch) || ch is '-' or '_' ? ch : '_'));
}
