using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Autograd;

/// <summary>
/// bf16 mixed precision on the CPU backend, the reference the CUDA backend's bf16 kernels are compared with: casts and
/// their gradients, linear layers under <see cref="Autocast"/> against hand-computed bf16 products, and a block and a
/// model against float32 within bf16's rounding.
/// </summary>
public class MixedPrecisionTests
{
    [Test]
    public void Host_bf16_rounds_to_nearest_even()
    {
        Assert.Multiple(() =>
        {
            Assert.That(BFloat16.FromSingle(1f + (1f / 256)), Is.EqualTo(0x3F80), "a tie goes down to the even neighbour");
            Assert.That(BFloat16.FromSingle(1f + (3f / 256)), Is.EqualTo(0x3F82), "a tie goes up to the even neighbour");
            Assert.That(BFloat16.FromSingle(1f + (1.01f / 256)), Is.EqualTo(0x3F81), "past a tie");
            Assert.That(BFloat16.FromSingle(float.MaxValue), Is.EqualTo(0x7F80), "beyond bf16's largest: infinity");
            Assert.That(BFloat16.FromSingle(float.NaN), Is.EqualTo(0x7FFF), "NaN stays NaN");
            Assert.That(BFloat16.ToSingle(0xC0A0), Is.EqualTo(-5f));
        });
    }

