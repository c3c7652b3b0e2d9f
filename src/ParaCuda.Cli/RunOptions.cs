using System.CommandLine;
using System.Globalization;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Training;

namespace ParaCuda.Cli;

/// <summary>The model and training options that <c>train</c> and <c>expand</c> share, and how they resolve against a preset.</summary>
internal static class RunOptions
{
    public static readonly Option<string> PresetName = Options.Choice("--preset", "Model and training defaults", "tiny", [.. Presets.All.Select(p => p.Name)]);
    public static readonly Option<string> Family = Options.Choice("--model", "paraformer, or vit: the deep sequential baseline with as many blocks as the ParaFormer has", "paraformer", ["paraformer", "vit"]);
    public static readonly Option<int?> Branches = new Option<int?>("--branches") { Description = "ParaFormer branches" }.Positive();
    public static readonly Option<int?> BranchDepth = new Option<int?>("--branch-depth") { Description = "Transformer blocks per branch" }.Positive();
    public static readonly Option<int?> Depth = new Option<int?>("--depth") { Description = "ViT depth (default: branches × branch depth, equal parameters)" }.Positive();
    public static readonly Option<int?> Dim = new Option<int?>("--dim") { Description = "Token width" }.Positive();
    public static readonly Option<int?> Heads = new Option<int?>("--heads") { Description = "Attention heads" }.Positive();
    public static readonly Option<int?> HeadDim = new Option<int?>("--head-dim") { Description = "Width of each head (default dim / heads)" }.Positive();
    public static readonly Option<int?> MlpDim = new Option<int?>("--mlp-dim") { Description = "Hidden width of the MLP" }.Positive();
    public static readonly Option<int?> Patch = new Option<int?>("--patch") { Description = "Patch size in pixels" }.Positive();
    public static readonly Option<int?> ImageSize = new Option<int?>("--image-size") { Description = "Resize images to this (default: the preset's, or the dataset's own)" }.Positive();
    public static readonly Option<float?> Dropout = new Option<float?>("--dropout") { Description = "Dropout in blocks and after the embedding" }.Fraction();
    public static readonly Option<string?> Skip = Options.Choice<string?>("--skip", "Skip connection around each sub-layer: normalized (LN(x) + f(LN x), the reference's) or input (x + f(LN x))", null, ["normalized", "input"]);
    public static readonly Option<string> ScheduleName = Options.Choice("--schedule", "lpa (progressive approximation, the paper's), prefix (all prefix losses in one step), staged, or joint", "lpa", [.. Schedule.Names]);
    public static readonly Option<string?> Stages = new("--stages") { Description = "staged: comma-separated epochs at which branches 2..B join" };
    public static readonly Option<bool> FreezeEarlier = new("--freeze-earlier") { Description = "staged: freeze branches that joined earlier" };
    public static readonly Option<int?> Epochs = new Option<int?>("--epochs") { Description = "Epochs (default: the preset's)" }.Positive();
    public static readonly Option<int?> Batch = new Option<int?>("--batch") { Description = "Batch size (default: the preset's)" }.Positive();
    public static readonly Option<float?> Lr = new Option<float?>("--lr") { Description = "Learning rate (default: the preset's)" }.Positive();
    public static readonly Option<string?> OptimizerName = Options.Choice<string?>("--optimizer", "adam or adamw (default: the preset's)", null, ["adam", "adamw"]);
    public static readonly Option<float> WeightDecay = new Option<float>("--weight-decay") { Description = "adamw: decoupled weight decay", DefaultValueFactory = _ => 0.01f }.NotNegative();
    public static readonly Option<string?> Augment = Options.Choice<string?>("--augment", "Random crops (padding 4) and horizontal flips while training: true or false (default: the preset's)", null, ["true", "false"]);
    public static readonly Option<int> Seed = new("--seed") { Description = "Seeds initialisation, data order, augmentation and dropout", DefaultValueFactory = _ => 1 };
    public static readonly Option<long> MaxSteps = new Option<long>("--max-steps") { Description = "Stop after this many optimizer steps, with a resumable checkpoint (smoke runs)" }.NotNegative();
    public static readonly Option<int> Workers = new Option<int>("--workers") { Description = "Threads preparing batches (0: one per core)" }.NotNegative();

    /// <summary>Every option above, to add to a command.</summary>
    public static IReadOnlyList<Option> All { get; } = [PresetName, Family, Branches, BranchDepth, Depth, Dim, Heads, HeadDim, MlpDim, Patch, ImageSize, Dropout, Skip, ScheduleName, Stages, FreezeEarlier, Epochs, Batch, Lr, OptimizerName, WeightDecay, Augment, Seed, MaxSteps, Workers, Options.Graphs];

