using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// Every op of the op set through the CUDA backend (its launches, its cuBLAS calls, its allocator) against
/// the CPU backend on the same random inputs, forward and backward, as llm.c checks its kernels: float32
/// within 1e-5 relative, bit-exact where the op has no arithmetic to reorder (dropout's mask, patchify,
/// argmax, the branch sum's fixed order). Device outputs are poisoned with NaN first, so an element an op
/// forgets fails. The same tests run on the emulated device (CI, two scheduling seeds) and on a GPU.
/// </summary>
public abstract class OpsParityTests : CudaDeviceTests
{
    private const double Tolerance = 1e-5;

    private static readonly Backends.Ops s_cpu = CpuBackend.Instance.DefaultContext.Ops;

    private TensorScope _scope = null!;

    private ComputeContext Gpu => Backend.DefaultContext;

    private Backends.Ops G => Gpu.Ops;

    [SetUp]
    public void BeginScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void EndScope()
    {
        // A launch that failed on the device reports here, even if the test read nothing back.
        Backend.Synchronize();
        _scope.Dispose();
    }

    [Test]
    public void Fill_copy_and_transfers_between_devices()
    {
        var floats = Out(new Shape(1000));
        G.Fill(floats, 2.5f);
        var ints = Out(new Shape(77), DType.Int32);
        G.Fill(ints, -3);
        Assert.That(floats.ToArray<float>(), Is.All.EqualTo(2.5f));
        Assert.That(ints.ToArray<int>(), Is.All.EqualTo(-3));

        var x = Rand.Tensor(new Shape(3, 4, 5, 2), 1);
        var gx = Up(x);
        var copy = Out(x.Shape);
        G.Copy(gx, copy);
        Exact(copy, x, "contiguous copy");
        foreach (var (a, b) in new[] { (0, 2), (1, 3), (0, 3) })
        {
            using var cpuView = x.TransposeView(a, b);
            using var cpuDense = cpuView.Contiguous();
            using var gpuView = gx.TransposeView(a, b);
            var dense = Out(cpuDense.Shape);
            G.Copy(gpuView, dense);
            Exact(dense, cpuDense, $"strided copy of a view with axes {a} and {b} swapped");
        }

        var labels = Tensor.FromArray(Rand.Labels(60, 10, 2), new Shape(6, 10));
        using var labelView = labels.TransposeView(0, 1);
        var gpuLabels = Out(new Shape(10, 6), DType.Int32);
        G.CopyAcross(labelView, gpuLabels);
        Assert.That(gpuLabels.ToArray<int>(), Is.EqualTo(labelView.Contiguous().ToArray<int>()), "host view to device, Int32");

        var back = Tensor.Full(x.Shape, float.NaN);
        s_cpu.CopyAcross(gx, back);
        Assert.That(back.ToArray<float>(), Is.EqualTo(x.ToArray<float>()), "device to host");

        using var other = Open(index: 1);
        var there = Tensor.Full(x.Shape, float.NaN, DType.Float32, other.DefaultContext);
        other.DefaultContext.Ops.CopyAcross(gx, there);
        Assert.That(there.ToArray<float>(), Is.EqualTo(x.ToArray<float>()), "device to device (peer copy)");
    }

