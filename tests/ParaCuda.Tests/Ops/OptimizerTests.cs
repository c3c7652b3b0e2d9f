using ParaCuda.Backends;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

public class OptimizerTests
{
    private static readonly Backends.Ops s_ops = ComputeContext.Default.Ops;

    [Test]
    public void GlobalNorm_and_ClipByNorm_follow_clip_grad_norm()
    {
        using var scope = TensorScope.Begin();
        var a = Rand.Values(1000, 1);
        var b = Rand.Values(37, 2);
        var ta = Rand.Tensor(a, new Shape(1000));
        var tb = Rand.Tensor(b, new Shape(37));
        var norm = Rand.Poisoned(new Shape(1));
        s_ops.GlobalNorm([ta, tb], norm);
        var expected = Math.Sqrt(a.Concat(b).Sum(v => v * v));
        Assert.That(norm.Item(), Is.EqualTo(expected).Within(expected * 1e-6));

        // Above the limit: scaled to maxNorm / (norm + 1e-6).
        s_ops.ClipByNorm([ta, tb], norm, 2f);
        var coefficient = 2 / (norm.Item() + 1e-6);
        Close.Check(tb.ToArray<float>(), b.Select(v => v * coefficient).ToArray(), 1e-6, "clipped");

        // Below the limit: untouched.
        var before = tb.ToArray<float>();
        s_ops.ClipByNorm([tb], norm, 1e9f);
        Assert.That(tb.ToArray<float>(), Is.EqualTo(before));
    }

    [TestCase(false, 0f)]
    [TestCase(false, 0.1f)]
    [TestCase(true, 0.1f)]
    public void AdamUpdate_matches_torch_formulas_over_several_steps(bool decoupled, float weightDecay)
    {
        using var scope = TensorScope.Begin();
        const int n = 300;
        var hp = new AdamParameters(1e-2f, 0.9f, 0.99f, 1e-8f, weightDecay, decoupled);
        var p = Rand.Values(n, 1);
        var (m, v) = (new double[n], new double[n]);
        var tp = Rand.Tensor(p, new Shape(n));
        var (tm, tv) = (Tensor.Zeros(new Shape(n)), Tensor.Zeros(new Shape(n)));
        var count = Tensor.Zeros(new Shape(1), DType.Int32);
        for (var step = 1; step <= 4; step++)
        {
            var g = Rand.Values(n, 10 + step);
            s_ops.AdamUpdate([tp], [Rand.Tensor(g, new Shape(n))], [tm], [tv], hp, [count]);
            Assert.That(count.ToArray<int>()[0], Is.EqualTo(step), "the op advances the step count");
            for (var i = 0; i < n; i++)
            {
                if (decoupled)
                {
                    p[i] *= 1 - (hp.LearningRate * hp.WeightDecay);
                }
                else
                {
                    g[i] += hp.WeightDecay * p[i];
                }

                m[i] = (hp.Beta1 * m[i]) + ((1 - hp.Beta1) * g[i]);
                v[i] = (hp.Beta2 * v[i]) + ((1 - hp.Beta2) * g[i] * g[i]);
                var mHat = m[i] / (1 - Math.Pow(hp.Beta1, step));
                var vHat = v[i] / (1 - Math.Pow(hp.Beta2, step));
                p[i] -= hp.LearningRate * mHat / (Math.Sqrt(vHat) + hp.Epsilon);
            }
        }

        Close.Check(tp.ToArray<float>(), p, 1e-6, "parameters");
        Close.Check(tv.ToArray<float>(), v, 1e-5, "second moments");
    }

    [Test]
    public void AdamUpdate_takes_the_learning_rate_from_the_tensor_when_given_one()
    {
        using var scope = TensorScope.Begin();
        const int n = 50;
        float[] Update(AdamParameters hp, Tensor? learningRate)
        {
            var p = Rand.Tensor(new Shape(n), 3);
            s_ops.AdamUpdate([p], [Rand.Tensor(new Shape(n), 4)], [Tensor.Zeros(new Shape(n))], [Tensor.Zeros(new Shape(n))], hp, [Tensor.Zeros(new Shape(1), DType.Int32)], learningRate);
            return p.ToArray<float>();
        }

        var given = Update(new AdamParameters(5f, WeightDecay: 0.1f, DecoupledWeightDecay: true), Tensor.FromArray([1e-2f], new Shape(1)));
        Assert.That(given, Is.EqualTo(Update(new AdamParameters(1e-2f, WeightDecay: 0.1f, DecoupledWeightDecay: true), null)));
        Assert.That(given, Is.Not.EqualTo(Update(new AdamParameters(5f, WeightDecay: 0.1f, DecoupledWeightDecay: true), null)));
    }
}
