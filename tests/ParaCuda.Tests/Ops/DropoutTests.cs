using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class DropoutTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    // Known-answer vectors of Philox4x32-10 from the Random123 distribution (counter, key → output).
    [TestCase(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [TestCase(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [TestCase(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Philox_reproduces_the_reference_vectors(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint r0, uint r1, uint r2, uint r3)
    {
        var result = Philox.Block(((ulong)k1 << 32) | k0, ((ulong)c3 << 32) | c2, ((ulong)c1 << 32) | c0);
        Assert.That(result, Is.EqualTo((r0, r1, r2, r3)));
    }

    [Test]
    public void Dropout_drops_about_p_and_rescales_the_rest()
    {
        using var scope = TensorScope.Begin();
        const int n = 100_000;
        const float p = 0.3f;
        var x = Rand.Values(n, 1);
        var y = Rand.Poisoned(new Shape(n));
        s_ops.Dropout(Rand.Tensor(x, new Shape(n)), y, p, 42, 7);
        var values = y.ToArray<float>();
        var dropped = values.Count(v => v == 0f);
        Assert.That(dropped / (double)n, Is.EqualTo(p).Within(0.01));
        for (var i = 0; i < n; i++)
        {
            var keep = Philox.Uniform(42, 7, (ulong)i) >= p;
            Assert.That(values[i], Is.EqualTo(keep ? (float)x[i] * (1f / (1f - p)) : 0f), $"element {i}");
        }
    }

    [Test]
    public void Dropout_backward_applies_the_forward_mask()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(64, 33), 1, requiresGrad: true);
        var y = F.Dropout(x, 0.5f, new Generator(3), training: true);
        var dy = Rand.Tensor(y.Shape, 2);
        y.Backward(dy);
        var (xs, ys, dys, dxs) = (x.ToArray<float>(), y.ToArray<float>(), dy.ToArray<float>(), x.Grad!.ToArray<float>());
        for (var i = 0; i < xs.Length; i++)
        {
            Assert.That(dxs[i], Is.EqualTo(ys[i] == 0f ? 0f : dys[i] * 2f), $"element {i}");
        }
    }

    [Test]
    public void Each_call_takes_a_fresh_stream_and_eval_is_identity()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(1000), 1);
        var generator = new Generator(5);
        var first = F.Dropout(x, 0.5f, generator, training: true).ToArray<float>();
        var second = F.Dropout(x, 0.5f, generator, training: true).ToArray<float>();
        Assert.That(first, Is.Not.EqualTo(second));
        Assert.That(generator.Offset, Is.EqualTo(2));
        generator.Offset = 0;
        Assert.That(F.Dropout(x, 0.5f, generator, training: true).ToArray<float>(), Is.EqualTo(first), "same (seed, offset), same mask");
        Assert.That(F.Dropout(x, 0.5f, generator, training: false), Is.SameAs(x));
    }
}
