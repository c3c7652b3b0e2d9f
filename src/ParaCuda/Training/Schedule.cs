namespace ParaCuda.Training;

/// <summary>
/// One optimizer step on one batch: the loss of the first <see cref="Prefix"/> branches (or, with
/// <see cref="AllPrefixes"/>, the mean loss over every prefix 1..Prefix), backward, optional gradient
/// clipping, update. Branches below <see cref="FrozenBelow"/> get no gradient and no update. With
/// <see cref="AllPrefixes"/> the mean runs over the prefixes <see cref="From"/>..Prefix.
/// </summary>
public sealed record TrainStep(int Prefix, bool Clip, int FrozenBelow = 0, bool AllPrefixes = false, int From = 1);

/// <summary>A pass over the training set in which every batch gets the same list of steps.</summary>
public sealed record TrainPass(string Name, IReadOnlyList<TrainStep> Steps);

/// <summary>
/// How a model's branches are trained: the passes that make up each epoch. One small class per
/// schedule; the trainer runs whatever passes a schedule returns.
/// </summary>
public abstract class Schedule
{
    public abstract string Name { get; }

    /// <summary>
    /// The passes of <paramref name="epoch"/> (0-based) for a model with <paramref name="branches"/> prefixes, of
    /// which the progressive schedules train <paramref name="firstPrefix"/>..branches (1 unless expanding a model).
    /// </summary>
    public abstract IReadOnlyList<TrainPass> Passes(int epoch, int epochs, int firstPrefix, int branches);

    /// <summary>The schedules selectable with --schedule.</summary>
    public static IReadOnlyList<string> Names { get; } = ["lpa", "prefix", "staged", "joint"];

    public static Schedule Create(string name, IReadOnlyList<int>? stageEpochs = null, bool freezeEarlier = false) => name.ToLowerInvariant() switch
    {
        "lpa" => new LpaSchedule(),
        "staged" => new StagedSchedule(stageEpochs, freezeEarlier),
        "prefix" => new PrefixSchedule(),
        "joint" => new JointSchedule(),
        _ => throw new ArgumentException($"unknown schedule '{name}'; choose one of: {string.Join(", ", Names)}", nameof(name)),
    };
}

/// <summary>
/// Progressive approximation as the reference code trains it: for every batch, k = 1..B steps, each
/// on the loss of the first k branches with the global gradient norm clipped to 1; then a second pass
/// over the epoch trains the full model with one (unclipped, as in the reference) step per batch.
/// </summary>
public sealed class LpaSchedule : Schedule
{
    public override string Name => "lpa";

    public override IReadOnlyList<TrainPass> Passes(int epoch, int epochs, int firstPrefix, int branches) =>
    [
        new("progressive", Enumerable.Range(firstPrefix, branches - firstPrefix + 1).Select(k => new TrainStep(k, Clip: true)).ToArray()),
        new("full", [new TrainStep(branches, Clip: false)]),
    ];
}

/// <summary>
/// Branch k joins at a stage boundary: from epoch <c>stageEpochs[k-2]</c> on the model trains on the
/// first k branches (branch 1 from the start). Earlier branches are optionally frozen. Without explicit
/// boundaries the epochs are split evenly among the branches.
/// </summary>
public sealed class StagedSchedule(IReadOnlyList<int>? stageEpochs, bool freezeEarlier) : Schedule
{
    public override string Name => "staged";

    public override IReadOnlyList<TrainPass> Passes(int epoch, int epochs, int firstPrefix, int branches)
    {
        var active = 1 + Boundaries(epochs, branches).Count(start => start <= epoch);
        return [new($"stage {active}", [new TrainStep(active, Clip: true, FrozenBelow: freezeEarlier ? active - 1 : 0)])];
    }

    /// <summary>Epochs at which branches 2..B join.</summary>
    public IReadOnlyList<int> Boundaries(int epochs, int branches)
    {
        if (stageEpochs is { Count: > 0 })
        {
            if (stageEpochs.Count != branches - 1 || stageEpochs.Zip(stageEpochs.Skip(1)).Any(p => p.First > p.Second))
            {
                throw new ArgumentException($"--stages needs {branches - 1} non-decreasing epochs (when branches 2..{branches} join), got [{string.Join(", ", stageEpochs)}]");
            }

            return stageEpochs;
        }

        return Enumerable.Range(1, branches - 1).Select(k => k * epochs / branches).ToArray();
    }
}

/// <summary>Ordinary training of the full model, one step per batch: the control for progressive approximation.</summary>
public sealed class JointSchedule : Schedule
{
    public override string Name => "joint";

    public override IReadOnlyList<TrainPass> Passes(int epoch, int epochs, int firstPrefix, int branches) =>
        [new("joint", [new TrainStep(branches, Clip: true)])];
}

/// <summary>
/// The prefix losses of <c>lpa</c> in one step: a single forward through every branch, loss = the mean
/// over k of cross-entropy(head(Σ_{b≤k} branch_b)), one backward and one (clipped) update per batch. All
/// branches run in parallel and each batch costs one step instead of B + 1.
/// </summary>
public sealed class PrefixSchedule : Schedule
{
    public override string Name => "prefix";

    public override IReadOnlyList<TrainPass> Passes(int epoch, int epochs, int firstPrefix, int branches) =>
        [new("prefix", [new TrainStep(branches, Clip: true, AllPrefixes: true, From: firstPrefix)])];
}
