using ParaCuda.Autograd;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Tensors;

namespace ParaCuda.Training;

/// <summary>Mean cross-entropy and accuracy (a fraction) of one prefix k over a dataset.</summary>
public sealed record PrefixScore(int K, double Loss, double Accuracy);

/// <summary>Scores a model on a dataset, for every prefix k = 1..B at the cost of one pass through the branches.</summary>
public static class Evaluation
{
    /// <summary>Scores <paramref name="model"/> on <paramref name="data"/> with the evaluation transform of its images (resize to the model's input, normalise).</summary>
    public static IReadOnlyList<PrefixScore> Run(VisionModel model, ImageDataset data, int batchSize = 256, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        return Run(model, data, Transform.Reference(data.Channels, model.Config.ImageSize, train: false), batchSize, ct);
    }

    /// <summary>Scores <paramref name="model"/> on <paramref name="data"/> transformed by <paramref name="transform"/>, in batches of <paramref name="batchSize"/>.</summary>
    public static IReadOnlyList<PrefixScore> Run(VisionModel model, ImageDataset data, Transform transform, int batchSize, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var prefixes = model.Prefixes;
        var input = new BatchInput(model, transform);
        using var loader = input.Loader(data, batchSize, shuffle: false, seed: 0);
        // Each batch's loss and correct count per k land on the device and are read once at the end, so the
        // host never waits for a batch.
        var slots = loader.BatchesPerEpoch * prefixes;
        var counts = new int[loader.BatchesPerEpoch];
        using var unscoped = TensorScope.Unscoped();
        using var losses = Tensor.Zeros(new Shape(Math.Max(slots, 1)), DType.Float32, model.Context);
        using var corrects = Tensor.Zeros(new Shape(Math.Max(slots, 1)), DType.Int32, model.Context);
        using (model.InferenceMode())
        {
            foreach (var batch in loader.Epoch(0, ct: ct))
            {
                using var scope = TensorScope.Begin();
                var (images, labels) = input.ToDevice(batch);
                var logits = model.ForwardAllPrefixes(images);
                for (var k = 0; k < prefixes; k++)
                {
                    var slot = (batch.Index * prefixes) + k;
                    model.Context.Ops.CopyAcross(F.CrossEntropy(logits[k], labels), losses.NarrowView(slot, 1));
                    model.Context.Ops.CountCorrect(logits[k], labels, corrects.NarrowView(slot, 1));
                }

                counts[batch.Index] = batch.Count;
            }
        }

        var (lossValues, correctValues) = (losses.ToArray<float>(), corrects.ToArray<int>());
        var loss = new double[prefixes];
        var correct = new long[prefixes];
        for (var b = 0; b < counts.Length; b++)
        {
            for (var k = 0; k < prefixes; k++)
            {
                loss[k] += (double)lossValues[(b * prefixes) + k] * counts[b];
                correct[k] += correctValues[(b * prefixes) + k];
            }
        }

        var n = Math.Max(data.Count, 1);
        return Enumerable.Range(0, prefixes).Select(k => new PrefixScore(k + 1, loss[k] / n, (double)correct[k] / n)).ToList();
    }

    /// <summary>How many rows of <paramref name="logits"/> have their largest value at the label.</summary>
    internal static long CountCorrect(Tensor logits, Tensor labels)
    {
        using var count = Tensor.Zeros(new Shape(1), DType.Int32, logits.Context);
        logits.Context.Ops.CountCorrect(logits, labels, count);
        return (long)count.Item();
    }
}
