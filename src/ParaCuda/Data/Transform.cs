namespace ParaCuda.Data;

/// <summary>
/// How a stored byte image becomes model input, in torchvision's order: bilinear resize to
/// <see cref="OutputSize"/>² (when the source differs), random crop after zero-padding by
/// <see cref="CropPadding"/> (RandomCrop(size, padding)), random horizontal flip with probability 1/2
/// (when <see cref="HorizontalFlip"/>), then ToTensor + Normalize: (pixel/255 − mean[c]) / std[c].
/// </summary>
public sealed record Transform(float[] Mean, float[] Std, int OutputSize, int CropPadding = 0, bool HorizontalFlip = false)
{
    // Output sizes up to this keep the per-image resampling tables on the stack.
    private const int MaxStackSize = 1024;

    /// <summary>
    /// The reference implementation's settings for a named dataset: mean 0.5 and std 0.2 in every channel;
    /// training adds 4-pixel padded random crops and horizontal flips.
    /// </summary>
    public static Transform ForDataset(string dataset, int outputSize, bool train) =>
        Reference(Datasets.Channels(dataset), outputSize, train);

    /// <summary><see cref="ForDataset"/>'s settings for images with <paramref name="channels"/> channels.</summary>
    public static Transform Reference(int channels, int outputSize, bool train)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        return new Transform(
            Enumerable.Repeat(0.5f, channels).ToArray(),
            Enumerable.Repeat(0.2f, channels).ToArray(),
            outputSize,
            CropPadding: train ? 4 : 0,
            HorizontalFlip: train);
    }

    /// <summary>Floats one transformed image takes: C·OutputSize².</summary>
    public int OutputLength(int channels) => channels * OutputSize * OutputSize;

    /// <summary>
    /// Writes the transformed C×H×W <paramref name="image"/> into <paramref name="destination"/>
    /// (C×OutputSize×OutputSize), drawing the crop offsets and then the flip from <paramref name="random"/>.
    /// Each output pixel is computed straight from the source bytes (resize, crop, flip and normalisation
    /// fused), so no intermediate image is stored.
    /// </summary>
    public void Apply(ReadOnlySpan<byte> image, int channels, int height, int width, Span<float> destination, ref SplitMix64 random)
    {
        CheckChannels(channels);
        if (height <= 0 || width <= 0 || image.Length != (long)channels * height * width)
        {
            throw new ArgumentException($"image of {image.Length} bytes is not {channels}×{height}×{width}", nameof(image));
        }

        var size = OutputSize;
        if (destination.Length != OutputLength(channels))
        {
            throw new ArgumentException($"destination holds {destination.Length} floats, a {channels}×{size}×{size} image needs {OutputLength(channels)}", nameof(destination));
        }

        // Offsets of the crop window relative to the unpadded image, as RandomCrop draws them: top first.
        var top = CropPadding > 0 ? random.Next((2 * CropPadding) + 1) - CropPadding : 0;
        var left = CropPadding > 0 ? random.Next((2 * CropPadding) + 1) - CropPadding : 0;
        var flip = HorizontalFlip && random.NextBool();

        Span<int> rowTaps = size <= MaxStackSize ? stackalloc int[2 * size] : new int[2 * size];
        Span<int> colTaps = size <= MaxStackSize ? stackalloc int[2 * size] : new int[2 * size];
        Span<float> rowWeights = size <= MaxStackSize ? stackalloc float[size] : new float[size];
        Span<float> colWeights = size <= MaxStackSize ? stackalloc float[size] : new float[size];
        var (rowStart, rowEnd) = Taps(height, size, top, mirror: false, rowTaps, rowWeights);
        var (colStart, colEnd) = Taps(width, size, left, flip, colTaps, colWeights);

        var plane = height * width;
        for (var c = 0; c < channels; c++)
        {
            // (v/255 − mean)/std as one multiply-add; padding is a black pixel, v = 0.
            var scale = 1f / (255f * Std[c]);
            var black = -Mean[c] / Std[c];
            var source = image.Slice(c * plane, plane);
            var output = destination.Slice(c * size * size, size * size);
            output[..(rowStart * size)].Fill(black);
            output[(rowEnd * size)..].Fill(black);
            for (var y = rowStart; y < rowEnd; y++)
            {
                var row = output.Slice(y * size, size);
                row[..colStart].Fill(black);
                row[colEnd..].Fill(black);
                var upper = source.Slice(rowTaps[2 * y] * width, width);
                var lower = source.Slice(rowTaps[(2 * y) + 1] * width, width);
                var wy = rowWeights[y];
                for (var x = colStart; x < colEnd; x++)
                {
                    var x0 = colTaps[2 * x];
                    var x1 = colTaps[(2 * x) + 1];
                    var wx = colWeights[x];
                    var a = upper[x0] + ((upper[x1] - upper[x0]) * wx);
                    var b = lower[x0] + ((lower[x1] - lower[x0]) * wx);
                    row[x] = ((a + ((b - a) * wy)) * scale) + black;
                }
            }
        }
    }

    internal void CheckChannels(int channels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(OutputSize, nameof(OutputSize));
        ArgumentOutOfRangeException.ThrowIfNegative(CropPadding, nameof(CropPadding));
        if (Mean is null || Std is null || Mean.Length != channels || Std.Length != channels)
        {
            throw new ArgumentException($"transform has {Mean?.Length} means and {Std?.Length} stds for {channels}-channel images; give one per channel");
        }

        foreach (var std in Std)
        {
            if (!(std > 0 && float.IsFinite(std)))
            {
                throw new ArgumentException($"transform std [{string.Join(", ", Std)}] must be positive and finite");
            }
        }
    }

    /// <summary>
    /// For each output position i along one axis: the output position maps (through the flip and the crop
    /// offset) to position p of the resized axis, and p to the two source taps and the weight of the
    /// second, with align_corners=false: source = (p + 0.5)·in/out − 0.5, clamped at 0. Returns the range
    /// of i whose p lies inside the image (the rest is padding); that range is contiguous either way.
    /// </summary>
    private static (int Start, int End) Taps(int input, int size, int offset, bool mirror, Span<int> taps, Span<float> weights)
    {
        var ratio = (float)input / size;
        var start = size;
        var end = 0;
        for (var i = 0; i < size; i++)
        {
            var p = (mirror ? size - 1 - i : i) + offset;
            if (p < 0 || p >= size)
            {
                continue;
            }

            start = Math.Min(start, i);
            end = i + 1;
            var source = Math.Max(((p + 0.5f) * ratio) - 0.5f, 0f);
            var i0 = Math.Min((int)source, input - 1);
            taps[2 * i] = i0;
            taps[(2 * i) + 1] = Math.Min(i0 + 1, input - 1);
            weights[i] = source - i0;
        }

        return start < end ? (start, end) : (0, 0);
    }
}