    /// <summary>The architecture options given on the command line (commands that load a model reject them).</summary>
    public static IReadOnlyList<string> ModelOptionsGiven(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        Option[] architecture = [Family, Branches, BranchDepth, Depth, Dim, Heads, HeadDim, MlpDim, Patch, ImageSize, Dropout, Skip];
        return architecture.Where(o => parse.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
    }

    /// <summary>The model options given on the command line that disagree with <paramref name="config"/>, as "--dim 96 (the run has 64)".</summary>
    public static IReadOnlyList<string> ModelConflicts(ParseResult parse, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Conflicts(parse,
        [
            (Family, config.Kind == ModelKind.Vit ? "vit" : "paraformer"),
            (Branches, config.Branches),
            (BranchDepth, config.BranchDepth),
            (Depth, config.Depth),
            (Dim, config.Dim),
            (Heads, config.Heads),
            (HeadDim, config.HeadDim == 0 ? config.Dim / config.Heads : config.HeadDim),
            (MlpDim, config.MlpDim),
            (Patch, config.Patch),
            (ImageSize, config.ImageSize),
            (Dropout, config.Dropout),
            (Skip, config.Skip.ToString().ToLowerInvariant()),
        ]);
    }

    /// <summary>The training options given on the command line that disagree with a run's <paramref name="options"/> (--max-steps and --workers may change).</summary>
    public static IReadOnlyList<string> TrainingConflicts(ParseResult parse, TrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Conflicts(parse,
        [
            (ScheduleName, options.Schedule),
            (Stages, string.Join(',', options.Stages)),
            (FreezeEarlier, options.FreezeEarlier),
            (Epochs, options.Epochs),
            (Batch, options.BatchSize),
            (Lr, options.LearningRate),
            (OptimizerName, options.Optimizer),
            (WeightDecay, options.WeightDecay),
            (Augment, options.Augment),
            (Seed, options.Seed),
        ]);
    }

    private static List<string> Conflicts(ParseResult parse, IEnumerable<(Option Option, object Run)> pairs)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var conflicts = new List<string>();
        foreach (var (option, run) in pairs)
        {
            if (parse.GetResult(option) is not { Implicit: false } given)
            {
                continue;
            }

            var value = given.GetValueOrDefault<object>();
            var text = option == Stages ? string.Join(',', ParseStages((string)value!)) : Convert.ToString(value, CultureInfo.InvariantCulture);
            var runText = Convert.ToString(run, CultureInfo.InvariantCulture)!;
            if (!string.Equals(text, runText, StringComparison.OrdinalIgnoreCase))
            {
                conflicts.Add($"{option.Name} {text} (the run has {(runText.Length == 0 ? "none" : runText)})");
            }
        }

        return conflicts;
    }

    public static ModelConfig BuildModel(ParseResult parse, Preset preset, ImageDataset data)
    {
        var c = Presets.ForData(preset.Model, data.Width, data.Channels, data.Classes);
        c = c with
        {
            Kind = parse.GetValue(Family) == "vit" ? ModelKind.Vit : ModelKind.ParaFormer,
            Branches = parse.GetValue(Branches) ?? c.Branches,
            BranchDepth = parse.GetValue(BranchDepth) ?? c.BranchDepth,
            Dim = parse.GetValue(Dim) ?? c.Dim,
            Heads = parse.GetValue(Heads) ?? c.Heads,
            HeadDim = parse.GetValue(HeadDim) ?? (parse.GetValue(Heads) is null && parse.GetValue(Dim) is null ? c.HeadDim : 0),
            MlpDim = parse.GetValue(MlpDim) ?? c.MlpDim,
            // The preset's patch fits its intended images; on other sizes take the nearest patch that tiles them.
            Patch = parse.GetValue(Patch) ?? Presets.PatchFor(parse.GetValue(ImageSize) ?? c.ImageSize, c.Patch),
            ImageSize = parse.GetValue(ImageSize) ?? c.ImageSize,
            Dropout = parse.GetValue(Dropout) ?? c.Dropout,
            EmbeddingDropout = parse.GetValue(Dropout) ?? c.EmbeddingDropout,
            Skip = parse.GetValue(Skip) is { } skip ? Enum.Parse<SkipConnection>(skip, ignoreCase: true) : c.Skip,
        };
        c = c with { Depth = parse.GetValue(Depth) ?? (c.Branches * c.BranchDepth) };
        if (c.Problem() is { } problem)
        {
            throw new UserError($"model: {problem}");
        }

        return c;
    }

    public static TrainOptions BuildTraining(ParseResult parse, Preset preset)
    {
        var stages = parse.GetValue(Stages) is { } text ? ParseStages(text) : [];
        var options = new TrainOptions
        {
            Schedule = parse.GetValue(ScheduleName)!,
            Stages = stages,
            FreezeEarlier = parse.GetValue(FreezeEarlier),
            Epochs = parse.GetValue(Epochs) ?? preset.Training.Epochs,
            BatchSize = parse.GetValue(Batch) ?? preset.Training.BatchSize,
            LearningRate = parse.GetValue(Lr) ?? preset.Training.LearningRate,
            Optimizer = parse.GetValue(OptimizerName) ?? preset.Training.Optimizer,
            WeightDecay = parse.GetValue(WeightDecay),
            Augment = parse.GetValue(Augment) is { } augment ? augment == "true" : preset.Training.Augment,
            Seed = parse.GetValue(Seed),
            MaxSteps = parse.GetValue(MaxSteps),
            Workers = parse.GetValue(Workers),
            Graphs = parse.GetValue(Options.Graphs) == "on",
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

    public static string Describe(ModelConfig c) => c.Kind == ModelKind.ParaFormer
        ? $"{Count.Of(c.Branches, "branch", "branches")} × {Count.Of(c.BranchDepth, "block")}, dim {c.Dim}, {Count.Of(c.Heads, "head")}, MLP {c.MlpDim}, {c.ImageSize}px patch {c.Patch}, skip {c.Skip.ToString().ToLowerInvariant()}"
        : $"depth {c.Depth}, dim {c.Dim}, {Count.Of(c.Heads, "head")}, MLP {c.MlpDim}, {c.ImageSize}px patch {c.Patch}, skip {c.Skip.ToString().ToLowerInvariant()}";
}