    [Test]
    public void Cast_passes_the_gradient_back_in_the_input_dtype()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(6, 7), 1, requiresGrad: true, scale: 10);
        var narrow = x.To(DType.BFloat16);
        var wide = narrow.To(DType.Float32);
        Assert.That(narrow.DType, Is.EqualTo(DType.BFloat16));
        Assert.That(wide.ToArray<float>(), Is.EqualTo(x.ToArray<float>().Select(BFloat16.Round)), "values rounded to bf16");
        Assert.That(x.To(DType.Float32), Is.SameAs(x), "a cast to the dtype it has is the tensor itself");

        // dwide = g (float32) → dnarrow = bf16(g) → dx = bf16(g) widened, exactly.
        var g = Rand.Tensor(x.Shape, 2);
        wide.Backward(g);
        Assert.That(x.Grad!.DType, Is.EqualTo(DType.Float32));
        Assert.That(x.Grad.ToArray<float>(), Is.EqualTo(g.ToArray<float>().Select(BFloat16.Round)));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Linear_under_autocast_multiplies_bf16_operands_and_gives_float32_gradients(bool grouped)
    {
        const int groups = 3, rows = 10, inFeatures = 24, outFeatures = 16;
        Shape Of(params int[] dims) => grouped ? new Shape([groups, .. dims]) : new Shape(dims);
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(Of(rows, inFeatures), 3, requiresGrad: true);
        var w = Rand.Tensor(Of(outFeatures, inFeatures), 4, requiresGrad: true);
        var b = Rand.Tensor(Of(outFeatures), 5, requiresGrad: true);
        var g = Rand.Tensor(Of(rows, outFeatures), 6);
        Tensor y;
        using (Autocast.Bf16())
        {
            y = F.Linear(x, w, b);
        }

        y.Backward(g);
        Assert.That((y.DType, w.Grad!.DType, b.Grad!.DType, x.Grad!.DType), Is.EqualTo((DType.Float32, DType.Float32, DType.Float32, DType.Float32)));

        // By hand, group by group: the products of the bf16-rounded operands (exact in float32, summed in float32),
        // the output gradient rounded to bf16 for the products and taken as it is for the bias.
        var (xs, ws, bs, gs) = (Rounded(x), Rounded(w), b.ToDoubles(), g.ToDoubles());
        var gr = Rounded(g);
        var count = grouped ? groups : 1;
        double[] Group(double[] all, int group, int size) => all.Skip(group * size).Take(size).ToArray();
        var (expectY, expectDx, expectDw, expectDb) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
        for (var i = 0; i < count; i++)
        {
            var (xg, wg, gg, grg) = (Group(xs, i, rows * inFeatures), Group(ws, i, outFeatures * inFeatures), Group(gs, i, rows * outFeatures), Group(gr, i, rows * outFeatures));
            expectY.AddRange(Reference.Linear(xg, wg, Group(bs, i, outFeatures), rows, inFeatures, outFeatures));
            expectDx.AddRange(Reference.Gemm(grg, wg, rows, inFeatures, outFeatures));
            expectDw.AddRange(Reference.Gemm(grg, xg, outFeatures, inFeatures, rows, transA: true));
            expectDb.AddRange(Enumerable.Range(0, outFeatures).Select(o => Enumerable.Range(0, rows).Sum(r => gg[(r * outFeatures) + o])));
        }

        Close.Check(y.ToArray<float>(), expectY, 1e-6, "y");
        Close.Check(x.Grad.ToArray<float>(), expectDx, 1e-6, "dx");
        Close.Check(w.Grad.ToArray<float>(), expectDw, 1e-6, "dw");
        Close.Check(b.Grad.ToArray<float>(), expectDb, 1e-6, "db, from the float32 output gradient");

        // And the same layer in float32 is bf16's rounding away.
        var y32 = F.Linear(x, w, b);
        Assert.That(Close.RelativeError(y.ToDoubles(), y32.ToDoubles()), Is.InRange(1e-4, 1e-2), "against float32");
    }

    [Test]
    public void Activations_kept_in_bf16_stay_bf16_through_linear_gelu_and_attention()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(2, 9, 32), 7, requiresGrad: true);
        var (w1, b1) = (Rand.Tensor(new Shape(48, 32), 8, requiresGrad: true), Rand.Tensor(new Shape(48), 9, requiresGrad: true));
        var (wq, w2) = (Rand.Tensor(new Shape(96, 32), 10, requiresGrad: true), Rand.Tensor(new Shape(32, 48), 11, requiresGrad: true));
        Tensor Run(out Tensor hidden, out Tensor attended)
        {
            hidden = F.LinearGelu(x, w1, b1, Autocast.ActivationType);
            attended = F.Attention(F.Linear(x, wq, null, Autocast.ActivationType), heads: 2);
            return F.Add(F.Linear(hidden, w2, null), attended.To(DType.Float32));
        }

        var y32 = Run(out _, out _);
        y32.Backward(Tensor.Ones(y32.Shape));
        var grads32 = new[] { x, w1, b1, wq, w2 }.Select(t => t.Grad!.ToDoubles()).ToList();
        foreach (var t in new[] { x, w1, b1, wq, w2 })
        {
            t.ZeroGrad();
        }

        Tensor y;
        Tensor hidden16, attended16;
        using (Autocast.Bf16())
        {
            y = Run(out hidden16, out attended16);
        }

        y.Backward(Tensor.Ones(y.Shape));
        Assert.That((hidden16.DType, attended16.DType, y.DType), Is.EqualTo((DType.BFloat16, DType.BFloat16, DType.Float32)));
        Assert.That(Close.RelativeError(y.ToDoubles(), y32.ToDoubles()), Is.InRange(1e-4, 1e-2), "output");
        var names = new[] { "x", "w1", "b1", "wq", "w2" };
        foreach (var (t, i) in new[] { x, w1, b1, wq, w2 }.Select((t, i) => (t, i)))
        {
            Assert.That(t.Grad!.DType, Is.EqualTo(DType.Float32), names[i]);
            Assert.That(Close.RelativeError(t.Grad.ToDoubles(), grads32[i]), Is.InRange(1e-5, 2e-2), $"gradient of {names[i]}");
        }
    }

    [Test]
    public void A_model_under_autocast_trains_within_bf16_rounding_of_float32()
    {
        var config = StepSnapshots.Tiny;
        var steps = new ParaCuda.Training.LpaSchedule().Passes(0, 1, 1, config.Branches).SelectMany(p => p.Steps).ToList();
        var cpu = CpuBackend.Instance.DefaultContext;
        var float32 = StepSnapshots.Train(cpu, null, steps);
        List<(double Loss, List<string> Names, List<float[]> Parameters)> mixed;
        using (Autocast.Bf16())
        {
            mixed = StepSnapshots.Train(cpu, null, steps);
        }

        var errors = mixed.Zip(float32, (m, f) => Math.Abs(m.Loss - f.Loss) / Math.Abs(f.Loss)).ToList();
        Assert.That(errors, Is.All.LessThanOrEqualTo(1e-2), "every step's loss");
        Assert.That(errors.Max(), Is.GreaterThan(1e-5), "bf16 rounding shows");
    }

    [Test]
    public void Ops_refuse_dtypes_they_cannot_combine_with_a_clear_message()
    {
        using var scope = TensorScope.Begin();
        var ops = CpuBackend.Instance.DefaultContext.Ops;
        var (a, b) = (Rand.Tensor(new Shape(4, 5), 1), Rand.Tensor(new Shape(5, 3), 2));
        var (a16, b16) = (ToBf16(a), ToBf16(b));
        Assert.Multiple(() =>
        {
            Assert.That(() => ops.Gemm(a, b, Tensor.Empty(new Shape(4, 3), DType.BFloat16)), Throws.TypeOf<TensorOpException>().With.Message.Contains("float32 operands give a float32 product"));
            Assert.That(() => ops.Gemm(a16, b, Tensor.Empty(new Shape(4, 3))), Throws.TypeOf<TensorOpException>().With.Message.Contains("B [5, 3] is Float32 but A [4, 5] is BFloat16"));
            Assert.That(() => ops.LayerNorm(a16, Tensor.Ones(new Shape(5)), Tensor.Zeros(new Shape(5)), 1e-5f, a16.EmptyLike(), Tensor.Empty(new Shape(4)), Tensor.Empty(new Shape(4))), Throws.TypeOf<TensorOpException>().With.Message.Contains("is BFloat16; this op takes Float32"));
            Assert.That(() => ops.WeightGrad(a16, a16, Tensor.Empty(new Shape(5, 5), DType.BFloat16), GradOut.None), Throws.TypeOf<TensorOpException>().With.Message.Contains("this op takes Float32"), "weight gradients are float32");
        });
    }

    private static Tensor ToBf16(Tensor t)
    {
        var narrow = Tensor.Empty(t.Shape, DType.BFloat16);
        t.Context.Ops.Cast(t, narrow);
        return narrow;
    }

    private static double[] Rounded(Tensor t) => t.ToArray<float>().Select(v => (double)BFloat16.Round(v)).ToArray();
}
