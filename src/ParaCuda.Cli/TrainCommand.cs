using System.CommandLine;
using System.Globalization;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Reporting;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary><c>paracuda train</c>: builds the model a preset (plus overrides) describes and trains it.</summary>
internal static class TrainCommand
{
    public const string RunsDirectory = "runs";

    private static readonly Option<string?> s_out = new("--out") { Description = $"Output folder (default: a new folder under {RunsDirectory}/)" };
    private static readonly Option<bool> s_resume = new("--resume") { Description = $"Continue the run in --out (default: the newest under {RunsDirectory}/) from its last checkpoint" };

    public static Command Create()
    {
        var command = new Command("train", "Train a ParaFormer (or ViT baseline) with metrics, curves and checkpoints in an output folder")
        {
            Options.Dataset, Options.Data, s_out, s_resume,
        };
        foreach (var option in Options.Placement.Concat(RunOptions.All))
        {
            command.Options.Add(option);
        }

        command.SetAction(parse => Cli.Run(() => Train(parse)));
        return command;
    }

    private static int Train(ParseResult parse)
    {
        var preset = Presets.Get(parse.GetValue(RunOptions.PresetName)!);
        var seed = parse.GetValue(RunOptions.Seed);
        var datasetName = parse.GetValue(Options.Dataset)!;
        using var placement = Setup.Placement(parse, Cli.Notice);
        var (trainSet, test) = Setup.Load(datasetName, parse.GetValue(Options.Data), seed);
        var config = RunOptions.BuildModel(parse, preset, trainSet);
        var options = RunOptions.BuildTraining(parse, preset);
        var data = Setup.Split(trainSet, test, config, options);

        var resume = parse.GetValue(s_resume);
        var outDirectory = parse.GetValue(s_out) ?? (resume ? NewestRun() : NewRunName(preset.Name, config, options));
        using var model = ModelFactory.Create(config, ModuleInit.Create(seed, placement.Main, placement.BranchContexts(config.Branches)));
        AnsiConsole.WriteLine(
            $"{config.Kind} '{preset.Name}': {RunOptions.Describe(config)}, {model.ParameterCount():N0} parameters | {datasetName}: {data.Train.Count:N0} train, {data.Validation.Count:N0} val, {test.Count:N0} test | " +
            $"{options.Schedule}, {options.Epochs} epochs, batch {options.BatchSize}, {options.Optimizer} lr {options.LearningRate} | {placement.Describe()} | out: {outDirectory}");

        var curves = Path.Combine(outDirectory, "curves.png");
        var title = $"{config.Kind} {preset.Name} · {options.Schedule} · {datasetName}";
        var display = new TrainingDisplay(_ => Plots.TrainingCurves(EpochMetrics.ReadFile(Path.Combine(outDirectory, Trainer.MetricsFile)), curves, title));
        using var trainer = new Trainer(model, options, data, outDirectory, display);
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            // The first Ctrl+C stops cleanly at the next batch boundary; a second one kills the process.
            e.Cancel = !cancel.IsCancellationRequested;
            cancel.Cancel();
            Console.Error.WriteLine("stopping after this batch and saving a checkpoint (Ctrl+C again to abort)…");
        };
        Console.CancelKeyPress += onCancel;
        TrainResult result;
        try
        {
            result = display.Show(() => trainer.Run(resume, cancel.Token));
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        if (!result.Completed)
        {
            AnsiConsole.WriteLine($"stopped after {result.Steps} optimizer steps; checkpoint {result.LastCheckpoint}. Continue with: paracuda train --resume --out {outDirectory}");
            return 0;
        }

        Summary(result, outDirectory);
        return 0;
    }

    private static void Summary(TrainResult result, string outDirectory)
    {
        var last = result.Epochs[^1];
        var table = new Table().Title("test accuracy by number of branches k (last epoch)").AddColumns("k", "test acc", "test loss", "val acc");
        foreach (var p in last.Prefixes)
        {
            table.AddRow(p.K.ToString(CultureInfo.InvariantCulture), (p.TestAccuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %", p.TestLoss.ToString("F4", CultureInfo.InvariantCulture), (p.ValAccuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %");
        }

        AnsiConsole.Write(table);
        AnsiConsole.WriteLine($"done in {last.ElapsedSeconds:F0} s: test accuracy {last.TestAccuracy:P2}. Wrote {Path.Combine(outDirectory, Trainer.MetricsFile)}, {Trainer.ConfigFile}, curves.png, {Trainer.BestFile} (best validation), {Trainer.LastFile} (resumable).");
    }

    private static string NewRunName(string preset, ModelConfig config, TrainOptions options) =>
        Path.Combine(RunsDirectory, $"{DateTime.Now:yyyyMMdd-HHmmss}-{preset}-{config.Kind.ToString().ToLowerInvariant()}-{options.Schedule}");

    private static string NewestRun()
    {
        var newest = Directory.Exists(RunsDirectory)
            ? Directory.GetDirectories(RunsDirectory).Where(d => File.Exists(Path.Combine(d, Trainer.LastFile))).Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        return newest ?? throw new UserError($"--resume: no run with a {Trainer.LastFile} under {RunsDirectory}/; pass --out DIR");
    }
}
