using System.CommandLine;
using System.Globalization;
using ParaCuda.Data;
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
        var resume = parse.GetValue(s_resume);
        using var placement = Setup.Placement(parse, Cli.Notice);
        var run = resume ? Continued(parse) : Started(parse);
        var (config, options, outDirectory) = (run.Config, run.Options, run.OutDirectory);
        MemoryBudget.Check($"training {config.ParameterCount():N0} parameters on batches of {options.BatchSize} (lower --batch, or the model's size)", MemoryBudget.ForTraining(config, options.BatchSize), placement);
        var data = TrainData.Split(run.Train, run.Test, config, options);
        using var model = ModelFactory.Create(config, ModuleInit.Create(options.Seed, placement.Main, placement.BranchContexts(config.Branches), placement.BatchedBranches));
        AnsiConsole.WriteLine(
            $"{(resume ? "resuming " : "")}{config.Kind} '{run.Name}': {RunOptions.Describe(config)}, {model.ParameterCount():N0} parameters | {options.Dataset}: {data.Train.Count:N0} train, {data.Validation.Count:N0} val, {data.Test.Count:N0} test | " +
            $"{options.Schedule}, {Count.Of(options.Epochs, "epoch")}, batch {options.BatchSize}, {options.Optimizer} lr {options.LearningRate} | {placement.Describe()}{(options.Graphs ? ", CUDA graphs" : "")} | out: {outDirectory}");

        var curves = Path.Combine(outDirectory, "curves.png");
        var title = $"{config.Kind} {run.Name} · {options.Schedule} · {options.Dataset}";
        var display = new TrainingDisplay(_ => Plots.TrainingCurves(EpochMetrics.ReadFile(Path.Combine(outDirectory, Trainer.MetricsFile)), curves, title));
        using var trainer = new Trainer(model, options, data, outDirectory, display);
        using var stop = new StopRequest(display);
        var result = display.Show(() => trainer.Run(resume, stop.Token));
        if (!result.Completed)
        {
            AnsiConsole.WriteLine($"stopped after {Count.Of(result.Steps, "optimizer step")}; checkpoint {result.LastCheckpoint}. Continue with: paracuda train --resume --out {outDirectory}");
            return 0;
        }

        Summary(result, outDirectory);
        return 0;
    }

    /// <summary>What a run needs before its model is built: the model, the options, the data, where it goes.</summary>
    private sealed record RunPlan(string Name, ModelConfig Config, TrainOptions Options, ImageDataset Train, ImageDataset Test, string OutDirectory);

    /// <summary>A new run: the preset plus the options given.</summary>
    private static RunPlan Started(ParseResult parse)
    {
        var preset = Presets.Get(parse.GetValue(RunOptions.PresetName)!);
        var datasetName = parse.GetValue(Options.Dataset)!;
        var directory = parse.GetValue(Options.Data);
        var (trainSet, test) = Setup.Load(datasetName, directory, parse.GetValue(RunOptions.Seed));
        var config = RunOptions.BuildModel(parse, preset, trainSet);
        var options = RunOptions.BuildTraining(parse, preset) with { Dataset = datasetName, DataDirectory = directory is null ? null : Path.GetFullPath(directory) };
        return new RunPlan(preset.Name, config, options, trainSet, test, parse.GetValue(s_out) ?? NewRunName(preset.Name, config, options));
    }

    /// <summary>
    /// A run continued from its last checkpoint, as it was started: its model, options and dataset come from the
    /// checkpoint; an option given that says otherwise is an error naming both values. --max-steps, --workers,
    /// --graphs and --data (the dataset may have moved) may change.
    /// </summary>
    private static RunPlan Continued(ParseResult parse)
    {
        var outDirectory = parse.GetValue(s_out) ?? NewestRun();
        var last = Path.Combine(outDirectory, Trainer.LastFile);
        if (!File.Exists(last))
        {
            throw new UserError(File.Exists(Path.Combine(outDirectory, Trainer.MetricsFile))
                ? $"--resume: the run in {outDirectory} stopped before its first checkpoint, so there is nothing to continue; run the same command without --resume to start it over"
                : $"--resume: {outDirectory} holds no run to continue (no {Trainer.LastFile})");
        }

        var config = Checkpoint.ReadConfig(last);
        var saved = Checkpoint.ReadState(last).Options;
        var dataset = saved.Dataset ?? "fashion-mnist";
        var conflicts = RunOptions.ModelConflicts(parse, config).Concat(RunOptions.TrainingConflicts(parse, saved)).ToList();
        if (parse.GetResult(Options.Dataset) is { Implicit: false } && !string.Equals(parse.GetValue(Options.Dataset), dataset, StringComparison.OrdinalIgnoreCase))
        {
            conflicts.Add($"--dataset {parse.GetValue(Options.Dataset)} (the run has {dataset})");
        }

        if (conflicts.Count > 0)
        {
            throw new UserError($"--resume continues the run in {outDirectory} as it was started, but {string.Join(", ", conflicts)}; drop these options, or start a new run");
        }

        var directory = parse.GetValue(Options.Data) is { } given ? Path.GetFullPath(given) : saved.DataDirectory;
        var (trainSet, test) = Setup.Load(dataset, directory, saved.Seed);
        Setup.CheckFits(config, trainSet, $"{dataset} training set");
        var options = saved with { MaxSteps = parse.GetValue(RunOptions.MaxSteps), Workers = parse.GetValue(RunOptions.Workers), DataDirectory = directory, Graphs = parse.GetValue(Options.Graphs) == "on" };
        return new RunPlan(Path.GetFileName(Path.GetFullPath(outDirectory)), config, options, trainSet, test, outDirectory);
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
