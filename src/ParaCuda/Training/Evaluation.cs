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
    public static IReadOnlyList<PrefixScore> Run(VisionModel model, ImageDataset data, Transform transform, int batchSize, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var prefixes = model.Prefixes;
        var loss = new double[prefixes];
        var correct = new long[prefixes];
        using (model.InferenceMode())
        {
            using var loader = new DataLoader(data, batchSize, transform, shuffle: false, seed: 0);
            foreach (var batch in loader.Epoch(0, ct: ct))
            {
                using var scope = TensorScope.Begin();
                var (images, labels) = ToDevice(batch, model);
                var logits = model.ForwardAllPrefixes(images);
                for (var k = 0; k < prefixes; k++)
                {
                    loss[k] += F.CrossEntropy(logits[k], labels).Item() * batch.Count;
                    correct[k] += CountCorrect(logits[k], labels);
                }
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

    /// <summary>A host batch as an image tensor [N, C, S, S] and a label tensor [N] on the model's context.</summary>
    internal static (Tensor Images, Tensor Labels) ToDevice(HostBatch batch, VisionModel model)
    {
        var images = Tensor.FromArray(batch.Images.Span, new Shape(batch.Count, batch.Channels, batch.Size, batch.Size), model.Context);
        var labels = Tensor.FromArray(batch.Labels.Span, new Shape(batch.Count), model.Context);
        return (images, labels);
    }
}
