using System.Diagnostics;
using System.Text.Json;
using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Optim;
using ParaCuda.Tensors;

namespace ParaCuda.Compression;

/// <summary>One row of the compression trade-off: the model reduced to the <see cref="K"/> branches listed (1-based).</summary>
public sealed record TradeOffRow(
    int K,
    string Branches,
    long Parameters,
    double CompressionRatio,
    double ValAccuracy,
    double TestAccuracy,
    double LatencyMs,
    double ImagesPerSecond);

/// <summary>What <c>paracuda compress</c> measured, saved beside the compressed checkpoint as JSON.</summary>
public sealed record CompressionReport(
    string Source,
    string Strategy,
    string Device,
    long TotalParameters,
    IReadOnlyList<TradeOffRow> Rows,
    int KeptK,
    string KeptBranches,
    int RefitEpochs,
    double TestAccuracyBeforeRefit,
    double TestAccuracyAfterRefit)
{
    public string ToJson() => JsonSerializer.Serialize(this, CompressionJson.Default.CompressionReport);

    public static CompressionReport FromJson(string json) =>
        JsonSerializer.Deserialize(json, CompressionJson.Default.CompressionReport) ?? throw new JsonException("empty compression report");
}

/// <summary>Builds, re-fits and times ParaFormers reduced to a subset of their branches.</summary>
public static class Compressor
{
    /// <summary>
    /// A new, independent ParaFormer holding copies of the embedding, the head and the chosen branches (in
    /// the order given): it has fewer parameters, launches fewer branches and saves a smaller checkpoint.
    /// Keeping the first k gives exactly the source's prefix forward over k.
    /// </summary>
    public static ParaFormer Keep(ParaFormer source, IReadOnlyList<int> branches)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(branches);
        if (branches.Count == 0 || branches.Any(b => b < 0 || b >= source.Branches.Count) || branches.Distinct().Count() != branches.Count)
        {
            throw new ArgumentException($"branches to keep must be distinct and in 1..{source.Branches.Count}, got [{string.Join(", ", branches.Select(b => b + 1))}]", nameof(branches));
        }

        var state = source.StateDict();
        var renamed = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in state)
        {
            if (!name.StartsWith("branches.", StringComparison.Ordinal))
            {
                renamed[name] = tensor;
            }
        }

        for (var i = 0; i < branches.Count; i++)
        {
            var from = $"branches.{branches[i]}.";
            foreach (var (name, tensor) in state.Where(e => e.Key.StartsWith(from, StringComparison.Ordinal)))
            {
                renamed[$"branches.{i}.{name[from.Length..]}"] = tensor;
            }
        }

        var kept = new ParaFormer(source.Config with { Branches = branches.Count }, ModuleInit.Create(0, source.Context, source.BranchContexts, source.Batched));
        kept.LoadStateDict(renamed);
        return kept;
    }

    /// <summary>
    /// Re-fits the shared head (LayerNorm and Linear) on the kept branches' pooled training features, every
    /// other weight fixed: a few cheap epochs over precomputed features, no pass through the branches.
    /// </summary>
    public static void RefitHead(ParaFormer model, BranchFeatures train, IReadOnlyList<int> subset, int epochs, float learningRate, int batchSize, int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        var head = model.Head;
        var context = model.Context;
        using var optimizer = new Adam(head.NamedParameters("head."), new AdamParameters(learningRate));
        var order = Enumerable.Range(0, train.Count).ToArray();
        var random = new Random(seed);
        head.Train();
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            random.Shuffle(order);
            for (var start = 0; start < order.Length; start += batchSize)
            {
                using var scope = TensorScope.Begin();
                var rows = order.AsSpan(start, Math.Min(batchSize, order.Length - start));
                var labels = new int[rows.Length];
                for (var i = 0; i < rows.Length; i++)
                {
                    labels[i] = train.Labels[rows[i]];
                }

                var pooled = Tensor.FromArray(train.Sum(subset, rows), new Shape(rows.Length, train.Dim), context);
                optimizer.ZeroGrad();
                F.CrossEntropy(head.Classify(pooled), Tensor.FromArray(labels, new Shape(rows.Length), context)).Backward();
                optimizer.Step();
            }
        }
    }

    /// <summary>
    /// Inference cost of <paramref name="model"/>: median latency of one image, and throughput at a batch
    /// of <paramref name="batch"/> images, after warm-up (no gradients, eval mode).
    /// </summary>
    public static (double LatencyMs, double ImagesPerSecond) Time(VisionModel model, ReadOnlySpan<float> image, int batch = 256, int latencyRuns = 100, int throughputRuns = 20)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        var shape = new Shape(1, c.Channels, c.ImageSize, c.ImageSize);
        if (image.Length != shape.NumElements)
        {
            throw new ArgumentException($"an image for this model has {shape.NumElements} values, got {image.Length}", nameof(image));
        }

        using var inference = model.InferenceMode();
        var many = new float[image.Length * batch];
        for (var i = 0; i < batch; i++)
        {
            image.CopyTo(many.AsSpan(i * image.Length));
        }

        using var one = Tensor.FromArray(image, shape, model.Context);
        using var full = Tensor.FromArray(many, new Shape(batch, c.Channels, c.ImageSize, c.ImageSize), model.Context);
        var latency = Median(one, latencyRuns);
        var perBatch = Median(full, throughputRuns);
        return (latency * 1e3, batch / perBatch);

        double Median(Tensor input, int runs)
        {
            var seconds = new double[runs];
            // A few warm-up runs first: the first passes fill the host pool and the JIT's tiers.
            const int WarmUp = 3;
            for (var r = -WarmUp; r < runs; r++)
            {
                using var scope = TensorScope.Begin();
                var clock = Stopwatch.StartNew();
                model.Forward(input).ToArray<float>();
                if (r >= 0)
                {
                    seconds[r] = clock.Elapsed.TotalSeconds;
                }
            }

            Array.Sort(seconds);
            return seconds[runs / 2];
        }
    }
}
