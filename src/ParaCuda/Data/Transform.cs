using ParaCuda.Backends;

namespace ParaCuda.Data;

/// <summary>
/// How a stored byte image becomes model input, in torchvision's order: bilinear resize to
/// <see cref="OutputSize"/>² (when the source differs), random crop after zero-padding by
/// <see cref="CropPadding"/> (RandomCrop(size, padding)), random horizontal flip with probability 1/2
/// (when <see cref="HorizontalFlip"/>), then ToTensor + Normalize: (pixel/255 − mean[c]) / std[c].
/// </summary>
public sealed record Transform(float[] Mean, float[] Std, int OutputSize, int CropPadding = 0, bool HorizontalFlip = false)
{
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
    public void Apply(ReadOnlySpan<byte> image, int channels, int height, int width, Span<float> destination, ref SplitMix64 random) =>
        Apply(image, channels, height, width, destination, Draw(ref random));

    /// <summary>
    /// <see cref="Apply(ReadOnlySpan{byte}, int, int, int, Span{float}, ref SplitMix64)"/> for a transform that
    /// draws nothing (evaluation and prediction: no crop padding, no flips).
    /// </summary>
    /// <exception cref="InvalidOperationException">The transform makes random choices; use the overload that takes the generator.</exception>
    public void Apply(ReadOnlySpan<byte> image, int channels, int height, int width, Span<float> destination)
    {
        if (CropPadding > 0 || HorizontalFlip)
        {
            throw new InvalidOperationException("this transform draws random crops or flips; pass the SplitMix64 they come from");
        }

        Apply(image, channels, height, width, destination, default(ImageDraw));
    }

    /// <summary>The random choices of one image (crop offsets relative to the unpadded image, top first, then the flip), as RandomCrop and RandomHorizontalFlip draw them.</summary>
    public ImageDraw Draw(ref SplitMix64 random)
    {
        var top = CropPadding > 0 ? random.Next((2 * CropPadding) + 1) - CropPadding : 0;
        var left = CropPadding > 0 ? random.Next((2 * CropPadding) + 1) - CropPadding : 0;
        return new ImageDraw(top, left, HorizontalFlip && random.NextBool());
    }

    /// <summary>
    /// The per-channel constants of the normalisation, as the fused loop uses them: pixel·Scale + Black,
    /// Scale = 1/(255·std), Black = −mean/std (a padded pixel, which is black).
    /// </summary>
    public (float[] Scale, float[] Black) Normalization() =>
        (Std.Select(s => 1f / (255f * s)).ToArray(), Mean.Zip(Std, (m, s) => -m / s).ToArray());

    /// <summary><see cref="Apply(ReadOnlySpan{byte}, int, int, int, Span{float}, ref SplitMix64)"/> with the random choices already drawn.</summary>
    public void Apply(ReadOnlySpan<byte> image, int channels, int height, int width, Span<float> destination, ImageDraw draw)
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

        var (scale, black) = Normalization();
        ImageTransform.Run(image, channels, height, width, size, draw, scale, black, destination);
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
}
