using ParaCuda.Autograd;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Compression;

/// <summary>
/// The pooled output [D] of every branch for every image of a dataset, held on the host. Pooling (the CLS
/// token or the token mean) is linear, so the head's input for any subset of branches is the sum of their
/// rows: one pass through the branches scores every subset, which is what makes greedy selection and head
/// re-fitting cheap.
/// </summary>
public sealed class BranchFeatures
{
    private readonly float[] _values;

    private BranchFeatures(float[] values, int[] labels, int branches, int dim)
    {
        _values = values;
        Labels = labels;
        Branches = branches;
        Dim = dim;
    }

    public int Count => Labels.Length;

    public int Branches { get; }

    public int Dim { get; }

    public int[] Labels { get; }

    /// <summary>Runs every branch of <paramref name="model"/> over <paramref name="data"/> (no augmentation, no dropout).</summary>
    public static BranchFeatures Extract(ParaFormer model, ImageDataset data, Transform transform, int batchSize, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var (branches, dim) = (model.Branches.Count, model.Config.Dim);
        var values = new float[checked(data.Count * branches * dim)];
        var labels = new int[data.Count];
        using (model.InferenceMode())
        {
            var input = new BatchInput(model, transform);
            using var loader = input.Loader(data, batchSize, shuffle: false, seed: 0);
            var row = 0;
            foreach (var batch in loader.Epoch(0, ct: ct))
            {
                using var scope = TensorScope.Begin();
                var (images, _) = input.ToDevice(batch);
                var tokens = model.Embed.Forward(images);
                for (var b = 0; b < branches; b++)
                {
                    var pooled = F.PoolTokens(model.BranchForward(b, tokens), model.Config.Pool).ToArray<float>();
                    for (var i = 0; i < batch.Count; i++)
                    {
                        pooled.AsSpan(i * dim, dim).CopyTo(values.AsSpan((((row + i) * branches) + b) * dim, dim));
                    }
                }

                batch.Labels.Span.CopyTo(labels.AsSpan(row));
                row += batch.Count;
            }
        }

        return new BranchFeatures(values, labels, branches, dim);
    }

    /// <summary>The pooled head input [rows.Count, D] of the branch subset, for the given images.</summary>
    public float[] Sum(IReadOnlyList<int> subset, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(subset);
        var sum = new float[rows.Length * Dim];
        for (var i = 0; i < rows.Length; i++)
        {
            var target = sum.AsSpan(i * Dim, Dim);
            foreach (var b in subset)
            {
                var source = _values.AsSpan(((rows[i] * Branches) + b) * Dim, Dim);
                System.Numerics.Tensors.TensorPrimitives.Add(target, source, target);
            }
        }

        return sum;
    }
}
