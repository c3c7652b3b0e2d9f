using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Training;

namespace ParaCuda.Continual;

/// <summary>Grows a trained ParaFormer by appending branches, the way progressive approximation allows.</summary>
public static class Expansion
{
    /// <summary>
    /// A new ParaFormer with <paramref name="add"/> more branches: the embedding, the head and the existing
    /// branches are exact copies of <paramref name="source"/>'s; the new branches are freshly initialised from
    /// <paramref name="seed"/>, appended after the old ones (so prefix k ≤ old B still means the old model's
    /// branches).
    /// </summary>
    public static ParaFormer AddBranches(ParaFormer source, int add, int seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(add);
        var grown = new ParaFormer(source.Config with { Branches = source.Branches.Count + add }, ModuleInit.Create(seed, source.Context));
        grown.LoadStateDict(source.StateDict(), strict: false);
        return grown;
    }

    /// <summary>
    /// Training options that train the appended branches progressively: the lpa and prefix schedules run over
    /// the prefixes that include new branches only; with <paramref name="freezeExisting"/> the old branches and
    /// the shared embedding stay fixed (the head always trains: new data may bring new classes).
    /// </summary>
    public static TrainOptions ForNewBranches(TrainOptions options, int existingBranches, bool freezeExisting)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options with { FirstPrefix = existingBranches + 1, FrozenBranches = freezeExisting ? existingBranches : 0 };
    }

    /// <summary>
    /// The images whose label passes <paramref name="isNew"/>, followed by <paramref name="replay"/> images drawn
    /// at random (seeded) from the rest: new data with a small replay buffer of what came before.
    /// </summary>
    public static ImageDataset NewData(ImageDataset train, Func<int, bool> isNew, int replay, int seed)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(isNew);
        ArgumentOutOfRangeException.ThrowIfNegative(replay);
        var labels = train.Labels.Span;
        var fresh = new List<int>();
        var other = new List<int>();
        for (var i = 0; i < labels.Length; i++)
        {
            (isNew(labels[i]) ? fresh : other).Add(i);
        }

        var replayed = other.ToArray();
        new Random(seed).Shuffle(replayed);
        var kept = Math.Min(replay, replayed.Length);
        return train.Subset([.. fresh, .. replayed.Take(kept)], $"{train.Name}: {fresh.Count:N0} new + {kept:N0} replayed");
    }
}
