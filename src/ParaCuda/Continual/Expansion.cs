using ParaCuda.Compression;
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
        var grown = new ParaFormer(source.Config with { Branches = source.Branches.Count + add }, ModuleInit.Create(seed, source.Context, source.BranchContexts, source.Batched));
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

    /// <summary>
    /// An equal number of images of every class present in <paramref name="data"/> (as many as its rarest
    /// class has), drawn at random (seeded).
    /// </summary>
    public static ImageDataset ClassBalanced(ImageDataset data, int seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        var byClass = new SortedDictionary<int, List<int>>();
        var labels = data.Labels.Span;
        for (var i = 0; i < labels.Length; i++)
        {
            if (!byClass.TryGetValue(labels[i], out var rows))
            {
                byClass[labels[i]] = rows = [];
            }

            rows.Add(i);
        }

        var perClass = byClass.Count == 0 ? 0 : byClass.Values.Min(rows => rows.Count);
        var random = new Random(seed);
        var chosen = new List<int>();
        foreach (var rows in byClass.Values)
        {
            var shuffled = rows.ToArray();
            random.Shuffle(shuffled);
            chosen.AddRange(shuffled.Take(perClass));
        }

        return data.Subset(chosen, $"{data.Name}: {perClass:N0} per class × {byClass.Count} classes");
    }

    /// <summary>
    /// Re-fits the shared head on a class-balanced draw of <paramref name="data"/>, every branch and the
    /// embedding fixed. After expansion on new classes with a small replay buffer the head has seen thousands
    /// of images per new class and a few hundred per old one, and it learns that prior: old-class images get
    /// called new. Re-fitting on equal counts removes the bias (the classifier-balancing step of DER, Yan et
    /// al. 2021, whose expansion by added extractors is the closest relative of adding branches).
    /// </summary>
    public static ImageDataset BalanceHead(ParaFormer model, ImageDataset data, Transform transform, int epochs, int seed, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var balanced = ClassBalanced(data, seed);
        if (balanced.Count == 0)
        {
            throw new ArgumentException($"{data.Name} has no images to balance the head on", nameof(data));
        }

        var features = BranchFeatures.Extract(model, balanced, transform, 1000, ct);
        Compressor.RefitHead(model, features, Enumerable.Range(0, model.Branches.Count).ToList(), epochs, 1e-3f, 64, seed);
        return balanced;
    }
}
