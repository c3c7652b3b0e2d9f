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

    private static readonly Option<string> s_preset = Options.Choice("--preset", "Model and training defaults", "tiny", [.. Presets.All.Select(p => p.Name)]);
    private static readonly Option<string> s_model = Options.Choice("--model", "paraformer, or vit: the deep sequential baseline with as many blocks as the ParaFormer has", "paraformer", ["paraformer", "vit"]);
    private static readonly Option<int?> s_branches = new("--branches") { Description = "ParaFormer branches" };
    private static readonly Option<int?> s_branchDepth = new("--branch-depth") { Description = "Transformer blocks per branch" };
    private static readonly Option<int?> s_depth = new("--depth") { Description = "ViT depth (default: branches × branch depth, equal parameters)" };
    private static readonly Option<int?> s_dim = new("--dim") { Description = "Token width" };
    private static readonly Option<int?> s_heads = new("--heads") { Description = "Attention heads" };
    private static readonly Option<int?> s_headDim = new("--head-dim") { Description = "Width of each head (default dim / heads)" };
    private static readonly Option<int?> s_mlpDim = new("--mlp-dim") { Description = "Hidden width of the MLP" };
    private static readonly Option<int?> s_patch = new("--patch") { Description = "Patch size in pixels" };
    private static readonly Option<int?> s_imageSize = new("--image-size") { Description = "Resize images to this (default: the preset's, or the dataset's own)" };
    private static readonly Option<float?> s_dropout = new("--dropout") { Description = "Dropout in blocks and after the embedding" };
    private static readonly Option<string?> s_skip = Options.Choice<string?>("--skip", "Skip connection around each sub-layer: normalized (LN(x) + f(LN x), the reference's) or input (x + f(LN x))", null, ["normalized", "input"]);
    private static readonly Option<string> s_schedule = Options.Choice("--schedule", "lpa (progressive approximation, the paper's), prefix (all prefix losses in one step), staged, or joint", "lpa", [.. Schedule.Names]);
    private static readonly Option<string?> s_stages = new("--stages") { Description = "staged: comma-separated epochs at which branches 2..B join" };
    private static readonly Option<bool> s_freezeEarlier = new("--freeze-earlier") { Description = "staged: freeze branches that joined earlier" };
    private static readonly Option<int?> s_epochs = new("--epochs") { Description = "Epochs (default: the preset's)" };
    private static readonly Option<int?> s_batch = new("--batch") { Description = "Batch size (default: the preset's)" };
    private static readonly Option<float?> s_lr = new("--lr") { Description = "Learning rate (default: the preset's)" };
    private static readonly Option<string?> s_optimizer = Options.Choice<string?>("--optimizer", "adam or adamw (default: the preset's)", null, ["adam", "adamw"]);
    private static readonly Option<float> s_weightDecay = new("--weight-decay") { Description = "adamw: decoupled weight decay", DefaultValueFactory = _ => 0.01f };
    private static readonly Option<bool> s_noAugment = new("--no-augment") { Description = "Train without random crops and flips" };
    private static readonly Option<int> s_seed = new("--seed") { Description = "Seeds initialisation, data order, augmentation and dropout", DefaultValueFactory = _ => 1 };
    private static readonly Option<string?> s_out = new("--out") { Description = $"Output folder (default: a new folder under {RunsDirectory}/)" };
    private static readonly Option<bool> s_resume = new("--resume") { Description = $"Continue the run in --out (default: the newest under {RunsDirectory}/) from its last checkpoint" };
    private static readonly Option<long> s_maxSteps = new("--max-steps") { Description = "Stop after this many optimizer steps, with a resumable checkpoint (smoke runs)" };
    private static readonly Option<int> s_workers = new("--workers") { Description = "Threads preparing batches (0: one per core)" };

    public static Command Create()
    {
        var command = new Command("train", "Train a ParaFormer (or ViT baseline) with metrics, curves and checkpoints in an output folder")
        {
            s_preset, s_model, Options.Dataset, Options.Data, Options.Device, s_branches, s_branchDepth, s_depth, s_dim, s_heads, s_headDim,
            s_mlpDim, s_patch, s_imageSize, s_dropout, s_skip, s_schedule, s_stages, s_freezeEarlier, s_epochs, s_batch, s_lr, s_optimizer,
            s_weightDecay, s_noAugment, s_seed, s_out, s_resume, s_maxSteps, s_workers,
        };
        command.SetAction(parse => Cli.Run(() => Train(parse)));
        return command;
    }

    private static int Train(ParseResult parse)
    {
        var preset = Presets.Get(parse.GetValue(s_preset)!);
        var seed = parse.GetValue(s_seed);
        var datasetName = parse.GetValue(Options.Dataset)!;
        var context = Setup.Context(parse.GetValue(Options.Device)!, n => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(n)}[/]"));
        var (trainSet, test) = Setup.Load(datasetName, parse.GetValue(Options.Data), seed);
        var config = ModelFor(parse, preset, trainSet);
        var options = OptionsFor(parse, preset);
        var (train, validation) = trainSet.Split(options.ValidationFraction, seed);
        var data = new TrainData(train, validation, test, Setup.Transform(config, train: options.Augment), Setup.Transform(config, train: false));

        var resume = parse.GetValue(s_resume);
        var outDirectory = parse.GetValue(s_out) ?? (resume ? NewestRun() : NewRunName(preset.Name, config, options));
        using var model = ModelFactory.Create(config, ModuleInit.Create(seed, context));
        AnsiConsole.MarkupLine(Markup.Escape(
            $"{config.Kind} '{preset.Name}': {Describe(config)}, {model.ParameterCount():N0} parameters | {datasetName}: {train.Count:N0} train, {validation.Count:N0} val, {test.Count:N0} test | " +
            $"{options.Schedule}, {options.Epochs} epochs, batch {options.BatchSize}, {options.Optimizer} lr {options.LearningRate} | {context.Backend.Description} | out: {outDirectory}"));

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
            AnsiConsole.MarkupLine(Markup.Escape($"stopped after {result.Steps} optimizer steps; checkpoint {result.LastCheckpoint}. Continue with: paracuda train --resume --out {outDirectory}"));
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
        AnsiConsole.MarkupLine(Markup.Escape($"done in {last.ElapsedSeconds:F0} s: test accuracy {last.TestAccuracy:P2}. Wrote {Path.Combine(outDirectory, Trainer.MetricsFile)}, curves.png, {Trainer.BestFile} (best validation), {Trainer.LastFile} (resumable)."));
    }

    private static ModelConfig ModelFor(ParseResult parse, Preset preset, ImageDataset data)
    {
        var c = Presets.ForData(preset.Model, data.Width, data.Channels, data.Classes);
        c = c with
        {
            Kind = parse.GetValue(s_model) == "vit" ? ModelKind.Vit : ModelKind.ParaFormer,
            Branches = parse.GetValue(s_branches) ?? c.Branches,
            BranchDepth = parse.GetValue(s_branchDepth) ?? c.BranchDepth,
            Dim = parse.GetValue(s_dim) ?? c.Dim,
            Heads = parse.GetValue(s_heads) ?? c.Heads,
            HeadDim = parse.GetValue(s_headDim) ?? (parse.GetValue(s_heads) is null && parse.GetValue(s_dim) is null ? c.HeadDim : 0),
            MlpDim = parse.GetValue(s_mlpDim) ?? c.MlpDim,
            Patch = parse.GetValue(s_patch) ?? c.Patch,
            ImageSize = parse.GetValue(s_imageSize) ?? c.ImageSize,
            Dropout = parse.GetValue(s_dropout) ?? c.Dropout,
            EmbeddingDropout = parse.GetValue(s_dropout) ?? c.EmbeddingDropout,
            Skip = parse.GetValue(s_skip) is { } skip ? Enum.Parse<SkipConnection>(skip, ignoreCase: true) : c.Skip,
        };
        c = c with { Depth = parse.GetValue(s_depth) ?? (c.Branches * c.BranchDepth) };
        if (c.Problem() is { } problem)
        {
            throw new UserError($"model: {problem}");
        }

        return c;
    }

    private static TrainOptions OptionsFor(ParseResult parse, Preset preset)
    {
        var stages = parse.GetValue(s_stages) is { } text ? ParseStages(text) : [];
        var options = new TrainOptions
        {
            Schedule = parse.GetValue(s_schedule)!,
            Stages = stages,
            FreezeEarlier = parse.GetValue(s_freezeEarlier),
            Epochs = parse.GetValue(s_epochs) ?? preset.Training.Epochs,
            BatchSize = parse.GetValue(s_batch) ?? preset.Training.BatchSize,
            LearningRate = parse.GetValue(s_lr) ?? preset.Training.LearningRate,
            Optimizer = parse.GetValue(s_optimizer) ?? preset.Training.Optimizer,
            WeightDecay = parse.GetValue(s_weightDecay),
            Augment = !parse.GetValue(s_noAugment),
            Seed = parse.GetValue(s_seed),
            MaxSteps = parse.GetValue(s_maxSteps),
            Workers = parse.GetValue(s_workers),
        };
        return options.Problem() is { } problem ? throw new UserError(problem) : options;
    }

    private static int[] ParseStages(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var epochs = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out epochs[i]))
            {
                throw new UserError($"--stages: '{parts[i]}' is not an epoch number (expected e.g. 2,4,6)");
            }
        }

        return epochs;
    }

    private static string Describe(ModelConfig c) => c.Kind == ModelKind.ParaFormer
        ? $"{c.Branches} branches × {c.BranchDepth} blocks, dim {c.Dim}, {c.Heads} heads, MLP {c.MlpDim}, {c.ImageSize}px patch {c.Patch}, skip {c.Skip.ToString().ToLowerInvariant()}"
        : $"depth {c.Depth}, dim {c.Dim}, {c.Heads} heads, MLP {c.MlpDim}, {c.ImageSize}px patch {c.Patch}, skip {c.Skip.ToString().ToLowerInvariant()}";

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
