using ParaCuda.Backends;
using ParaCuda.Data;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.Data;

public class TransformTests
{
    private static float[] Apply(Transform transform, byte[] image, int channels, int height, int width, ulong seed = 0)
    {
        var output = new float[transform.OutputLength(channels)];
        var random = new SplitMix64(seed);
        transform.Apply(image, channels, height, width, output, ref random);
        return output;
    }

    /// <summary>A one-channel size×size image whose pixel (y, x) is 9y + x + 1: every pixel differs, none is black.</summary>
    private static byte[] Ramp(int size) =>
        Enumerable.Range(0, size * size).Select(i => (byte)((9 * (i / size)) + (i % size) + 1)).ToArray();

    [Test]
    public void Normalisation_matches_to_tensor_then_normalize()
    {
        byte[] image = [0, 51, 128, 255, 10, 20, 30, 40];
        var transform = new Transform([0.5f, 0.25f], [0.2f, 0.5f], OutputSize: 2);
        var output = Apply(transform, image, 2, 2, 2);
        for (var i = 0; i < image.Length; i++)
        {
            var (mean, std) = i < 4 ? (0.5f, 0.2f) : (0.25f, 0.5f);
            Assert.That(output[i], Is.EqualTo(((image[i] / 255f) - mean) / std).Within(1e-6), $"pixel {i}");
        }

        Assert.That(output[0], Is.EqualTo(-2.5f).Within(1e-6));
        Assert.That(output[3], Is.EqualTo(2.5f).Within(1e-6));
    }

    [Test]
    public void The_flip_mirrors_rows_in_about_half_the_samples()
    {
        const int size = 5;
        var image = Ramp(size);
        var plain = Apply(new Transform([0f], [1f], size), image, 1, size, size);
        var flipping = new Transform([0f], [1f], size, HorizontalFlip: true);
        var mirrored = Enumerable.Range(0, size * size).Select(i => plain[((i / size) * size) + (size - 1 - (i % size))]).ToArray();
        var flips = 0;
        for (var seed = 0UL; seed < 200; seed++)
        {
            var output = Apply(flipping, image, 1, size, size, seed);
            var flipped = output.SequenceEqual(mirrored);
            Assert.That(flipped || output.SequenceEqual(plain), Is.True, $"seed {seed}: neither the image nor its mirror");
            flips += flipped ? 1 : 0;
        }

        Assert.That(flips, Is.InRange(60, 140));
    }

    [Test]
    public void Padded_crops_shift_the_image_and_fill_the_border_with_black()
    {
        const int size = 8, padding = 3;
        var image = Ramp(size);
        var transform = new Transform([0.5f], [0.2f], size, CropPadding: padding);
        var black = (0f - 0.5f) / 0.2f;
        var offsets = new HashSet<(int, int)>();
        for (var seed = 0UL; seed < 300; seed++)
        {
            var output = Apply(transform, image, 1, size, size, seed);

            // Exactly one window offset (top, left) in [-p, p]² explains the output.
            var matches = new List<(int, int)>();
            for (var top = -padding; top <= padding; top++)
            {
                for (var left = -padding; left <= padding; left++)
                {
                    var fits = true;
                    for (var y = 0; y < size && fits; y++)
                    {
                        for (var x = 0; x < size && fits; x++)
                        {
                            var (sy, sx) = (y + top, x + left);
                            var inside = sy >= 0 && sy < size && sx >= 0 && sx < size;
                            var expected = inside ? ((image[(sy * size) + sx] / 255f) - 0.5f) / 0.2f : black;
                            fits = Math.Abs(output[(y * size) + x] - expected) < 1e-5;
                        }
                    }

                    if (fits)
                    {
                        matches.Add((top, left));
                    }
                }
            }

            Assert.That(matches, Has.Count.EqualTo(1), $"seed {seed}");
            offsets.Add(matches[0]);
        }

        // Every one of the 7×7 offsets turns up, including those that show the padding.
        Assert.That(offsets, Has.Count.EqualTo(((2 * padding) + 1) * ((2 * padding) + 1)));
    }

    [Test]
    public void Resizing_a_constant_image_keeps_it_constant()
    {
        var image = Enumerable.Repeat((byte)100, 28 * 28).ToArray();
        var output = Apply(new Transform([0.5f], [0.2f], 56), image, 1, 28, 28);
        Assert.That(output, Has.Length.EqualTo(56 * 56));
        Assert.That(output, Is.All.EqualTo(((100 / 255f) - 0.5f) / 0.2f).Within(1e-5));
    }