    [Test]
    public void Add_scale_and_the_branch_sum()
    {
        var a = Rand.Tensor(new Shape(5000), 3);
        var b = Rand.Tensor(new Shape(5000), 4);
        var (ga, gb) = (Up(a), Up(b));
        var sum = a.EmptyLike();
        s_cpu.Add(a, b, sum);
        var gsum = Out(a.Shape);
        G.Add(ga, gb, gsum);
        Same(gsum, sum, Tolerance, "add");
        G.Add(ga, gb, ga);
        Same(ga, sum, Tolerance, "add in place");
        var scaled = a.EmptyLike();
        s_cpu.Scale(b, -0.75f, scaled);
        G.Scale(gb, -0.75f, gb);
        Same(gb, scaled, Tolerance, "scale in place");

        foreach (var count in new[] { 1, 3, 10 })
        {
            var branches = Enumerable.Range(0, count).Select(i => Rand.Tensor(new Shape(16, 17, 24), 10 + i)).ToList();
            var total = branches[0].EmptyLike();
            s_cpu.SumMany(branches, total);
            var gtotal = Out(total.Shape);
            G.SumMany(branches.Select(Up).ToList(), gtotal);
            Exact(gtotal, total, $"branch sum of {count} (same order of additions as the CPU)");
        }
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Bias_gelu_forward_and_backward(bool withBias)
    {
        const int rows = 257, cols = 96;
        var x = Rand.Tensor(new Shape(rows, cols), 5, scale: 4);
        var bias = withBias ? Rand.Tensor(new Shape(cols), 6) : null;
        var dy = Rand.Tensor(new Shape(rows, cols), 7);
        var y = x.EmptyLike();
        s_cpu.BiasGelu(x, bias, y);
        var dx = x.EmptyLike();
        var dbias = withBias ? Rand.Tensor(new Shape(cols), 8) : null;
        var gdbias = dbias is null ? null : Up(dbias);
        s_cpu.BiasGeluBackward(x, bias, dy, dx, new GradOut(dbias, Accumulate: true));

        var (gx, gbias) = (Up(x), bias is null ? null : Up(bias));
        var (gy, gdx) = (Out(x.Shape), Out(x.Shape));
        G.BiasGelu(gx, gbias, gy);
        G.BiasGeluBackward(gx, gbias, Up(dy), gdx, new GradOut(gdbias, Accumulate: true));
        Same(gy, y, Tolerance, "y");
        Same(gdx, dx, Tolerance, "dx");
        if (dbias is not null)
        {
            Same(gdbias!, dbias, Tolerance, "dbias accumulated");
        }
    }

    [Test]
    public void Dropout_mask_is_the_cpu_mask_bit_for_bit()
    {
        var x = Rand.Tensor(new Shape(10_001), 10);
        var y = x.EmptyLike();
        s_cpu.Dropout(x, y, 0.3f, 1234567890123UL, 42UL);
        var gy = Out(x.Shape);
        G.Dropout(Up(x), gy, 0.3f, 1234567890123UL, 42UL);
        Exact(gy, y, "dropout");
    }

    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(true, true)]
    public void Gemm_with_transposes_bias_alpha_and_beta(bool transA, bool transB)
    {
        const int m = 37, n = 29, k = 23;
        var a = Rand.Tensor(transA ? new Shape(k, m) : new Shape(m, k), 11);
        var b = Rand.Tensor(transB ? new Shape(n, k) : new Shape(k, n), 12);
        var bias = Rand.Tensor(new Shape(n), 13);
        var c = Rand.Tensor(new Shape(m, n), 14);
        var (ga, gb, gbias) = (Up(a), Up(b), Up(bias));

        var plain = Tensor.Full(new Shape(m, n), float.NaN);
        s_cpu.Gemm(a, b, plain, transA, transB);
        var gplain = Out(plain.Shape);
        G.Gemm(ga, gb, gplain, transA, transB);
        Same(gplain, plain, Tolerance, "C = op(A)·op(B), beta 0 over NaN");

        var gc = Up(c);
        s_cpu.Gemm(a, b, c, transA, transB, alpha: 0.5f, beta: -1.5f, bias: bias);
        G.Gemm(ga, gb, gc, transA, transB, alpha: 0.5f, beta: -1.5f, bias: gbias);
        Same(gc, c, Tolerance, "C = ½·op(A)·op(B) - 1.5·C + bias");

        const int batch = 3;
        var ba = Rand.Tensor(transA ? new Shape(batch, k, m) : new Shape(batch, m, k), 15);
        var bb = Rand.Tensor(transB ? new Shape(batch, n, k) : new Shape(batch, k, n), 16);
        var bc = Rand.Tensor(new Shape(batch, m, n), 17);
        var gbc = Up(bc);
        s_cpu.BatchedGemm(ba, bb, bc, transA, transB, alpha: 2f, beta: 0.25f);
        G.BatchedGemm(Up(ba), Up(bb), gbc, transA, transB, alpha: 2f, beta: 0.25f);
        Same(gbc, bc, Tolerance, "batched");

        // A bias per batch entry: cuBLASLt's bias epilogue with a batch stride on a GPU.
        var bbias = Rand.Tensor(new Shape(batch, n), 18);
        s_cpu.BatchedGemm(ba, bb, bc, transA, transB, beta: 0.5f, bias: bbias);
        G.BatchedGemm(Up(ba), Up(bb), gbc, transA, transB, beta: 0.5f, bias: Up(bbias));
        Same(gbc, bc, Tolerance, "batched, with a bias per batch entry");
    }

