using ParaCuda.Autograd;
using ParaCuda.Backends.Cpu;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Autograd;

public class AutogradTests
{
    [Test]
    public void A_tensor_used_twice_gets_the_sum_of_both_gradients()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(3, 4), 1, requiresGrad: true);
        var w1 = Rand.Tensor(new Shape(2, 4), 2);
        var w2 = Rand.Tensor(new Shape(2, 4), 3);

        // L = Σ (x·w1ᵀ) + Σ (x·w2ᵀ) ⇒ dL/dx[i, :] = Σ_rows w1 + Σ_rows w2.
        var loss = F.Add(F.Linear(x, w1, null), F.Linear(x, w2, null));
        loss.Backward(Tensor.Ones(loss.Shape));
        var (a, b) = (w1.ToArray<float>(), w2.ToArray<float>());
        var expected = Enumerable.Range(0, 12).Select(i => (double)a[i % 4] + a[4 + (i % 4)] + b[i % 4] + b[4 + (i % 4)]).ToArray();
        Close.Check(x.Grad!.ToArray<float>(), expected, 1e-6, "dx");
    }

    [Test]
    public void Grad_mode_off_records_nothing()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(2, 3), 1, requiresGrad: true);
        Tensor y;
        using (GradMode.NoGrad())
        {
            y = F.Scale(x, 2f);
        }

        Assert.That(y.RequiresGrad, Is.False);
        Assert.That(y.GradFn, Is.Null);
        Assert.That(() => F.SumMany([y]).Backward(Tensor.Ones(y.Shape)), Throws.InvalidOperationException.With.Message.Contains("does not require grad"));
    }

    [Test]
    public void Two_layer_model_gradients_match_hand_derivation()
    {
        using var scope = TensorScope.Begin();

        // h = W1·x + b1, y = W2·h + b2, L = Σ y.  By hand: dL/dy = 1, dL/dW2 = 1·hᵀ, dL/db2 = 1,
        // dL/dh = W2ᵀ·1, dL/dW1 = (W2ᵀ·1)·xᵀ, dL/db1 = W2ᵀ·1.
        float[] x = [1f, -2f];
        float[] w1 = [0.5f, -1f, 2f, 0.25f, -0.5f, 1.5f];
        float[] b1 = [0.1f, -0.2f, 0.3f];
        float[] w2 = [1f, 2f, -1f, -0.5f, 0.5f, 3f];
        var tx = Tensor.FromArray(x, new Shape(1, 2));
        var (tw1, tb1, tw2, tb2) = (Param(w1, 3, 2), Param(b1, 3), Param(w2, 2, 3), Param([0.7f, -0.7f], 2));
        var y = F.Linear(F.Linear(tx, tw1, tb1), tw2, tb2);
        y.Backward(Tensor.Ones(y.Shape));

        var h = Enumerable.Range(0, 3).Select(i => (w1[2 * i] * x[0]) + (w1[(2 * i) + 1] * x[1]) + b1[i]).ToArray();
        var dh = Enumerable.Range(0, 3).Select(i => w2[i] + w2[3 + i]).ToArray();
        Assert.That(tw2.Grad!.ToArray<float>(), Is.EqualTo(h.Concat(h)).Within(1e-6));
        Assert.That(tb2.Grad!.ToArray<float>(), Is.EqualTo(new[] { 1f, 1f }));
        Assert.That(tb1.Grad!.ToArray<float>(), Is.EqualTo(dh).Within(1e-6));
        Assert.That(tw1.Grad!.ToArray<float>(), Is.EqualTo(dh.SelectMany(d => new[] { d * x[0], d * x[1] })).Within(1e-6));

        static Tensor Param(float[] values, params int[] dims)
        {
            var t = Tensor.FromArray(values, new Shape(dims));
            t.RequiresGrad = true;
            return t;
        }
    }

    [Test]
    public void Gradients_accumulate_across_backward_calls_until_zeroed()
    {
        using var scope = TensorScope.Begin();
        var w = Rand.Tensor(new Shape(4), 1, requiresGrad: true);
        F.CrossEntropy(F.Reshape(w, 1, 4), Tensor.FromArray([2], new Shape(1))).Backward();
        var once = w.Grad!.ToArray<float>();
        F.CrossEntropy(F.Reshape(w, 1, 4), Tensor.FromArray([2], new Shape(1))).Backward();
        Assert.That(w.Grad!.ToArray<float>(), Is.EqualTo(once.Select(g => 2 * g)).Within(1e-7));
        w.ZeroGrad();
        Assert.That(w.Grad, Is.Null);
        F.CrossEntropy(F.Reshape(w, 1, 4), Tensor.FromArray([2], new Shape(1))).Backward();
        Assert.That(w.Grad!.ToArray<float>(), Is.EqualTo(once), "overwritten after ZeroGrad, not added to the stale buffer");
    }

    [Test]
    public void Contexts_are_crossed_explicitly_and_gradients_come_back()
    {
        using var scope = TensorScope.Begin();
        var branch = CpuBackend.Instance.CreateContext("branch");
        var x = Rand.Tensor(new Shape(2, 3), 1, requiresGrad: true);
        var w = Tensor.FromArray(Rand.Values(3 * 3, 2).Select(v => (float)v).ToArray(), new Shape(3, 3), branch);
        var error = Assert.Throws<InvalidOperationException>(() => F.Linear(x, w, null));
        Assert.That(error!.Message, Does.Contain("F.Transfer").And.Contain("cpu/branch"));

        var onBranch = F.Transfer(x, branch);
        Assert.That(onBranch.Context, Is.SameAs(branch));
        var y = F.Transfer(F.Linear(onBranch, w, null), x.Context);
        var z = F.Add(y, F.Scale(x, 0f));
        z.Backward(Tensor.Ones(z.Shape));
        Assert.That(x.Grad!.Context, Is.SameAs(x.Context));
        var ws = w.ToArray<float>();
        var expected = Enumerable.Range(0, 6).Select(i => (double)ws[i % 3] + ws[3 + (i % 3)] + ws[6 + (i % 3)]).ToArray();
        Close.Check(x.Grad.ToArray<float>(), expected, 1e-6, "dx through two transfers");
    }

    [Test]
    public void Backward_needs_a_scalar_or_an_explicit_gradient()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(3), 1, requiresGrad: true);
        var y = F.Scale(x, 2f);
        Assert.That(() => y.Backward(), Throws.InvalidOperationException.With.Message.Contains("not a scalar"));
        Assert.That(() => y.Backward(Tensor.Ones(new Shape(4))), Throws.ArgumentException.With.Message.Contains("[4]"));
    }

    [Test]
    public void Backward_frees_intermediate_gradients()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(64, 64), 1, requiresGrad: true);
        var y = x;
        for (var i = 0; i < 10; i++)
        {
            y = F.Gelu(y);
        }

        var seed = Tensor.Ones(y.Shape);
        var before = Storage.LiveBytes;
        y.Backward(seed);

        // Afterwards only the leaf's gradient remains, not ten intermediate gradients.
        Assert.That(Storage.LiveBytes - before, Is.EqualTo(64 * 64 * sizeof(float)));
    }
}
