using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class VisionTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [Test]
    public void Patchify_orders_features_as_p1_p2_channel()
    {
        using var scope = TensorScope.Begin();

        // One 2-channel 4×4 image; value = 100·c + 10·y + x.
        var image = new float[2 * 4 * 4];
        for (var c = 0; c < 2; c++)
        {
            for (var y = 0; y < 4; y++)
            {
                for (var x = 0; x < 4; x++)
                {
                    image[(c * 16) + (y * 4) + x] = (100 * c) + (10 * y) + x;
                }
            }
        }

        var patches = F.Patchify(Tensor.FromArray(image, new Shape(1, 2, 4, 4)), 2);
        Assert.That(patches.Shape, Is.EqualTo(new Shape(1, 4, 8)));

        // Patch 1 is the top-right 2×2 block: (p1, p2, c) order.
        Assert.That(patches.ToArray<float>()[8..16], Is.EqualTo(new float[] { 2, 102, 3, 103, 12, 112, 13, 113 }));
    }

    [Test]
    public void Patchify_matches_reference_on_random_images()
    {
        using var scope = TensorScope.Begin();
        var images = Rand.Values(3 * 3 * 28 * 28, 1);
        var patches = Rand.Poisoned(new Shape(3, 49, 48));
        s_ops.Patchify(Rand.Tensor(images, new Shape(3, 3, 28, 28)), 4, patches);
        Close.Check(patches.ToArray<float>(), Reference.Patchify(images, 3, 3, 28, 28, 4), 0, "patches");
    }

    [Test]
    public void AssembleTokens_gradients_match_finite_differences() =>
        GradCheck.Run(
            "AssembleTokens",
            [new Shape(3, 4, 5), new Shape(5), new Shape(5, 5)],
            t => F.AssembleTokens(t[0], t[1], t[2]),
            v => Reference.AssembleTokens(v[0], v[1], v[2], 3, 4, 5));

    [TestCase(Pooling.Cls)]
    [TestCase(Pooling.Mean)]
    public void PoolTokens_gradients_match_finite_differences(Pooling mode) =>
        GradCheck.Run(
            $"PoolTokens {mode}",
            [new Shape(3, 6, 4)],
            t => F.PoolTokens(t[0], mode),
            v => Reference.PoolTokens(v[0], 3, 6, 4, mode));
}