    // Float32 activations in TF32 or bf16 products, and bf16 activations (mixed precision) into bf16 or float32 outputs.
    [TestCase(GemmPrecision.Tf32, false, DType.Float32)]
    [TestCase(GemmPrecision.Tf32, true, DType.Float32)]
    [TestCase(GemmPrecision.Bf16, true, DType.Float32)]
    [TestCase(GemmPrecision.Bf16, false, DType.BFloat16)]
    [TestCase(GemmPrecision.Bf16, true, DType.BFloat16)]
    public void The_hand_written_linear_kernels_match_the_library_path_and_the_cpu(GemmPrecision precision, bool grouped, DType activations)
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no TF32 tensor cores");
        }

        // Ragged against every tile: 70 rows and 72 columns (tiles of 64), 40 inputs (chunks of 32).
        const int groups = 2, rows = 70, inFeatures = 40, outFeatures = 72;
        Shape Of(params int[] dims) => grouped ? new Shape([groups, .. dims]) : new Shape(dims);
        var (x, w, bias) = (Stored(Rand.Tensor(Of(rows, inFeatures), 81), activations), Stored(Rand.Tensor(Of(outFeatures, inFeatures), 82), activations), Rand.Tensor(Of(outFeatures), 83));
        using var cores = Open(precision, index: 2);
        var ctx = cores.DefaultContext;
        Tensor On(Tensor t) => OnContext(t, ctx);

        void Linear(Backends.Ops ops, Tensor input, Tensor weight, Tensor y)
        {
            if (grouped)
            {
                ops.BatchedGemm(input, weight, y, transB: true, bias: bias.Device == ops.Device ? bias : On(bias));
            }
            else
            {
                ops.Gemm(input, weight, y, transB: true, bias: bias.Device == ops.Device ? bias : On(bias));
            }
        }

        // Each case: the kernel, its outputs' dtype, and how it runs on some ops with some inputs into outputs.
        var cases = new List<(string Kernel, DType Output, int Outputs, Action<Backends.Ops, Tensor, Tensor, Tensor[]> Run)>
        {
            ("linear_gelu_tc", activations, 2, (ops, input, weight, o) => ops.LinearGelu(input, weight, bias.Device == ops.Device ? bias : On(bias), o[0], o[1])),
            ("linear_bias_tc", activations, 1, (ops, input, weight, o) => Linear(ops, input, weight, o[0])),
        };
        if (activations == DType.BFloat16)
        {
            cases.Add(("linear_bias_tc", DType.Float32, 1, (ops, input, weight, o) => Linear(ops, input, weight, o[0])));
        }

        var tolerance = precision == GemmPrecision.Bf16 ? 1e-2 : 2e-3;
        foreach (var (kernel, output, outputs, run) in cases)
        {
            var what = $"{kernel} into {output}";
            var cpu = Enumerable.Range(0, outputs).Select(_ => Tensor.Empty(Of(rows, outFeatures), output)).ToArray();
            run(s_cpu, x, w, cpu);
            double[][] Device(bool handWritten)
            {
                cores.LinearKernels = handWritten ? LinearKernels.HandWritten : LinearKernels.Library;
                var results = Enumerable.Range(0, outputs).Select(_ => Tensor.Full(Of(rows, outFeatures), float.NaN, output, ctx)).ToArray();
                run(ctx.Ops, On(x), On(w), results);
                return results.Select(Values).ToArray();
            }

            // A build of the kernel this case needs is loaded when the hand-written path runs, and only then.
            int Builds() => cores.LoadedKernels.Count(k => k.Kernel == kernel);
            var builds = Builds();
            var library = Device(handWritten: false);
            Assert.That(Builds(), Is.EqualTo(builds), $"{what}: the library path needs no hand-written kernel");
            var handWritten = Device(handWritten: true);
            Assert.That(Builds(), Is.EqualTo(builds + 1), $"{what} ran");
            for (var i = 0; i < outputs; i++)
            {
                Close.Check(library[i], Values(cpu[i]), tolerance, $"{what}, the library path: output {i}");
                Close.Check(handWritten[i], Values(cpu[i]), tolerance, $"{what}: output {i}");
            }
        }
    }

    [Test]
    public void The_fastest_linear_kernels_are_chosen_per_shape_by_timing_both_once()
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no TF32 tensor cores");
        }

        // Under bf16 precision the hand-written kernel rounds its operands to bf16 while cuBLAS's FAST_16BF may keep more
        // (on an H100 it did), and the emulated library sums in double: an output tells which path ran.
        using var cores = Open(GemmPrecision.Bf16, index: 2);
        var ctx = cores.DefaultContext;
        var (w, bias) = (OnContext(Rand.Tensor(new Shape(72, 40), 82), ctx), OnContext(Rand.Tensor(new Shape(72), 83), ctx));
        Tensor Input(int rows) => OnContext(Rand.Tensor(new Shape(rows, 40), 81 + rows), ctx);
        float[] Run(Tensor x, LinearKernels kernels)
        {
            cores.LinearKernels = kernels;
            var (product, y) = (Tensor.Full(new Shape(x.Shape[0], 72), float.NaN, DType.Float32, ctx), Tensor.Full(new Shape(x.Shape[0], 72), float.NaN, DType.Float32, ctx));
            ctx.Ops.LinearGelu(x, w, bias, product, y);
            return y.ToArray<float>();
        }

        var x70 = Input(70);
        var (library, handWritten) = (Run(x70, LinearKernels.Library), Run(x70, LinearKernels.HandWritten));
        Assert.That(library.SequenceEqual(handWritten), Is.False, "the two paths tell themselves apart");
        Assert.That(cores.LinearChoices, Is.Empty, "no choice without Fastest");

        var fastest = Run(x70, LinearKernels.Fastest);
        var (key, choseHandWritten) = cores.LinearChoices.Single();
        Assert.That(fastest, Is.EqualTo(choseHandWritten ? handWritten : library), "the chosen path ran");

        // The choice is kept, not timed again: flipped by hand, it is what runs.
        cores.LinearChoices[key] = !choseHandWritten;
        Assert.That(Run(x70, LinearKernels.Fastest), Is.EqualTo(choseHandWritten ? library : handWritten), "the kept choice ran");
        Assert.That(cores.LinearChoices, Has.Count.EqualTo(1));

        // Another shape gets its own choice; inside a capture, where nothing can be timed, an undecided shape takes
        // the library path and decides nothing.
        Run(Input(10), LinearKernels.Fastest);
        Assert.That(cores.LinearChoices, Has.Count.EqualTo(2), "one choice per shape");
        var x30 = Input(30);
        var expected = Run(x30, LinearKernels.Library);
        cores.LinearKernels = LinearKernels.Fastest;
        var (p30, y30) = (Tensor.Full(new Shape(30, 72), float.NaN, DType.Float32, ctx), Tensor.Full(new Shape(30, 72), float.NaN, DType.Float32, ctx));
        using (var graph = ctx.Capture(() => ctx.Ops.LinearGelu(x30, w, bias, p30, y30)))
        {
            graph.Replay();
        }

        Assert.That(y30.ToArray<float>(), Is.EqualTo(expected), "the library path, under capture");
        Assert.That(cores.LinearChoices, Has.Count.EqualTo(2), "nothing decided under capture");
    }

    [TestCase(GemmPrecision.Tf32, false, DType.Float32)]
    [TestCase(GemmPrecision.Tf32, true, DType.Float32)]
    [TestCase(GemmPrecision.Bf16, false, DType.BFloat16)]
    [TestCase(GemmPrecision.Bf16, true, DType.BFloat16)]
    public void The_hand_written_mlp_backward_matches_the_library_path_and_the_cpu(GemmPrecision precision, bool grouped, DType activations)
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no TF32 tensor cores");
        }

        // dpre = (dy·W2) ∘ dropout ∘ gelu'(pre + b1) for the MLP's second layer [72 → 40 here]: ragged tiles, a
        // dropout whose offset partly lives on the device, the bias gradient accumulated.
        const int groups = 2, rows = 70, inFeatures = 72, outFeatures = 40;
        Shape Of(params int[] dims) => grouped ? new Shape([groups, .. dims]) : new Shape(dims);
        var (dy, w, pre) = (Stored(Rand.Tensor(Of(rows, inFeatures), 91), activations), Stored(Rand.Tensor(Of(inFeatures, outFeatures), 92), activations), Stored(Rand.Tensor(Of(rows, outFeatures), 93, scale: 3), activations));
        var (bias, dbias, offsetBase) = (Rand.Tensor(Of(outFeatures), 94), Rand.Tensor(Of(outFeatures), 95), Tensor.FromArray([5, 0], new Shape(2)));
        var dpre = Tensor.Empty(pre.Shape, activations);
        s_cpu.LinearGeluBackward(dy, w, pre, bias, 0.3f, 99UL, 4UL, offsetBase, dpre, new GradOut(dbias, Accumulate: true));

        using var cores = Open(precision, index: 2);
        var ctx = cores.DefaultContext;
        Tensor On(Tensor t) => OnContext(t, ctx);

        var initialBias = Rand.Tensor(Of(outFeatures), 95);
        (double[] Dpre, double[] Dbias) Device(bool handWritten)
        {
            cores.LinearKernels = handWritten ? LinearKernels.HandWritten : LinearKernels.Library;
            var (gdpre, gdbias) = (Tensor.Full(pre.Shape, float.NaN, activations, ctx), On(initialBias));
            ctx.Ops.LinearGeluBackward(On(dy), On(w), On(pre), On(bias), 0.3f, 99UL, 4UL, On(offsetBase), gdpre, new GradOut(gdbias, Accumulate: true));
            return (Values(gdpre), Values(gdbias));
        }

        int Builds() => cores.LoadedKernels.Count(k => k.Kernel == "linear_dgelu_tc");
        var library = Device(handWritten: false);
        Assert.That(Builds(), Is.Zero, "the library path needs no hand-written kernel");
        var handWritten = Device(handWritten: true);
        Assert.That(Builds(), Is.EqualTo(1), "linear_dgelu_tc ran");
        var tolerance = precision == GemmPrecision.Bf16 ? 1e-2 : 2e-3;
        foreach (var (result, what) in new[] { (library, "GEMM, dropout and bias_gelu_backward"), (handWritten, "linear_dgelu_tc") })
        {
            Close.Check(result.Dpre, Values(dpre), tolerance, $"{what}: dpre");
            Close.Check(result.Dbias, Values(dbias), tolerance, $"{what}: dbias, accumulated");
        }

        Assert.That(handWritten.Dpre.Select(v => v == 0), Is.EqualTo(Values(dpre).Select(v => v == 0)), "the dropout mask: zeros where the CPU's are");
    }

    /// <summary>A CPU tensor stored as <paramref name="dtype"/>.</summary>
    private static Tensor Stored(Tensor t, DType dtype)
    {
        var stored = Tensor.Empty(t.Shape, dtype);
        s_cpu.Cast(t, stored);
        return stored;
    }

    /// <summary>A copy of <paramref name="t"/> on <paramref name="ctx"/>, of its dtype.</summary>
    private static Tensor OnContext(Tensor t, ComputeContext ctx)
    {
        var there = Tensor.Empty(t.Shape, t.DType, ctx);
        ctx.Ops.CopyAcross(t, there);
        return there;
    }

    private static double[] Values(Tensor t) => t.DType == DType.BFloat16
        ? t.ToArray<ushort>().Select(b => (double)BFloat16.ToSingle(b)).ToArray()
        : t.ToDoubles();

    [TestCase(false)]
    [TestCase(true)]
    public void Weight_and_bias_gradients_in_one_pass_match_the_gemm_and_the_column_sums(bool grouped)
    {
        // The fused path (cuBLASLt's bias-gradient epilogue on a GPU) against the CPU and against the unfused device
        // ops; then accumulating into dw (still fused), and into dbias (the unfused path).
        const int groups = 3, rows = 45, outFeatures = 19, inFeatures = 27;
        Shape Of(params int[] dims) => grouped ? new Shape([groups, .. dims]) : new Shape(dims);
        var (dy, x) = (Rand.Tensor(Of(rows, outFeatures), 61), Rand.Tensor(Of(rows, inFeatures), 62));
        var (gdy, gx) = (Up(dy), Up(x));
        var (dw, dbias) = (Tensor.Empty(Of(outFeatures, inFeatures)), Tensor.Empty(Of(outFeatures)));
        s_cpu.WeightGrad(dy, x, dw, dbias);
        var (gdw, gdbias) = (Out(dw.Shape), Out(dbias.Shape));
        G.WeightGrad(gdy, gx, gdw, gdbias);
        Same(gdw, dw, Tolerance, "dw");
        Same(gdbias, dbias, Tolerance, "dbias");

        var (udw, udbias) = (Out(dw.Shape), Out(dbias.Shape));
        if (grouped)
        {
            G.BatchedGemm(gdy, gx, udw, transA: true);
        }
        else
        {
            G.Gemm(gdy, gx, udw, transA: true);
        }

        G.SumRows(gdy, udbias);
        Same(gdw, Tensor.FromArray(udw.ToArray<float>(), udw.Shape), Tolerance, "dw, fused against unfused");
        Same(gdbias, Tensor.FromArray(udbias.ToArray<float>(), udbias.Shape), Tolerance, "dbias, fused against unfused");

        s_cpu.WeightGrad(dy, x, new GradOut(dw, Accumulate: true), dbias);
        G.WeightGrad(gdy, gx, new GradOut(gdw, Accumulate: true), gdbias);
        Same(gdw, dw, Tolerance, "dw accumulated");
        Same(gdbias, dbias, Tolerance, "dbias beside an accumulated dw");
        s_cpu.WeightGrad(dy, x, dw, new GradOut(dbias, Accumulate: true));
        G.WeightGrad(gdy, gx, gdw, new GradOut(gdbias, Accumulate: true));
        Same(gdw, dw, Tolerance, "dw beside an accumulated dbias");
        Same(gdbias, dbias, Tolerance, "dbias accumulated");
    }

    // cuBLAS's FAST_16BF allows bf16 products without promising them (on an H100 this shape came out at TF32's 2.6e-4),
    // so the lower bound only says the products are not strict float32.
    [TestCase(GemmPrecision.Tf32, 1e-3, 1e-6)]
    [TestCase(GemmPrecision.Bf16, 1e-2, 1e-5)]
    public void Gemm_on_tensor_cores_is_within_their_rounding(GemmPrecision precision, double most, double least)
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no TF32 or bf16 tensor cores");
        }

        using var tf32 = Open(precision, index: 2);
        const int m = 64, n = 48, k = 96;
        var a = Rand.Tensor(new Shape(m, k), 18);
        var b = Rand.Tensor(new Shape(k, n), 19);
        var c = Tensor.Empty(new Shape(m, n));
        s_cpu.Gemm(a, b, c);
        var ctx = tf32.DefaultContext;
        var gc = Tensor.Full(c.Shape, float.NaN, DType.Float32, ctx);
        ctx.Ops.Gemm(Tensor.FromArray(a.ToArray<float>(), a.Shape, ctx), Tensor.FromArray(b.ToArray<float>(), b.Shape, ctx), gc);
        var error = Close.RelativeError(gc.ToArray<float>().Select(v => (double)v).ToArray(), c.ToDoubles());
        Assert.That(error, Is.LessThanOrEqualTo(most), $"{precision} GEMMs agree with float32 to their rounding");
        Assert.That(error, Is.GreaterThan(least), $"and do round: {precision} is in effect");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Column_sums(bool accumulate)
    {
        var x = Rand.Tensor(new Shape(7, 33, 40), 20);
        var output = Rand.Tensor(new Shape(40), 21);
        var goutput = Up(output);
        s_cpu.SumRows(x, new GradOut(output, accumulate));
        G.SumRows(Up(x), new GradOut(goutput, accumulate));
        Same(goutput, output, Tolerance, "sum rows");
    }

    [Test]
    public void Per_group_parameters_give_each_group_what_it_gets_alone()
    {
        var inputs = GroupedCase.Create();
        var grouped = GroupedCase.Named(GroupedCase.Grouped(Gpu, inputs)).ToList();
        var alone = GroupedCase.Named(GroupedCase.PerGroup(Gpu, inputs)).ToList();
        var cpu = GroupedCase.Named(GroupedCase.Grouped(CpuBackend.Instance.DefaultContext, inputs)).ToList();
        for (var i = 0; i < grouped.Count; i++)
        {
            Same(grouped[i].Tensor, cpu[i].Tensor, Tolerance, $"{grouped[i].Name} against the CPU");
            if (grouped[i].Name != "batched GEMM with bias")
            {
                // Our kernels split each group's rows as they would split the group alone; cuBLAS may pick another
                // algorithm for a batched product, so the GEMM is held to the tolerance only.
                Exact(grouped[i].Tensor, alone[i].Tensor, $"{grouped[i].Name}: one launch over the groups against one per group");
            }
        }
    }

    [Test]
    public void LayerNorm_forward_and_backward()
    {
        const int rows = 300, cols = 192;
        var x = Rand.Tensor(new Shape(rows, cols), 22, scale: 3);
        var gamma = Rand.Tensor(new Shape(cols), 23);
        var beta = Rand.Tensor(new Shape(cols), 24);
        var dy = Rand.Tensor(new Shape(rows, cols), 25);
        var (y, mean, rstd) = (x.EmptyLike(), Tensor.Empty(new Shape(rows)), Tensor.Empty(new Shape(rows)));
        s_cpu.LayerNorm(x, gamma, beta, 1e-5f, y, mean, rstd);
        var (gx, ggamma, gdy) = (Up(x), Up(gamma), Up(dy));
        var (gy, gmean, grstd) = (Out(x.Shape), Out(mean.Shape), Out(rstd.Shape));
        G.LayerNorm(gx, ggamma, Up(beta), 1e-5f, gy, gmean, grstd);
        Same(gy, y, Tolerance, "y");
        Same(gmean, mean, Tolerance, "mean");
        Same(grstd, rstd, Tolerance, "rstd");

        var (dx, dgamma, dbeta) = (x.EmptyLike(), gamma.EmptyLike(), gamma.EmptyLike());
        s_cpu.LayerNormBackward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
        var (gdx, gdgamma, gdbeta) = (Out(x.Shape), Out(gamma.Shape), Out(gamma.Shape));
        G.LayerNormBackward(gdy, gx, ggamma, gmean, grstd, gdx, gdgamma, gdbeta);
        Same(gdx, dx, Tolerance, "dx");
        Same(gdgamma, dgamma, Tolerance, "dgamma");
        Same(gdbeta, dbeta, Tolerance, "dbeta");

        var accumulated = Rand.Tensor(x.Shape, 26);
        var gaccumulated = Up(accumulated);
        var onlyBeta = Rand.Tensor(gamma.Shape, 27);
        var gonlyBeta = Up(onlyBeta);
        s_cpu.LayerNormBackward(dy, x, gamma, mean, rstd, new GradOut(accumulated, Accumulate: true), GradOut.None, new GradOut(onlyBeta, Accumulate: true));
        G.LayerNormBackward(gdy, gx, ggamma, gmean, grstd, new GradOut(gaccumulated, Accumulate: true), GradOut.None, new GradOut(gonlyBeta, Accumulate: true));
        Same(gaccumulated, accumulated, Tolerance, "dx accumulated");
        Same(gonlyBeta, onlyBeta, Tolerance, "dbeta alone, accumulated");

        // The residual add fused into the LayerNorm: the device's own unfused numbers exactly, the CPU's within tolerance.
        var residual = Rand.Tensor(x.Shape, 28);
        var (gresidual, gbeta) = (Up(residual), Up(beta));
        var (gsum, gfused, gfusedMean, gfusedRstd) = (Out(x.Shape), Out(x.Shape), Out(mean.Shape), Out(rstd.Shape));
        G.AddLayerNorm(gx, gresidual, ggamma, gbeta, 1e-5f, gsum, gfused, gfusedMean, gfusedRstd);
        var (gadded, gunfused) = (Out(x.Shape), Out(x.Shape));
        G.Add(gx, gresidual, gadded);
        G.LayerNorm(gadded, ggamma, gbeta, 1e-5f, gunfused, Out(mean.Shape), Out(rstd.Shape));
        Exact(gsum, gadded, "fused sum");
        Exact(gfused, gunfused, "fused LayerNorm");
        var (sum, fused, fusedMean, fusedRstd) = (x.EmptyLike(), x.EmptyLike(), mean.EmptyLike(), rstd.EmptyLike());
        s_cpu.AddLayerNorm(x, residual, gamma, beta, 1e-5f, sum, fused, fusedMean, fusedRstd);
        Same(gfused, fused, Tolerance, "fused LayerNorm against the CPU");
    }

    // Small enough for the emulator, which switches threads at every warp reduction; head dims that are not
    // multiples of 32 (16, 48) leave lanes idle, 128 fills four per lane.
    [TestCase(2, 17, 3, 32, true)]
    [TestCase(1, 9, 1, 128, false)]
    [TestCase(2, 5, 2, 16, true)]
    [TestCase(2, 7, 1, 48, true)]
    [TestCase(1, 6, 2, 64, false)]
    public void Attention_forward_and_backward(int batch, int tokens, int heads, int headDim, bool keepLse) =>
        CheckAttention(batch, tokens, heads, headDim, keepLse);

    // TF32 precision puts attention's two products on the tensor cores (mma.sync): several key tiles with a
    // ragged last one, a query tile past the end, the head dims of the fast path.
    [TestCase(GemmPrecision.Tf32, 2, 67, 2, 64)]
    [TestCase(GemmPrecision.Tf32, 1, 9, 1, 32)]
    [TestCase(GemmPrecision.Tf32, 1, 20, 2, 128)]
    [TestCase(GemmPrecision.Tf32, 3, 130, 1, 8)]
    [TestCase(GemmPrecision.Bf16, 2, 67, 2, 64)]
    [TestCase(GemmPrecision.Bf16, 1, 9, 1, 32)]
    [TestCase(GemmPrecision.Bf16, 1, 20, 2, 128)]
    public void Attention_on_tensor_cores_is_within_their_rounding(GemmPrecision precision, int batch, int tokens, int heads, int headDim)
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no TF32 or bf16 tensor cores");
        }

        // TF32 keeps 10 mantissa bits, bf16 7: their errors lie about 8× apart, so each bound also tells them apart.
        var (most, least) = precision == GemmPrecision.Bf16 ? (1e-2, 1e-3) : (2e-3, 1e-6);
        using var cores = Open(precision, index: 2);
        var results = AttentionOnDevice(cores.DefaultContext, batch, tokens, heads, headDim, keepLse: true);
        foreach (var (device, cpu, what) in results)
        {
            var error = Close.RelativeError(device.ToArray<float>().Select(v => (double)v).ToArray(), cpu.ToDoubles());
            Assert.That(error, Is.LessThanOrEqualTo(most), $"{what}: {precision} attention agrees with float32 to its rounding");
        }

        var (output, cpuOutput, _) = results[0];
        var outError = Close.RelativeError(output.ToArray<float>().Select(v => (double)v).ToArray(), cpuOutput.ToDoubles());
        Assert.That(outError, Is.GreaterThan(least), $"and does round: the {precision} tensor-core kernel is in effect");
    }

    [Test]
    public void Attention_head_dims_beyond_the_kernels_are_refused_clearly()
    {
        var qkv = Tensor.Full(new Shape(1, 2, 3 * 300), 0.5f, DType.Float32, Gpu);
        var output = Out(new Shape(1, 2, 300));
        Assert.That(() => G.Attention(qkv, 1, output, null), Throws.TypeOf<TensorOpException>().With.Message.Contains("head dim 300"));
    }

    [Test]
    public void Cross_entropy_forward_and_backward()
    {
        const int rows = 500, classes = 10;
        var logits = Rand.Tensor(new Shape(rows, classes), 28, scale: 6);
        var labels = Tensor.FromArray(Rand.Labels(rows, classes, 29), new Shape(rows));
        var dloss = Tensor.FromArray([0.75f], new Shape(1));
        var losses = Tensor.Empty(new Shape(rows));
        s_cpu.CrossEntropy(logits, labels, losses);
        var dlogits = logits.EmptyLike();
        s_cpu.CrossEntropyBackward(logits, labels, dloss, 1f / rows, dlogits);
        var (gl, gy) = (Up(logits), Up(labels));
        var (glosses, gdlogits) = (Out(losses.Shape), Out(logits.Shape));
        G.CrossEntropy(gl, gy, glosses);
        G.CrossEntropyBackward(gl, gy, Up(dloss), 1f / rows, gdlogits);
        Same(glosses, losses, Tolerance, "losses");
        Same(gdlogits, dlogits, Tolerance, "dlogits");
    }

    [Test]
    public void Sums_norms_and_clipping()
    {
        var tensors = new[] { new Shape(5000), new Shape(33, 17), new Shape(1) }.Select((s, i) => Rand.Tensor(s, 30 + i)).ToList();
        var gtensors = tensors.Select(Up).ToList();
        var total = Tensor.Empty(new Shape(1));
        s_cpu.SumAll(tensors[0], total, 0.25f);
        var gtotal = Out(total.Shape);
        G.SumAll(gtensors[0], gtotal, 0.25f);
        Same(gtotal, total, Tolerance, "sum all");

        var norm = Tensor.Empty(new Shape(1));
        s_cpu.GlobalNorm(tensors, norm);
        var gnorm = Out(norm.Shape);
        G.GlobalNorm(gtensors, gnorm);
        Same(gnorm, norm, Tolerance, "global norm");

        foreach (var maxNorm in new[] { 1f, 1e6f })
        {
            var clipped = tensors.Select(t => t.Clone()).ToList();
            var gclipped = gtensors.Select(t => t.Clone()).ToList();
            s_cpu.ClipByNorm(clipped, norm, maxNorm);
            G.ClipByNorm(gclipped, gnorm, maxNorm);
            for (var i = 0; i < clipped.Count; i++)
            {
                Same(gclipped[i], clipped[i], Tolerance, $"clipped to {maxNorm}: tensor {i}");
            }
        }
    }

    [Test]
    public void Argmax_and_count_correct_with_ties_and_nan()
    {
        const int rows = 1000, classes = 10;
        var values = Rand.Values(rows * classes, 36).Select(v => (float)Math.Round(v * 3)).ToArray();
        values[0] = float.NaN;
        values[classes + 4] = float.NaN;
        var logits = Tensor.FromArray(values, new Shape(rows, classes));
        var labels = Tensor.FromArray(Rand.Labels(rows, classes, 37), new Shape(rows));
        var indices = Tensor.Empty(new Shape(rows), DType.Int32);
        s_cpu.ArgmaxRows(logits, indices);
        var count = Tensor.Empty(new Shape(1), DType.Int32);
        s_cpu.CountCorrect(logits, labels, count);
        var (gl, gy) = (Up(logits), Up(labels));
        var (gindices, gcount) = (Out(indices.Shape, DType.Int32), Out(count.Shape, DType.Int32));
        G.ArgmaxRows(gl, gindices);
        G.CountCorrect(gl, gy, gcount);
        Assert.That(gindices.ToArray<int>(), Is.EqualTo(indices.ToArray<int>()));
        Assert.That(gcount.ToArray<int>(), Is.EqualTo(count.ToArray<int>()));
    }

    [Test]
    public void Patchify_tokens_and_pooling_forward_and_backward()
    {
        const int batch = 3, channels = 3, size = 28, patch = 7, dim = 16;
        const int patches = size / patch * (size / patch), tokens = patches + 1;
        var images = Rand.Tensor(new Shape(batch, channels, size, size), 38);
        var patchified = Tensor.Empty(new Shape(batch, patches, patch * patch * channels));
        s_cpu.Patchify(images, patch, patchified);
        var gpatchified = Out(patchified.Shape);
        G.Patchify(Up(images), patch, gpatchified);
        Exact(gpatchified, patchified, "patchify");

        var emb = Rand.Tensor(new Shape(batch, patches, dim), 39);
        var cls = Rand.Tensor(new Shape(dim), 40);
        var pos = Rand.Tensor(new Shape(tokens, dim), 41);
        var assembled = Tensor.Empty(new Shape(batch, tokens, dim));
        s_cpu.AssembleTokens(emb, cls, pos, assembled);
        var gassembled = Out(assembled.Shape);
        G.AssembleTokens(Up(emb), Up(cls), Up(pos), gassembled);
        Same(gassembled, assembled, Tolerance, "tokens");

        var dtokens = Rand.Tensor(assembled.Shape, 42);
        var (demb, dcls, dpos) = (emb.EmptyLike(), Rand.Tensor(cls.Shape, 43), pos.EmptyLike());
        var (gdemb, gdcls, gdpos) = (Out(emb.Shape), Up(dcls), Out(pos.Shape));
        s_cpu.AssembleTokensBackward(dtokens, demb, new GradOut(dcls, Accumulate: true), dpos);
        G.AssembleTokensBackward(Up(dtokens), gdemb, new GradOut(gdcls, Accumulate: true), gdpos);
        Same(gdemb, demb, Tolerance, "dEmb");
        Same(gdcls, dcls, Tolerance, "dcls accumulated");
        Same(gdpos, dpos, Tolerance, "dpos");

        foreach (var mode in new[] { Pooling.Cls, Pooling.Mean })
        {
            var pooled = Tensor.Empty(new Shape(batch, dim));
            s_cpu.PoolTokens(assembled, mode, pooled);
            var gpooled = Out(pooled.Shape);
            G.PoolTokens(gassembled, mode, gpooled);
            Same(gpooled, pooled, Tolerance, $"pool {mode}");

            var dpooled = Rand.Tensor(pooled.Shape, 44);
            var dx = Rand.Tensor(assembled.Shape, 45);
            var gdx = Up(dx);
            s_cpu.PoolTokensBackward(dpooled, mode, new GradOut(dx, Accumulate: true));
            G.PoolTokensBackward(Up(dpooled), mode, new GradOut(gdx, Accumulate: true));
            Same(gdx, dx, Tolerance, $"pool backward {mode}, accumulated");
        }
    }

    [TestCase(1, 28, 28)]
    [TestCase(3, 32, 28)]
    [TestCase(1, 28, 56)]
    public void Image_transform_on_the_device_is_the_cpu_transform_bit_for_bit(int channels, int stored, int size)
    {
        const int batch = 6;
        var bytes = new byte[batch * channels * stored * stored];
        new Random(62).NextBytes(bytes);
        var draws = new int[batch * 3];
        for (var b = 0; b < batch; b++)
        {
            (draws[3 * b], draws[(3 * b) + 1], draws[(3 * b) + 2]) = (b - 3, 4 - b, b % 2);
        }

        var transform = ParaCuda.Data.Transform.Reference(channels, size, train: true);
        var (scale, black) = transform.Normalization();
        var pixels = Tensor.FromArray(bytes, new Shape(batch, channels, stored, stored));
        var drawTensor = Tensor.FromArray(draws, new Shape(batch, 3));
        var images = Tensor.Empty(new Shape(batch, channels, size, size));
        s_cpu.TransformImages(pixels, drawTensor, scale, black, images);
        var gimages = Out(images.Shape);
        G.TransformImages(Up(pixels), Up(drawTensor), scale, black, gimages);
        Exact(gimages, images, "transformed images");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Adam_updates_every_tensor_in_one_launch(bool decoupled)
    {
        var hp = new AdamParameters(3e-3f, WeightDecay: 0.05f, DecoupledWeightDecay: decoupled);
        int[] counts = [2, 6];
        Shape[] shapes = [new(5000), new(33, 17)];
        var parameters = shapes.Select((s, i) => Rand.Tensor(s, 50 + i)).ToList();
        var grads = shapes.Select((s, i) => Rand.Tensor(s, 52 + i)).ToList();
        var m = shapes.Select((s, i) => Rand.Tensor(s, 54 + i, scale: 0.1)).ToList();
        var v = shapes.Select((s, i) => Tensor.FromArray(Rand.Values(s.NumElements, 56 + i, 0.01).Select(x => (float)Math.Abs(x)).ToArray(), s)).ToList();
        var (gp, gg, gm, gv) = (parameters.Select(Up).ToList(), grads.Select(Up).ToList(), m.Select(Up).ToList(), v.Select(Up).ToList());
        var steps = counts.Select(c => Tensor.FromArray([c], new Shape(1))).ToList();
        var gsteps = steps.Select(Up).ToList();
        var learningRate = Tensor.FromArray([hp.LearningRate * 2], new Shape(1));
        s_cpu.AdamUpdate(parameters, grads, m, v, hp, steps, learningRate);
        G.AdamUpdate(gp, gg, gm, gv, hp, gsteps, Up(learningRate));
        for (var t = 0; t < shapes.Length; t++)
        {
            Assert.That(gsteps[t].ToArray<int>(), Is.EqualTo(new[] { counts[t] + 1 }), $"step count {t}");
            Same(gp[t], parameters[t], Tolerance, $"param {t}");
            Same(gm[t], m[t], Tolerance, $"m {t}");
            Same(gv[t], v[t], Tolerance, $"v {t}");
        }
    }

    private protected void CheckAttention(int batch, int tokens, int heads, int headDim, bool keepLse)
    {
        foreach (var (device, cpu, what) in AttentionOnDevice(Gpu, batch, tokens, heads, headDim, keepLse))
        {
            Same(device, cpu, Tolerance, what);
        }
    }

    /// <summary>
    /// Attention forward and backward on random inputs, on <paramref name="ctx"/> (outputs poisoned first) and on
    /// the CPU: out, lse when kept, dqkv, each as (device, CPU, name).
    /// </summary>
    private static List<(Tensor Device, Tensor Cpu, string What)> AttentionOnDevice(ComputeContext ctx, int batch, int tokens, int heads, int headDim, bool keepLse)
    {
        var dim = heads * headDim;
        var qkv = Rand.Tensor(new Shape(batch, tokens, 3 * dim), 60);
        var output = Tensor.Empty(new Shape(batch, tokens, dim));
        var lse = Tensor.Empty(new Shape(batch, heads, tokens));
        s_cpu.Attention(qkv, heads, output, lse);
        var dout = Rand.Tensor(output.Shape, 61);
        var dqkv = qkv.EmptyLike();
        s_cpu.AttentionBackward(qkv, output, dout, lse, heads, dqkv);

        Tensor On(Tensor cpu) => Tensor.FromArray(cpu.ToArray<float>(), cpu.Shape, ctx);
        Tensor Poisoned(Shape shape) => Tensor.Full(shape, float.NaN, DType.Float32, ctx);
        var gqkv = On(qkv);
        var (goutput, glse, gdqkv) = (Poisoned(output.Shape), keepLse ? Poisoned(lse.Shape) : null, Poisoned(qkv.Shape));
        ctx.Ops.Attention(gqkv, heads, goutput, glse);
        ctx.Ops.AttentionBackward(gqkv, goutput, On(dout), glse, heads, gdqkv);
        return [(goutput, output, "out"), .. glse is null ? Array.Empty<(Tensor, Tensor, string)>() : [(glse, lse, "lse")], (gdqkv, dqkv, "dqkv")];
    }

    private static void Same(Tensor device, Tensor cpu, double tolerance, string what) =>
        Close.Check(device.ToArray<float>(), cpu.ToDoubles(), tolerance, what);

    private static void Exact(Tensor device, Tensor cpu, string what) =>
        Assert.That(device.ToArray<float>().Select(BitConverter.SingleToUInt32Bits), Is.EqualTo(cpu.ToArray<float>().Select(BitConverter.SingleToUInt32Bits)), what);

    private Tensor Up(Tensor cpu) => cpu.DType switch
    {
        DType.Int32 => Tensor.FromArray(cpu.ToArray<int>(), cpu.Shape, Gpu),
        DType.UInt8 => Tensor.FromArray(cpu.ToArray<byte>(), cpu.Shape, Gpu),
        _ => Tensor.FromArray(cpu.ToArray<float>(), cpu.Shape, Gpu),
    };

    /// <summary>A device output poisoned first: NaN, or -7 for Int32.</summary>
    private Tensor Out(Shape shape, DType dtype = DType.Float32) => Tensor.Full(shape, dtype == DType.Int32 ? -7 : float.NaN, dtype, Gpu);
}

[Category("Emulator")]
[TestFixture(1UL)]
[TestFixture(2UL)]
public sealed class EmulatedOpsParityTests(ulong seed) : OpsParityTests
{
    private protected override string? UnavailableReason => CudaDevices.EmulatorUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Emulated(seed, precision, index);
}

[Category("Gpu")]
public sealed class GpuOpsParityTests : OpsParityTests
{
    private protected override string? UnavailableReason => CudaDevices.GpuUnavailable();

    [TestCase(8, 197, 3, 64)]
    [TestCase(4, 65, 2, 128)]
    [TestCase(2, 50, 6, 32)]
    public void Attention_at_vision_shapes(int batch, int tokens, int heads, int headDim) => CheckAttention(batch, tokens, heads, headDim, keepLse: true);

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Gpu(precision, index);
}
