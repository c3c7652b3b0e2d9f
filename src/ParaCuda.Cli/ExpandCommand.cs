using System.CommandLine;
using System.Globalization;
using ParaCuda.Continual;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Reporting;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>
/// <c>paracuda expand</c>: appends branches to a trained ParaFormer and trains them progressively on new data,
/// or (<c>--protocol split-classes</c>) runs the whole class-incremental experiment with its baselines.
/// </summary>
internal static class ExpandCommand
{
    /// <summary>The expanded model after the class-balanced head re-fit, beside the trainer's checkpoints.</summary>
    public const string BalancedFile = "balanced.safetensors";

    // Measured on split-classes Fashion-MNIST (README): 30 and 100 epochs land within 0.5 points of each other.
    private const int DefaultBalanceEpochs = 30;

    private static readonly Option<string?> s_checkpoint = new("--checkpoint") { Description = "The ParaFormer checkpoint to grow (not with --protocol)" };
    private static readonly Option<int?> s_add = new Option<int?>("--add-branches") { Description = "Branches to append (with --protocol, default: as many as the model starts with)" }.Positive();
    private static readonly Option<bool> s_freeze = new("--freeze-existing") { Description = "Keep the existing branches and the embedding fixed; only the new branches and the head train" };
    private static readonly Option<string?> s_classes = new("--classes") { Description = "Train on these classes only, e.g. 5-9 or 0,2,4 (default: all)" };
    private static readonly Option<int> s_replay = new Option<int>("--replay") { Description = "Mix this many images of the other (old) classes into the new data" }.NotNegative();
    private static readonly Option<int?> s_balanceHead = new Option<int?>("--balance-head")
    {
        Description = $"After training, re-fit the head for N epochs on an equal number of images per class (the replay buffer against as many new images); default {DefaultBalanceEpochs} with --replay, 0 without",
    }.NotNegative();

    private static readonly Option<string?> s_protocol = Options.Choice<string?>("--protocol", "split-classes: train on the first half of the classes, expand on the second half, compare with fine-tuning and training from scratch", null, ["split-classes"]);
    private static readonly Option<string?> s_out = new("--out") { Description = $"Output folder (default: a new folder under {TrainCommand.RunsDirectory}/)" };

    public static Command Create()
    {
        var command = new Command("expand", "Append branches to a trained ParaFormer and train them on new data (continual learning)")
        {
            s_checkpoint, s_add, s_freeze, s_classes, s_replay, s_balanceHead, s_protocol, s_out, Options.Dataset, Options.Data,
        };
        foreach (var option in Options.Placement.Concat(RunOptions.All))
        {
            command.Options.Add(option);
        }

        command.SetAction(parse => Cli.Run(() => parse.GetValue(s_protocol) is null ? Expand(parse) : SplitClasses(parse)));
        return command;
    }

    /// <summary>The --balance-head epochs, checked against --replay before any data is read.</summary>
    private static int BalanceHeadEpochs(ParseResult parse)
    {
        var replay = parse.GetValue(s_replay);
        var epochs = parse.GetValue(s_balanceHead) ?? (replay > 0 ? DefaultBalanceEpochs : 0);
        if (epochs > 0 && replay <= 0)
        {
            throw new UserError("--balance-head needs old-class images to balance against: add --replay N");
        }

        return epochs;
    }