    [Test]
    public void Resizing_a_gradient_up_matches_bilinear_with_half_pixel_centres()
    {
        // 4x + 3y is linear, so bilinear interpolation reproduces it exactly at the (clamped) source
        // coordinate s = max((o + 0.5)·28/56 − 0.5, 0), capped at the last pixel.
        var image = new byte[28 * 28];
        for (var y = 0; y < 28; y++)
        {
            for (var x = 0; x < 28; x++)
            {
                image[(y * 28) + x] = (byte)((4 * x) + (3 * y));
            }
        }

        var output = Apply(new Transform([0f], [1f], 56), image, 1, 28, 28);
        static double Source(int o) => Math.Min(Math.Max(((o + 0.5) / 2) - 0.5, 0), 27);
        for (var y = 0; y < 56; y++)
        {
            for (var x = 0; x < 56; x++)
            {
                var expected = ((4 * Source(x)) + (3 * Source(y))) / 255;
                Assert.That(output[(y * 56) + x], Is.EqualTo(expected).Within(1e-5), $"({y}, {x})");
            }
        }

        Assert.That(output[(10 * 56) + 21] * 255, Is.EqualTo((4 * 10.25) + (3 * 4.75)).Within(1e-3));
    }

    [Test]
    public void Halving_averages_two_by_two_blocks()
    {
        byte[] image = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150];
        var output = Apply(new Transform([0f], [1f / 255f], 2), image, 1, 4, 4);
        Assert.That(output, Is.EqualTo(new[] { 25f, 45f, 105f, 125f }).Within(1e-4));
    }

    [Test]
    public void Reference_settings_follow_the_dataset()
    {
        var train = Transform.ForDataset("cifar10", 32, train: true);
        Assert.That(train.Mean, Is.EqualTo(new[] { 0.5f, 0.5f, 0.5f }));
        Assert.That(train.Std, Is.EqualTo(new[] { 0.2f, 0.2f, 0.2f }));
        Assert.That((train.OutputSize, train.CropPadding, train.HorizontalFlip), Is.EqualTo((32, 4, true)));
        var eval = Transform.ForDataset("fashion-mnist", 224, train: false);
        Assert.That((eval.Mean.Length, eval.OutputSize, eval.CropPadding, eval.HorizontalFlip), Is.EqualTo((1, 224, 0, false)));
        Assert.Throws<ArgumentException>(() => Transform.ForDataset("svhn", 32, train: true));
    }

    [Test]
    public void A_transform_with_the_wrong_number_of_channels_is_rejected()
    {
        var transform = Transform.ForDataset("cifar10", 32, train: false);
        var e = Assert.Throws<ArgumentException>(() => Apply(transform, new byte[32 * 32], 1, 32, 32));
        Assert.That(e.Message, Does.Contain("3 means and 3 stds for 1-channel images"));
        Assert.Throws<ArgumentException>(() => new DataLoader(Synthetic.Create(4, 2, 1, 32, 0), 2, transform, shuffle: false, seed: 0));
    }

    [Test]
    public void The_transform_op_reproduces_the_loaders_transform_from_its_draws()
    {
        var transform = Transform.Reference(3, 40, train: true);
        var rng = new Random(5);
        var images = Enumerable.Range(0, 4).Select(_ =>
        {
            var bytes = new byte[3 * 32 * 32];
            rng.NextBytes(bytes);
            return bytes;
        }).ToList();
        var randoms = Enumerable.Range(0, 4).Select(i => new SplitMix64((ulong)i + 10)).ToArray();
        var draws = new List<ImageDraw>();
        var expected = new List<float>();
        for (var i = 0; i < images.Count; i++)
        {
            var copy = randoms[i];
            draws.Add(transform.Draw(ref copy));
            expected.AddRange(Apply(transform, images[i], 3, 32, 32, (ulong)i + 10));
        }

        var (scale, black) = transform.Normalization();
        var output = Tensor.Empty(new Shape(4, 3, 40, 40));
        ComputeContext.Default.Ops.TransformImages(
            Tensor.FromArray(images.SelectMany(b => b).ToArray(), new Shape(4, 3, 32, 32)),
            Tensor.FromArray(draws.SelectMany(d => new[] { d.Top, d.Left, d.Flip ? 1 : 0 }).ToArray(), new Shape(4, 3)),
            scale,
            black,
            output);
        Assert.That(output.ToArray<float>(), Is.EqualTo(expected.ToArray()), "the same bits as Apply with the same random draws");
        Assert.That(draws.Select(d => d.Flip).Distinct().Count(), Is.EqualTo(2), "the draws cover both flips");
    }
}
