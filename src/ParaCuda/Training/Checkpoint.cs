using System.Globalization;
using System.Text.Json;
using ParaCuda.Backends;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Optim;

namespace ParaCuda.Training;

/// <summary>
/// Where a run stands, saved with the weights so <c>--resume</c> continues exactly: the next batch to run,
/// the optimizer's step counts and the dropout RNG offset, plus the partial epoch's running sums so its
/// metrics line comes out as an uninterrupted run's would.
/// </summary>
public sealed record TrainingState
{
    public required TrainOptions Options { get; init; }

    /// <summary>0-based epoch in progress.</summary>
    public int Epoch { get; init; }

    /// <summary>Index of the pass within the epoch.</summary>
    public int Pass { get; init; }

    /// <summary>Next batch of that pass to run.</summary>
    public int Batch { get; init; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long Steps { get; init; }

    public IReadOnlyList<long> ParameterSteps { get; init; } = [];

    public ulong GeneratorSeed { get; init; }

    public ulong GeneratorOffset { get; init; }

    public double BestValAccuracy { get; init; } = -1;

    public int BestEpoch { get; init; }

    public double ElapsedSeconds { get; init; }

    public EpochAccumulator Partial { get; init; } = new();

    /// <summary>The metrics of the epochs finished so far: metrics.jsonl is rebuilt from them on resume.</summary>
    public IReadOnlyList<EpochMetrics> History { get; init; } = [];

    /// <summary>
    /// Why this state cannot be where a run of <paramref name="epochs"/> epochs, <paramref name="passes"/> passes an
    /// epoch and <paramref name="batches"/> batches a pass stands, or null: every counter within its range and
    /// every sum finite and consistent.
    /// </summary>
    public string? Problem(int epochs, int passes, int batches, int parameters)
    {
        var p = Partial;
        return Epoch < 0 || Epoch > epochs ? $"epoch {Epoch} is outside 0..{epochs}"
            : Pass < 0 || Pass > passes ? $"pass {Pass} is outside 0..{passes}"
            : Batch < 0 || Batch > batches ? $"batch {Batch} is outside 0..{batches}"
            : Steps < 0 ? $"step count {Steps} is negative"
            : ParameterSteps.Count != parameters || ParameterSteps.Any(s => s < 0 || s > Steps) ? $"the per-parameter step counts do not fit {parameters} parameters and {Steps} steps"
            : !(BestValAccuracy is >= -1 and <= 1) || BestEpoch < 0 || BestEpoch > Epoch ? $"best accuracy {BestValAccuracy} (epoch {BestEpoch}) is impossible"
            : !double.IsFinite(ElapsedSeconds) || ElapsedSeconds < 0 ? $"elapsed time {ElapsedSeconds} is impossible"
            : History.Count > 0 && (History.Count != Epoch || History.Select((m, i) => m.Epoch != i + 1 || m.Partial).Any(bad => bad)) ? $"its metrics do not cover epochs 1..{Epoch}"
            : !double.IsFinite(p.LossSum) || p.LossSum < 0 || p.Seen < 0 || p.Correct < 0 || p.Correct > p.Seen || p.Images < 0 || !double.IsFinite(p.Seconds) || p.Seconds < 0
                ? "the sums of the epoch in progress are impossible"
                : null;
    }
}

/// <summary>Running sums of the epoch in progress.</summary>
public sealed record EpochAccumulator
{
    public double LossSum { get; init; }

    public long Correct { get; init; }

    public long Seen { get; init; }

    public long Images { get; init; }

    public double Seconds { get; init; }
}

/// <summary>
/// Checkpoints are safetensors files: parameters under their state-dict names (so PyTorch loads them
/// with <c>safetensors.torch.load_file</c>), and, in training checkpoints, the Adam moments under
/// "optimizer.m.*" and "optimizer.v.*". The model config and the training state travel as JSON in the
/// header's metadata. Writes are atomic; a failed load changes nothing.
/// </summary>
public static class Checkpoint
{
    public const string ConfigKey = "paracuda.config";
    public const string KindKey = "paracuda.kind";
    public const string StateKey = "paracuda.training";

    /// <summary>The kind of a file holding weights in PyTorch's layout (see Interop.PyTorchFormat), which a ParaCuda loader refuses by name.</summary>
    public const string PyTorchKind = "pytorch";
    private const string OptimizerPrefix = "optimizer.";

    /// <summary>Weights and config only: what serving, evaluation and compression need.</summary>
    public static void SaveModel(string path, VisionModel model, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>())
        {
            [KindKey] = "model",
            [ConfigKey] = model.Config.ToJson(),
        };
        SafeTensors.Write(path, model.StateDict(), meta);
    }

