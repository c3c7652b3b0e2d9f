using ParaCuda.Autograd;
using ParaCuda.Models;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Compression;

/// <summary>A subset of branches (0-based, in model order) and how the model scores with only them.</summary>
public sealed record BranchSubset(IReadOnlyList<int> Branches, double Loss, double Accuracy)
{
    public string Describe() => string.Join(",", Branches.Select(b => b + 1));
}

/// <summary>
/// Which branches to keep for each size k = 1..B. <c>first-k</c> keeps the prefix that progressive
/// approximation trains to stand alone; <c>greedy</c> grows a subset one branch at a time, each time adding the
/// branch that scores best on the validation features, and at every size reports the better of its subset and
/// the first k, so it is never worse than first-k on the data it selects on.
/// </summary>
public static class BranchSelection
{
    public static IReadOnlyList<string> Strategies { get; } = ["greedy", "first-k"];

    public static IReadOnlyList<BranchSubset> Select(string strategy, ClassifierHead head, BranchFeatures validation) => strategy switch
    {
        "greedy" => Greedy(head, validation),
        "first-k" => FirstK(head, validation),
        _ => throw new ArgumentException($"unknown selection strategy '{strategy}'; choose one of: {string.Join(", ", Strategies)}", nameof(strategy)),
    };

    public static IReadOnlyList<BranchSubset> FirstK(ClassifierHead head, BranchFeatures validation)
    {
        ArgumentNullException.ThrowIfNull(validation);
        return Enumerable.Range(1, validation.Branches).Select(k => Score(head, validation, Enumerable.Range(0, k).ToArray())).ToList();
    }

    public static IReadOnlyList<BranchSubset> Greedy(ClassifierHead head, BranchFeatures validation)
    {
        ArgumentNullException.ThrowIfNull(validation);
        var firstK = FirstK(head, validation);
        var chosen = new List<int>();
        var result = new List<BranchSubset>();
        for (var k = 1; k <= validation.Branches; k++)
        {
            var best = Enumerable.Range(0, validation.Branches)
                .Where(b => !chosen.Contains(b))
                .Select(b => Score(head, validation, [.. chosen, b]))
                .Aggregate((x, y) => Better(y, x) ? y : x);
            chosen = [.. best.Branches];
            result.Add(Better(firstK[k - 1], best) ? firstK[k - 1] : best);
        }

        return result;
    }

    /// <summary>Higher accuracy wins; equal accuracy goes to the lower loss.</summary>
    public static bool Better(BranchSubset a, BranchSubset b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return a.Accuracy > b.Accuracy || (a.Accuracy == b.Accuracy && a.Loss < b.Loss);
    }

    /// <summary>Validation loss and accuracy of the head on the summed features of <paramref name="subset"/>.</summary>
    public static BranchSubset Score(ClassifierHead head, BranchFeatures features, IReadOnlyList<int> subset)
    {
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(subset);
        var sorted = subset.Order().ToArray();
        using var inference = head.InferenceMode();
        using var scope = TensorScope.Begin();
        var context = head.Fc.Weight.Context;
        var rows = Enumerable.Range(0, features.Count).ToArray();
        var pooled = Tensor.FromArray(features.Sum(sorted, rows), new Shape(features.Count, features.Dim), context);
        var labels = Tensor.FromArray(features.Labels, new Shape(features.Count), context);
        var logits = head.Classify(pooled);
        var loss = F.CrossEntropy(logits, labels).Item();
        return new BranchSubset(sorted, loss, Evaluation.CountCorrect(logits, labels) / (double)Math.Max(features.Count, 1));
    }
}
