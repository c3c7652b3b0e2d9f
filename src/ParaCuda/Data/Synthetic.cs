namespace ParaCuda.Data;

/// <summary>
/// A learnable stand-in for a real image set, for tests and smoke runs: every class has a fixed random
/// smooth pattern per channel, and each image is its class pattern shifted by up to 2 pixels plus noise.
/// </summary>
public static class Synthetic
{
    private const int WavesPerPattern = 3;

    // At most this many cycles across the image, so a 2-pixel shift moves a pattern only a little.
    private const double MaxCycles = 1.5;

    private const double Contrast = 90;
    private const double NoiseStd = 20;
    private const int MaxShift = 2;

    /// <summary>
    /// <paramref name="count"/> images of <paramref name="channels"/>×<paramref name="size"/>×<paramref name="size"/>;
    /// image i has label i mod <paramref name="classes"/>, so every class is equally common. The same
    /// arguments give the same bytes.
    /// </summary>
    public static ImageDataset Create(int count, int classes, int channels, int size, int seed, string name = "synthetic")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(channels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);

        // A pattern is a sum of plane waves: per wave the cycles along y and x, a phase and an amplitude.
        var patternRandom = SplitMix64.For(RandomPurpose.SyntheticPattern, seed);
        var waves = new (double Fy, double Fx, double Phase, double Amplitude)[classes * channels * WavesPerPattern];
        for (var w = 0; w < waves.Length; w++)
        {
            var fy = ((patternRandom.NextDouble() * 2) - 1) * MaxCycles * 2 * Math.PI / size;
            var fx = ((patternRandom.NextDouble() * 2) - 1) * MaxCycles * 2 * Math.PI / size;
            waves[w] = (fy, fx, patternRandom.NextDouble() * 2 * Math.PI, 0.5 + (0.5 * patternRandom.NextDouble()));
        }

        var imageBytes = channels * size * size;
        var pixels = new byte[(long)count * imageBytes];
        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            var label = i % classes;
            labels[i] = label;
            var random = SplitMix64.For(RandomPurpose.SyntheticImage, seed, i);
            var dy = random.Next((2 * MaxShift) + 1) - MaxShift;
            var dx = random.Next((2 * MaxShift) + 1) - MaxShift;
            var image = pixels.AsSpan(i * imageBytes, imageBytes);
            for (var c = 0; c < channels; c++)
            {
                var pattern = waves.AsSpan(((label * channels) + c) * WavesPerPattern, WavesPerPattern);
                var total = 0.0;
                foreach (var wave in pattern)
                {
                    total += wave.Amplitude;
                }

                for (var y = 0; y < size; y++)
                {
                    for (var x = 0; x < size; x++)
                    {
                        var v = 0.0;
                        foreach (var wave in pattern)
                        {
                            v += wave.Amplitude * Math.Cos((wave.Fy * (y - dy)) + (wave.Fx * (x - dx)) + wave.Phase);
                        }

                        var value = 128 + (Contrast * v / total) + (NoiseStd * random.NextGaussian());
                        image[(((c * size) + y) * size) + x] = (byte)Math.Clamp(Math.Round(value), 0, 255);
                    }
                }
            }
        }

        return new ImageDataset(name, channels, size, size, classes, pixels, labels);
    }
}
