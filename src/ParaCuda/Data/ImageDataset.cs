namespace ParaCuda.Data;

/// <summary>
/// A labelled image set held in memory as bytes, NCHW: <see cref="Pixels"/> holds image i at
/// [i·C·H·W, (i+1)·C·H·W), channel planes one after another. Bytes rather than floats keep CIFAR-100
/// at 150 MB instead of 600; the <see cref="DataLoader"/> converts batch by batch.
/// </summary>
public sealed class ImageDataset
{
    /// <summary>
    /// Wraps the given memory without copying it; the caller must not change it afterwards.
    /// </summary>
    /// <exception cref="ArgumentException">A size is not positive, the pixel count does not match, or a label is out of range.</exception>
    public ImageDataset(string name, int channels, int height, int width, int classes, ReadOnlyMemory<byte> pixels, ReadOnlyMemory<int> labels)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (channels <= 0 || height <= 0 || width <= 0)
        {
            throw new ArgumentException($"dataset '{name}': image size {channels}×{height}×{width} must be positive in every dimension");
        }

        if (classes <= 0)
        {
            throw new ArgumentException($"dataset '{name}': needs at least one class, got {classes}", nameof(classes));
        }

        var imageBytes = (long)channels * height * width;
        if (pixels.Length != labels.Length * imageBytes)
        {
            throw new ArgumentException(
                $"dataset '{name}': {labels.Length} labels need {labels.Length * imageBytes} pixel bytes ({channels}×{height}×{width} each) but {pixels.Length} were given",
                nameof(pixels));
        }

        var span = labels.Span;
        for (var i = 0; i < span.Length; i++)
        {
            if ((uint)span[i] >= (uint)classes)
            {
                throw new ArgumentException($"dataset '{name}': label {span[i]} at index {i} is outside 0..{classes - 1}", nameof(labels));
            }
        }

        Name = name;
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
        Pixels = pixels;
        Labels = labels;
    }

    public string Name { get; }

    public int Count => Labels.Length;

    public int Channels { get; }

    public int Height { get; }

    public int Width { get; }

    public int Classes { get; }

    /// <summary>Bytes per image: C·H·W.</summary>
    public int ImageBytes => Channels * Height * Width;

    /// <summary>All images, NCHW, Count·C·H·W bytes.</summary>
    public ReadOnlyMemory<byte> Pixels { get; }

    /// <summary>One label per image, each in [0, <see cref="Classes"/>).</summary>
    public ReadOnlyMemory<int> Labels { get; }

    /// <summary>The C·H·W bytes of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Image(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Pixels.Span.Slice(index * ImageBytes, ImageBytes);
    }

    /// <summary>A copy holding the given images in the given order (repeats allowed).</summary>
    public ImageDataset Subset(IReadOnlyList<int> indices, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var size = ImageBytes;
        var pixels = new byte[(long)indices.Count * size];
        var labels = new int[indices.Count];
        var source = Pixels.Span;
        var sourceLabels = Labels.Span;
        for (var i = 0; i < indices.Count; i++)
        {
            var index = indices[i];
            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(indices), $"index {index} at position {i} is outside 0..{Count - 1} of dataset '{Name}'");
            }

            source.Slice(index * size, size).CopyTo(pixels.AsSpan(i * size, size));
            labels[i] = sourceLabels[index];
        }

        return new ImageDataset(name ?? Name, Channels, Height, Width, Classes, pixels, labels);
    }

    /// <summary>
    /// The images whose label passes <paramref name="keep"/>, in their original order. Labels keep their
    /// values and <see cref="Classes"/> stays, so a model's output layer still lines up.
    /// </summary>
    public ImageDataset WhereLabel(Func<int, bool> keep, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var labels = Labels.Span;
        var indices = new List<int>();
        for (var i = 0; i < labels.Length; i++)
        {
            if (keep(labels[i]))
            {
                indices.Add(i);
            }
        }

        return Subset(indices, name);
    }

    /// <summary>
    /// A seeded random split like torch.utils.data.random_split: floor(Count·<paramref name="validationFraction"/>)
    /// images go to validation, the rest to training. Each part keeps the original order, so reading it
    /// sequentially (evaluation) stays sequential in memory; the loader shuffles training anyway.
    /// </summary>
    public (ImageDataset Train, ImageDataset Validation) Split(double validationFraction, int seed)
    {
        if (!(validationFraction >= 0 && validationFraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), $"validation fraction {validationFraction} is not in [0, 1]");
        }

        var validationCount = (int)Math.Floor(Count * validationFraction);
        var permutation = Permutation(Count, SplitMix64.For(RandomPurpose.Split, seed));
        var train = permutation.AsSpan(0, Count - validationCount);
        var validation = permutation.AsSpan(Count - validationCount);
        train.Sort();
        validation.Sort();
        return (Subset(train.ToArray(), $"{Name}:train"), Subset(validation.ToArray(), $"{Name}:val"));
    }

    /// <summary>A uniformly random permutation of 0..n-1 (Fisher-Yates).</summary>
    internal static int[] Permutation(int n, SplitMix64 random)
    {
        var order = new int[n];
        for (var i = 0; i < n; i++)
        {
            order[i] = i;
        }

        for (var i = n - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }

        return order;
    }
}
