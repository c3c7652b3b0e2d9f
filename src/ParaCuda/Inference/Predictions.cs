namespace ParaCuda.Inference;

/// <summary>What a model said about a batch of images: one row of logits per image, in the order given.</summary>
public sealed class Predictions
{
    internal Predictions(float[] logits, int count, int classes, int prefix)
    {
        Logits = logits;
        Count = count;
        Classes = classes;
        Prefix = prefix;
    }

    /// <summary>Images predicted.</summary>
    public int Count { get; }

    /// <summary>Logits per image: the model's number of classes.</summary>
    public int Classes { get; }

    /// <summary>How many branches (the prefix k) the logits come from.</summary>
    public int Prefix { get; }

    /// <summary>Logits, row-major [<see cref="Count"/>, <see cref="Classes"/>].</summary>
    public float[] Logits { get; }

    /// <summary>The logits of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> Row(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Logits.AsSpan(index * Classes, Classes);
    }

    /// <summary>The predicted class of every image: the index of its largest logit (the first one on ties, as torch.argmax).</summary>
    public int[] Labels()
    {
        var labels = new int[Count];
        for (var i = 0; i < Count; i++)
        {
            var row = Row(i);
            var best = 0;
            for (var c = 1; c < row.Length; c++)
            {
                if (row[c] > row[best])
                {
                    best = c;
                }
            }

            labels[i] = best;
        }

        return labels;
    }
}