    /// <summary>Everything <c>--resume</c> needs: weights, optimizer moments, and the training state.</summary>
    public static void SaveTraining(string path, VisionModel model, Adam optimizer, TrainingState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(state);
        var (moments, steps) = optimizer.State();
        var full = state with { ParameterSteps = steps, GeneratorSeed = model.Generator.Seed, GeneratorOffset = model.Generator.Offset };
        var tensors = model.StateDict().Concat(moments.Select(m => KeyValuePair.Create(OptimizerPrefix + m.Key, m.Value)));
        var meta = new Dictionary<string, string>
        {
            [KindKey] = "training",
            [ConfigKey] = model.Config.ToJson(),
            [StateKey] = JsonSerializer.Serialize(full, TrainingJson.Default.TrainingState),
        };
        SafeTensors.Write(path, tensors, meta);
    }

    /// <summary>
    /// The model config stored in a checkpoint, trustworthy enough to build a model from: the file's checksum
    /// (which covers the header) is verified first, and the config must describe exactly the parameters the
    /// file's tensors hold, so a config that promises more than the file has never gets to allocate.
    /// </summary>
    public static ModelConfig ReadConfig(string path)
    {
        SafeTensors.Verify(path);
        var metadata = SafeTensors.ReadMetadata(path);
        if (metadata.GetValueOrDefault(KindKey) == PyTorchKind)
        {
            throw Bad(path, "it holds weights in PyTorch's layout (written by paracuda export --format pytorch); bring them back with paracuda import");
        }

        if (!metadata.TryGetValue(ConfigKey, out var json))
        {
            throw Bad(path, "it has no ParaCuda model config in its metadata (was it written by ParaCuda?)");
        }

        ModelConfig config;
        try
        {
            config = ModelConfig.FromJson(json);
        }
        catch (JsonException e)
        {
            throw Bad(path, $"its model config is not valid JSON ({e.Message})");
        }

        if (config.Problem() is { } problem)
        {
            throw Bad(path, $"its model config cannot build a model ({problem})");
        }

        var held = SafeTensors.ReadIndex(path).Where(e => !e.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).Sum(e => e.Value.Shape.NumElements);
        var described = config.ParameterCount();
        return held == described
            ? config
            : throw Bad(path, string.Create(CultureInfo.InvariantCulture, $"its model config describes {described:N0} parameters but its tensors hold {held:N0}: the config and the weights do not belong together"));
    }

    /// <summary>Builds the model a checkpoint describes and loads its weights (from either kind of checkpoint).</summary>
    public static VisionModel LoadModel(string path, ComputeContext? context = null, IReadOnlyList<ComputeContext>? branchContexts = null, bool batchedBranches = false)
    {
        var config = ReadConfig(path);
        var model = ModelFactory.Create(config, ModuleInit.Create(0, context, batchedBranches: batchedBranches), branchContexts);
        try
        {
            LoadWeights(path, model);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads a checkpoint's weights into <paramref name="model"/>; its config must equal the model's.</summary>
    public static void LoadWeights(string path, VisionModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckConfig(path, model.Config);
        using var file = SafeTensors.Read(path, model.Context);
        var weights = file.Tensors.Where(t => !t.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToDictionary();
        try
        {
            model.LoadStateDict(weights);
        }
        catch (InvalidDataException e)
        {
            throw Bad(path, e.Message);
        }
    }

    /// <summary>
    /// Restores a training checkpoint into a freshly built model and optimizer and returns where the run
    /// stands. The file is never written; on failure the caller discards the half-restored pair.
    /// </summary>
    public static TrainingState Restore(string path, VisionModel model, Adam optimizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        CheckConfig(path, model.Config);
        var state = ReadState(path);

        using var file = SafeTensors.Read(path, model.Context);
        var weights = file.Tensors.Where(t => !t.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal)).ToDictionary();
        var moments = file.Tensors.Where(t => t.Key.StartsWith(OptimizerPrefix, StringComparison.Ordinal))
            .ToDictionary(t => t.Key[OptimizerPrefix.Length..], t => t.Value);
        try
        {
            model.LoadStateDict(weights);
            optimizer.LoadState(moments, state.ParameterSteps);
        }
        catch (InvalidDataException e)
        {
            throw Bad(path, e.Message);
        }

        model.Generator.Seed = state.GeneratorSeed;
        model.Generator.Offset = state.GeneratorOffset;
        return state;
    }

    /// <summary>Where the run a training checkpoint holds stands (its options, its counters, its metrics), without its tensors.</summary>
    public static TrainingState ReadState(string path)
    {
        var metadata = SafeTensors.ReadMetadata(path);
        if (!metadata.TryGetValue(StateKey, out var json) || metadata.GetValueOrDefault(KindKey) != "training")
        {
            throw Bad(path, "it holds weights only, not a training state to resume from");
        }

        try
        {
            return JsonSerializer.Deserialize(json, TrainingJson.Default.TrainingState) ?? throw new JsonException("null state");
        }
        catch (JsonException e)
        {
            throw Bad(path, $"its training state is not valid ({e.Message})");
        }
    }

    private static CheckpointFormatException Bad(string path, string problem) => new($"{path}: {problem}");

    private static void CheckConfig(string path, ModelConfig expected)
    {
        var stored = ReadConfig(path);
        var differences = stored.Differences(expected);
        if (differences.Count > 0)
        {
            throw Bad(path, $"it was saved from a different model ({string.Join(", ", differences)})");
        }
    }
}
