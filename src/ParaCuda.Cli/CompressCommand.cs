using System.CommandLine;
using System.Globalization;
using ParaCuda.Compression;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Reporting;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>
/// <c>paracuda compress</c>: keeps a subset of a trained ParaFormer's branches, prints and saves the trade-off
/// for every size k, and writes the smaller model as an ordinary checkpoint.
/// </summary>
internal static class CompressCommand
{
    private static readonly Option<string> s_checkpoint = new("--checkpoint") { Description = "A ParaFormer checkpoint written by paracuda train", Required = true };
    private static readonly Option<string> s_out = new("--out") { Description = "Where to write the compressed checkpoint (.safetensors); the trade-off goes beside it as .json and .png", Required = true };
    private static readonly Option<int?> s_keep = new Option<int?>("--keep") { Description = "Keep this many branches" }.Positive();
    private static readonly Option<double?> s_drop = new Option<double?>("--target-accuracy-drop") { Description = "Keep the fewest branches whose validation accuracy is within this many percentage points of the full model's" }.NotNegative();
    private static readonly Option<string> s_strategy = Options.Choice("--strategy", "greedy (subset search on the validation split, never worse there than first-k) or first-k", "greedy", [.. BranchSelection.Strategies]);
    private static readonly Option<int> s_refitEpochs = new Option<int>("--refit-epochs") { Description = "Re-fit the shared head on the kept branches for this many epochs (0: keep it as trained)" }.NotNegative();
    private static readonly Option<int> s_seed = new("--seed") { Description = "Seed of the validation split (use the training run's) and of the re-fit", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> s_batch = new Option<int>("--batch") { Description = "Throughput batch size", DefaultValueFactory = _ => 256 }.Positive();

    public static Command Create()
    {
        var command = new Command("compress", "Keep a subset of a ParaFormer's branches: trade-off table for every k and a smaller checkpoint")
        {
            s_checkpoint, s_out, s_keep, s_drop, s_strategy, s_refitEpochs, s_seed, s_batch, Options.Dataset, Options.Data,
        };
        foreach (var option in Options.Placement)
        {
            command.Options.Add(option);
        }

        command.SetAction(parse => Cli.Run(() => Compress(parse)));
        return command;
    }

    private static int Compress(ParseResult parse)
    {
        var (keep, drop) = (parse.GetValue(s_keep), parse.GetValue(s_drop));
        if (keep is null == drop is null)
        {
            throw new UserError("give exactly one of --keep K and --target-accuracy-drop POINTS");
        }

        if (drop > 100)
        {
            throw new UserError($"--target-accuracy-drop is in percentage points, 0..100; got {drop}");
        }

        var source = Setup.CheckpointFile(parse.GetValue(s_checkpoint)!, "--checkpoint");
        var outPath = Setup.NewCheckpointFile(parse.GetValue(s_out)!, "--out");

        var config = Checkpoint.ReadConfig(source);
        if (config.Kind != ModelKind.ParaFormer)
        {
            throw new UserError($"{source} holds a {config.Kind}; only a ParaFormer has branches to select");
        }

        if (keep is < 1 || keep > config.Branches)
        {
            throw new UserError($"--keep must be in 1..{config.Branches} (the checkpoint's branches), got {keep}");
        }

        using var placement = Setup.Placement(parse, Cli.Notice);
        var dataset = parse.GetValue(Options.Dataset)!;
        var seed = parse.GetValue(s_seed);
        var (trainSet, test) = Setup.Load(dataset, parse.GetValue(Options.Data), seed);
        Setup.CheckFits(config, test, $"{dataset} test set");
        var (train, validation, _, _, eval) = TrainData.Split(trainSet, test, config, new TrainOptions { Seed = seed });
        MemoryBudget.Check($"compressing {config.ParameterCount():N0} parameters, timed on batches of {parse.GetValue(s_batch)} (lower --batch)", MemoryBudget.ForInference(config, Math.Max(parse.GetValue(s_batch), 1000)), placement);
        using var model = (ParaFormer)Checkpoint.LoadModel(source, placement.Main, placement.BranchContexts(config.Branches), placement.BatchedBranches);

        var strategy = parse.GetValue(s_strategy)!;
        AnsiConsole.WriteLine($"{source}: {Count.Of(config.Branches, "branch", "branches")}, {model.ParameterCount():N0} parameters; scoring branch subsets ({strategy}) on {validation.Count:N0} validation images");
        var valFeatures = BranchFeatures.Extract(model, validation, eval, 1000);
        var testFeatures = BranchFeatures.Extract(model, test, eval, 1000);
        var subsets = BranchSelection.Select(strategy, model.Head, valFeatures);

        var image = new float[config.Channels * config.ImageSize * config.ImageSize];
        var random = new SplitMix64(0);
        eval.Apply(test.Image(0), test.Channels, test.Height, test.Width, image, ref random);
        var total = model.ParameterCount();
        var rows = new List<TradeOffRow>();
        foreach (var subset in subsets)
        {
            using var kept = Compressor.Keep(model, subset.Branches);
            var testScore = BranchSelection.Score(model.Head, testFeatures, subset.Branches);
            var (latency, throughput) = Compressor.Time(kept, image, parse.GetValue(s_batch));
            var parameters = kept.ParameterCount();
            rows.Add(new TradeOffRow(subset.Branches.Count, subset.Describe(), parameters, (double)total / parameters, subset.Accuracy, testScore.Accuracy, latency, throughput));
        }

        var chosen = keep is { } k ? subsets[k - 1] : subsets.First(s => s.Accuracy >= subsets[^1].Accuracy - (drop!.Value / 100));
        var refitEpochs = parse.GetValue(s_refitEpochs);
        using var result = Compressor.Keep(model, chosen.Branches);
        var before = rows[chosen.Branches.Count - 1].TestAccuracy;
        var after = before;
        if (refitEpochs > 0)
        {
            var trainFeatures = BranchFeatures.Extract(model, train, eval, 1000);
            Compressor.RefitHead(result, trainFeatures, chosen.Branches, refitEpochs, 1e-3f, 256, seed);
            after = BranchSelection.Score(result.Head, testFeatures, chosen.Branches).Accuracy;
        }

        Checkpoint.SaveModel(outPath, result, new Dictionary<string, string>
        {
            ["paracuda.compressed_from"] = Path.GetFullPath(source),
            ["paracuda.kept_branches"] = chosen.Describe(),
        });
        var report = new CompressionReport(Path.GetFullPath(source), strategy, placement.Describe(), total, rows, chosen.Branches.Count, chosen.Describe(), refitEpochs, before, after);
        var jsonPath = Path.ChangeExtension(outPath, ".json");
        File.WriteAllText(jsonPath, report.ToJson());
        var plotPath = Path.ChangeExtension(outPath, ".png");
        Plots.Lines(plotPath, "compression trade-off", "kept parameters", "test accuracy (%)", [("test accuracy", rows.Select(r => (double)r.Parameters).ToList(), rows.Select(r => r.TestAccuracy * 100).ToList())]);

        Print(report);
        var (sourceBytes, outBytes) = (new FileInfo(source).Length, new FileInfo(outPath).Length);
        AnsiConsole.WriteLine(
            $"kept branches {chosen.Describe()} of {config.Branches}: compression {(double)total / result.ParameterCount():F2}×, test accuracy {before:P2}" +
            (refitEpochs > 0 ? $" → {after:P2} after re-fitting the head for {Count.Of(refitEpochs, "epoch")}" : "") +
            $". Wrote {outPath} ({outBytes / 1024.0:N0} KiB; source {sourceBytes / 1024.0:N0} KiB), {jsonPath}, {plotPath}.");
        return 0;
    }

    private static void Print(CompressionReport report)
    {
        var table = new Table().Title(Markup.Escape($"compression trade-off ({report.Strategy}, {report.Device})"))
            .AddColumns("k", "branches", "parameters", "compression", "val acc", "test acc", "latency b=1", "throughput");
        foreach (var r in report.Rows)
        {
            table.AddRow(
                Markup.Escape(r.K.ToString(CultureInfo.InvariantCulture)),
                Markup.Escape(r.Branches),
                r.Parameters.ToString("N0", CultureInfo.InvariantCulture),
                r.CompressionRatio.ToString("F2", CultureInfo.InvariantCulture) + "×",
                (r.ValAccuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %",
                (r.TestAccuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %",
                r.LatencyMs.ToString("F2", CultureInfo.InvariantCulture) + " ms",
                r.ImagesPerSecond.ToString("N0", CultureInfo.InvariantCulture) + " img/s");
        }

        AnsiConsole.Write(table);
    }
}