    private static int Expand(ParseResult parse)
    {
        var source = Setup.CheckpointFile(parse.GetValue(s_checkpoint) ?? throw new UserError("give --checkpoint F (the model to grow) or --protocol split-classes"), "--checkpoint");
        var add = parse.GetValue(s_add) ?? throw new UserError("give --add-branches M");
        if (add < 1)
        {
            throw new UserError($"--add-branches must be at least 1, got {add}");
        }

        if (parse.GetValue(s_replay) > 0 && parse.GetValue(s_classes) is null)
        {
            throw new UserError("--replay mixes in images of the classes outside --classes; give --classes (e.g. 5-9) for the new data");
        }

        var balanceEpochs = BalanceHeadEpochs(parse);
        if (RunOptions.ModelOptionsGiven(parse) is { Count: > 0 } given)
        {
            throw new UserError($"{string.Join(", ", given)}: the architecture comes from --checkpoint; these options only apply with --protocol");
        }

        var config = Checkpoint.ReadConfig(source);
        if (config.Kind != ModelKind.ParaFormer)
        {
            throw new UserError($"{source} holds a {config.Kind}; only a ParaFormer grows by branches");
        }

        using var placement = Setup.Placement(parse, Cli.Notice);
        var preset = Presets.Get(parse.GetValue(RunOptions.PresetName)!);
        var seed = parse.GetValue(RunOptions.Seed);
        var datasetName = parse.GetValue(Options.Dataset)!;
        var (trainSet, test) = Setup.Load(datasetName, parse.GetValue(Options.Data), seed);
        Setup.CheckFits(config, trainSet, $"{datasetName} training set");
        var keep = ParseClasses(parse.GetValue(s_classes), config.Classes);
        var options = Expansion.ForNewBranches(RunOptions.BuildTraining(parse, preset), config.Branches, parse.GetValue(s_freeze));
        var grown = config with { Branches = config.Branches + add };
        MemoryBudget.Check($"training {grown.ParameterCount():N0} parameters ({config.Branches} + {Count.Of(add, "branch", "branches")}) on batches of {options.BatchSize} (lower --add-branches or --batch)", MemoryBudget.ForTraining(grown, options.BatchSize), placement);
        var split = TrainData.Split(trainSet, test, config, options);
        var data = split with
        {
            Train = Expansion.NewData(split.Train, keep, parse.GetValue(s_replay), seed),
            Validation = split.Validation.WhereLabel(keep),
            Test = split.Test.WhereLabel(keep),
        };
        var outDirectory = parse.GetValue(s_out) ?? Path.Combine(TrainCommand.RunsDirectory, $"{DateTime.Now:yyyyMMdd-HHmmss}-expand-{options.Schedule}");

        // Contexts for the new branches too: the grown model cycles over this list, so each new branch gets its own.
        using var original = (ParaFormer)Checkpoint.LoadModel(source, placement.Main, placement.BranchContexts(config.Branches + add), placement.BatchedBranches);
        using var model = Expansion.AddBranches(original, add, seed);
        AnsiConsole.WriteLine(
            $"{source}: {Count.Of(config.Branches, "branch", "branches")} → {model.Branches.Count} ({model.ParameterCount():N0} parameters), existing {(options.FrozenBranches > 0 ? "frozen" : "fine-tuned")} | " +
            $"{data.Train.Count:N0} training images ({data.Train.Name}) | {options.Schedule} over k = {options.FirstPrefix}..{model.Branches.Count}, {Count.Of(options.Epochs, "epoch")} | out: {outDirectory}");
        var display = new TrainingDisplay(_ => { });
        using var trainer = new Trainer(model, options, data, outDirectory, display);
        using var stop = new StopRequest(display);
        var result = display.Show(() => trainer.Run(ct: stop.Token));
        if (!result.Completed)
        {
            AnsiConsole.WriteLine($"stopped after {Count.Of(result.Steps, "optimizer step")}; the expanded model so far is in {result.LastCheckpoint} (an expansion cannot be resumed: run expand again to train the new branches in full)");
            return 0;
        }

        var last = result.Epochs[^1];
        var table = new Table().Title("test accuracy by number of branches k (on the selected classes)").AddColumns("k", "test acc", "");
        foreach (var p in last.Prefixes)
        {
            table.AddRow(p.K.ToString(CultureInfo.InvariantCulture), (p.TestAccuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %", p.K <= config.Branches ? "existing branches" : "with new branches");
        }

        AnsiConsole.Write(table);
        AnsiConsole.WriteLine($"wrote {Path.Combine(outDirectory, Trainer.BestFile)} and {Path.Combine(outDirectory, Trainer.LastFile)} ({Count.Of(model.Branches.Count, "branch", "branches")})");
        if (balanceEpochs > 0)
        {
            var balanced = Expansion.BalanceHead(model, data.Train, data.EvalTransform, balanceEpochs, seed);
            double Accuracy(ImageDataset set) => Evaluation.Run(model, set, data.EvalTransform, options.EvalBatchSize)[^1].Accuracy * 100;
            var path = Path.Combine(outDirectory, BalancedFile);
            Checkpoint.SaveModel(path, model);
            AnsiConsole.WriteLine(
                $"head re-fit for {Count.Of(balanceEpochs, "epoch")} on {balanced.Name}: test accuracy {Accuracy(data.Test):F2} % on the selected classes, " +
                $"{Accuracy(split.Test):F2} % on all classes; wrote {path}");
        }

        return 0;
    }

    private static int SplitClasses(ParseResult parse)
    {
        if (parse.GetValue(s_checkpoint) is not null || parse.GetValue(s_classes) is not null)
        {
            throw new UserError("--protocol split-classes trains its own phase-1 model on the first half of the classes; drop --checkpoint and --classes");
        }

        var balanceEpochs = BalanceHeadEpochs(parse);
        if (parse.GetValue(RunOptions.MaxSteps) > 0)
        {
            throw new UserError("--max-steps does not apply to --protocol split-classes: its comparison needs every run to finish");
        }

        using var placement = Setup.Placement(parse, Cli.Notice);
        var preset = Presets.Get(parse.GetValue(RunOptions.PresetName)!);
        var seed = parse.GetValue(RunOptions.Seed);
        var datasetName = parse.GetValue(Options.Dataset)!;
        var (trainSet, test) = Setup.Load(datasetName, parse.GetValue(Options.Data), seed);
        var config = RunOptions.BuildModel(parse, preset, trainSet);
        if (config.Kind != ModelKind.ParaFormer)
        {
            throw new UserError("--protocol split-classes grows a ParaFormer; drop --model vit");
        }

        var options = RunOptions.BuildTraining(parse, preset);
        var add = parse.GetValue(s_add) ?? config.Branches;
        if (add < 1)
        {
            throw new UserError($"--add-branches must be at least 1, got {add}");
        }

        var grown = config with { Branches = config.Branches + add };
        MemoryBudget.Check($"training {grown.ParameterCount():N0} parameters ({config.Branches} + {Count.Of(add, "branch", "branches")}) on batches of {options.BatchSize} (lower --add-branches or --batch)", MemoryBudget.ForTraining(grown, options.BatchSize), placement);
        var data = TrainData.Split(trainSet, test, config, options);
        var outDirectory = parse.GetValue(s_out) ?? Path.Combine(TrainCommand.RunsDirectory, $"{DateTime.Now:yyyyMMdd-HHmmss}-split-classes");
        if (Directory.Exists(outDirectory) && Directory.EnumerateFileSystemEntries(outDirectory).Any())
        {
            throw new UserError($"{outDirectory} is not empty; choose another --out (the protocol never overwrites runs)");
        }

        AnsiConsole.WriteLine(
            $"split-classes on {datasetName}: {Count.Of(config.Branches, "branch", "branches")} ({RunOptions.Describe(config)}), then +{add}; {options.Schedule}, {Count.Of(options.Epochs, "epoch")} per phase; " +
            $"replay {parse.GetValue(s_replay)} images{(balanceEpochs > 0 ? $", balanced head {Count.Of(balanceEpochs, "epoch")}" : "")}; existing branches {(parse.GetValue(s_freeze) ? "frozen" : "fine-tuned")} | out: {outDirectory}");
        var display = new TrainingDisplay(_ => { });
        var protocol = new SplitClassesProtocol
        {
            Model = config,
            Options = options,
            AddBranches = add,
            FreezeExisting = parse.GetValue(s_freeze),
            Replay = parse.GetValue(s_replay),
            BalanceHeadEpochs = balanceEpochs,
            Observer = name =>
            {
                display.Run = $"{name}: ";
                return display;
            },
        };
        using var stop = new StopRequest(display);
        ContinualReport report;
        try
        {
            report = display.Show(() => protocol.Run(data, outDirectory, ModuleInit.Create(seed, placement.Main, placement.BranchContexts(config.Branches + add), placement.BatchedBranches), stop.Token));
        }
        catch (OperationCanceledException e) when (stop.Token.IsCancellationRequested)
        {
            AnsiConsole.WriteLine($"stopped: {e.Message}; the runs so far are in {outDirectory} (the protocol starts over when run again, in a new --out)");
            return 0;
        }

        Print(report);
        var plot = Path.Combine(outDirectory, "continual.png");
        Plots.Bars(plot, $"class-incremental {datasetName}: test accuracy", "test accuracy (%)", report.Rows.Select(r => r.Method).ToList(), [
            ("old classes", report.Rows.Select(r => r.OldAccuracy * 100).ToList()),
            ("new classes", report.Rows.Select(r => r.NewAccuracy * 100).ToList()),
            ("all classes", report.Rows.Select(r => r.AllAccuracy * 100).ToList()),
        ]);
        AnsiConsole.WriteLine($"wrote {Path.Combine(outDirectory, ContinualReport.FileName)}, {plot} and one folder per training run");
        return 0;
    }

    public static void Print(ContinualReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var table = new Table().Title(Markup.Escape($"class-incremental: old classes {string.Join(",", report.OldClasses)}, new {string.Join(",", report.NewClasses)}; replay {report.Replay}"))
            .AddColumns("method", "old classes", "new classes", "all classes", "forgetting", "parameters", "seconds");
        foreach (var r in report.Rows)
        {
            table.AddRow(
                Markup.Escape(r.Method),
                Percent(r.OldAccuracy),
                Percent(r.NewAccuracy),
                Percent(r.AllAccuracy),
                (r.Forgetting * 100).ToString("F2", CultureInfo.InvariantCulture) + " pt",
                r.Parameters.ToString("N0", CultureInfo.InvariantCulture),
                r.Seconds.ToString("F0", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);

        static string Percent(double v) => (v * 100).ToString("F2", CultureInfo.InvariantCulture) + " %";
    }

    /// <summary>"5-9" or "0,2,4" → a label filter; names the problem on anything else.</summary>
    public static Func<int, bool> ParseClasses(string? text, int classes)
    {
        if (text is null)
        {
            return _ => true;
        }

        var chosen = new HashSet<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var ends = part.Split('-', StringSplitOptions.TrimEntries);
            if (ends.Length is < 1 or > 2 || !ends.All(e => int.TryParse(e, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            {
                throw new UserError($"--classes: '{part}' is not a class or a range (expected e.g. 5-9 or 0,2,4)");
            }

            var (from, to) = (int.Parse(ends[0], CultureInfo.InvariantCulture), int.Parse(ends[^1], CultureInfo.InvariantCulture));
            if (from > to || to >= classes)
            {
                throw new UserError($"--classes: '{part}' is not within 0..{classes - 1}");
            }

            chosen.UnionWith(Enumerable.Range(from, to - from + 1));
        }

        return chosen.Count > 0 ? chosen.Contains : throw new UserError("--classes names no class");
    }
}
