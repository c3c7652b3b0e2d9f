using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// The ops that take bf16 activations, through the CUDA backend's bf16 kernel builds and cuBLAS's bf16 GEMMs, against
/// the CPU backend on the same bf16 inputs (which computes in float32 on the widened values and rounds each output
/// once, the semantics the kernels have). An output both compute alike may still round to neighbouring bf16 values
/// where float32 results differ in their last bit, so bf16 outputs agree within 1e-3 (one bf16 step is 4e-3); float32
/// outputs of bf16 operands within float32 rounding. bf16 outputs also differ from the float32 op by bf16's rounding,
/// so the bf16 path is seen in effect. On the emulated device in CI and on a GPU.
/// </summary>
public abstract class MixedPrecisionParityTests : CudaDeviceTests
{
    private const double Bf16Agreement = 1e-3;
    private const double Float32Agreement = 1e-5;

    private static readonly Backends.Ops s_cpu = CpuBackend.Instance.DefaultContext.Ops;

    private TensorScope _scope = null!;

    private ComputeContext Gpu => Backend.DefaultContext;

    [SetUp]
    public void BeginScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void EndScope()
    {
        Backend.Synchronize();
        _scope.Dispose();
    }

    [Test]
    public void Cast_rounds_to_nearest_even_as_the_host_does_and_widens_exactly()
    {
        // Ties either way (1 + 2⁻⁸ goes down to even, 1 + 3·2⁻⁸ up), values past bf16's largest (to infinity),
        // subnormals, signed zero, infinities, NaN, and random values.
        float[] special = [1f + (1f / 256), 1f + (3f / 256), -1f - (3f / 256), 3.3895314e38f, float.MaxValue, 1e-40f, -1e-45f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, 0.1f, -2.5e-3f];
        var values = special.Concat(Rand.Values(4093, 90, scale: 50).Select(v => (float)v)).ToArray();
        var host = values.Select(BFloat16.FromSingle).ToArray();
        Assert.That(host[..3], Is.EqualTo(new ushort[] { 0x3F80, 0x3F82, 0xBF82 }), "the host's ties to even");

        var narrow = Tensor.Empty(new Shape(values.Length), DType.BFloat16, Gpu);
        Gpu.Ops.Cast(Tensor.FromArray(values, new Shape(values.Length), Gpu), narrow);
        Assert.That(narrow.ToArray<ushort>(), Is.EqualTo(host), "float32 → bf16 bit for bit");

        var wide = Tensor.Full(narrow.Shape, -1f, DType.Float32, Gpu);
        Gpu.Ops.Cast(narrow, wide);
        Assert.That(wide.ToArray<float>().Select(BitConverter.SingleToUInt32Bits), Is.EqualTo(host.Select(b => (uint)b << 16)), "bf16 → float32 exactly");
    }

    [Test]
    public void Elementwise_ops_on_bf16_match_the_cpu()
    {
        const int rows = 129, cols = 96;
        var shape = new Shape(rows, cols);
        var (a, b, dy) = (Bf16(Rand.Tensor(shape, 1, scale: 3)), Bf16(Rand.Tensor(shape, 2)), Bf16(Rand.Tensor(shape, 3)));
        var bias = Rand.Tensor(new Shape(cols), 4);

        Compare("add", a.Shape, (ops, t, o) => ops.Add(t(a), t(b), o));
        Compare("scale", a.Shape, (ops, t, o) => ops.Scale(t(a), -0.37f, o));
        Compare("bias + GELU", a.Shape, (ops, t, o) => ops.BiasGelu(t(a), t(bias), o));
        Compare("GELU", a.Shape, (ops, t, o) => ops.BiasGelu(t(a), null, o));
        Compare("bias + GELU backward", a.Shape, (ops, t, o) => ops.BiasGeluBackward(t(a), t(bias), t(dy), o, GradOut.None));

        // The bias gradient: float32 sums of dx as stored, where an element may lie one bf16 step from the CPU's.
        var (dx, dbias) = (Tensor.Empty(shape, DType.BFloat16), Tensor.Empty(new Shape(cols)));
        s_cpu.BiasGeluBackward(a, bias, dy, dx, dbias);
        var (gdx, gdbias) = (Tensor.Empty(shape, DType.BFloat16, Gpu), Tensor.Full(new Shape(cols), float.NaN, DType.Float32, Gpu));
        Gpu.Ops.BiasGeluBackward(On(a), On(bias), On(dy), gdx, gdbias);
        Close.Check(gdbias.ToArray<float>(), dbias.ToDoubles(), Bf16Agreement, "the bias gradient of bias + GELU");
        Close.Check(Widened(gdx), Widened(dx), Bf16Agreement, "dx beside it");

        // Dropout keeps the CPU's mask exactly: zeros in the same places.
        var dropped = Tensor.Empty(shape, DType.BFloat16);
        s_cpu.Dropout(a, dropped, 0.3f, 77UL, 5UL);
        var gdropped = Tensor.Empty(shape, DType.BFloat16, Gpu);
        Gpu.Ops.Dropout(On(a), gdropped, 0.3f, 77UL, 5UL);
        Assert.That(Widened(gdropped).Select(v => v == 0), Is.EqualTo(Widened(dropped).Select(v => v == 0)), "dropout's mask");
        Close.Check(Widened(gdropped), Widened(dropped), Bf16Agreement, "dropout");
    }

    [TestCase(false, false)]
    [TestCase(true, true)]
    public void Products_of_bf16_operands_match_the_cpu_in_float32_or_bf16(bool transA, bool transB)
    {
        const int m = 37, n = 29, k = 40, batch = 3;
        var a32 = Rand.Tensor(transA ? new Shape(k, m) : new Shape(m, k), 11);
        var b32 = Rand.Tensor(transB ? new Shape(n, k) : new Shape(k, n), 12);
        var (a, b, bias) = (Bf16(a32), Bf16(b32), Rand.Tensor(new Shape(n), 13));
        var c = Rand.Tensor(new Shape(m, n), 14);

        var float32 = Compare("GEMM into float32, accumulating, with a bias", c.Shape, (ops, t, o) => ops.Gemm(t(a), t(b), o, transA, transB, alpha: 0.5f, beta: -1.5f, bias: t(bias)), DType.Float32, initial: c);
        Compare("GEMM into bf16, with a bias", c.Shape, (ops, t, o) => ops.Gemm(t(a), t(b), o, transA, transB, bias: t(bias)));

        // The operands really are bf16: the float32 product of the unrounded ones is bf16's rounding away.
        var exact = c.Clone();
        s_cpu.Gemm(a32, b32, exact, transA, transB, alpha: 0.5f, beta: -1.5f, bias: bias);
        var error = Close.RelativeError(float32, exact.ToDoubles());
        Assert.That(error, Is.InRange(1e-4, 1e-2), "against float32 operands");

        var ba = Bf16(Rand.Tensor(transA ? new Shape(batch, k, m) : new Shape(batch, m, k), 15));
        var bb = Bf16(Rand.Tensor(transB ? new Shape(batch, n, k) : new Shape(batch, k, n), 16));
        var bbias = Rand.Tensor(new Shape(batch, n), 17);
        Compare("batched GEMM into bf16, a bias per entry", new Shape(batch, m, n), (ops, t, o) => ops.BatchedGemm(t(ba), t(bb), o, transA, transB, bias: t(bbias)));
        Compare("batched GEMM into float32", new Shape(batch, m, n), (ops, t, o) => ops.BatchedGemm(t(ba), t(bb), o, transA, transB), DType.Float32);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Weight_gradients_of_bf16_activations_are_float32(bool grouped)
    {
        const int groups = 3, rows = 45, outFeatures = 19, inFeatures = 27;
        Shape Of(params int[] dims) => grouped ? new Shape([groups, .. dims]) : new Shape(dims);
        var (dy, x) = (Bf16(Rand.Tensor(Of(rows, outFeatures), 61)), Bf16(Rand.Tensor(Of(rows, inFeatures), 62)));
        var (dw, dbias) = (Rand.Tensor(Of(outFeatures, inFeatures), 63), Rand.Tensor(Of(outFeatures), 64));
        var (gdw, gdbias) = (On(dw), On(dbias));
        s_cpu.WeightGrad(dy, x, new GradOut(dw, Accumulate: true), dbias);
        Gpu.Ops.WeightGrad(On(dy), On(x), new GradOut(gdw, Accumulate: true), gdbias);
        Close.Check(gdw.ToArray<float>(), dw.ToDoubles(), Float32Agreement, "dw accumulated");
        Close.Check(gdbias.ToArray<float>(), dbias.ToDoubles(), Float32Agreement, "dbias");
        Gpu.Ops.SumRows(On(dy), gdbias);
        Close.Check(gdbias.ToArray<float>(), dbias.ToDoubles(), Float32Agreement, "dbias by SumRows of bf16 rows");
    }

    // The CUDA-core kernels (float32 precision) and the tensor-core ones (TF32 precision: bf16 tiles for head dims in
    // steps of 16, TF32 tiles over bf16 storage for 40), each reading and writing bf16 activations.
    [TestCase(GemmPrecision.Fp32, 2, 17, 3, 32, 4e-3)]
    [TestCase(GemmPrecision.Fp32, 1, 9, 2, 48, 4e-3)]
    [TestCase(GemmPrecision.Tf32, 2, 67, 2, 64, 1e-2)]
    [TestCase(GemmPrecision.Tf32, 1, 20, 1, 40, 1e-2)]
    public void Attention_on_bf16_activations_matches_the_cpu(GemmPrecision precision, int batch, int tokens, int heads, int headDim, double tolerance)
    {
        if (precision != GemmPrecision.Fp32 && !Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no tensor cores for TF32 or bf16");
        }

        using var device = Open(precision, index: 2);
        var ctx = device.DefaultContext;
        var dim = heads * headDim;
        var qkv = Bf16(Rand.Tensor(new Shape(batch, tokens, 3 * dim), 60));
        var dout = Bf16(Rand.Tensor(new Shape(batch, tokens, dim), 61));
        var (output, lse, dqkv) = (Tensor.Empty(dout.Shape, DType.BFloat16), Tensor.Empty(new Shape(batch, heads, tokens)), Tensor.Empty(qkv.Shape, DType.BFloat16));
        s_cpu.Attention(qkv, heads, output, lse);
        s_cpu.AttentionBackward(qkv, output, dout, lse, heads, dqkv);

        var (gqkv, gout, glse, gdqkv) = (On(qkv, ctx), Tensor.Empty(output.Shape, DType.BFloat16, ctx), Tensor.Full(lse.Shape, float.NaN, DType.Float32, ctx), Tensor.Empty(qkv.Shape, DType.BFloat16, ctx));
        ctx.Ops.Attention(gqkv, heads, gout, glse);
        ctx.Ops.AttentionBackward(gqkv, gout, On(dout, ctx), glse, heads, gdqkv);
        Close.Check(Widened(gout), Widened(output), tolerance, "out");
        Close.Check(glse.ToArray<float>(), lse.ToDoubles(), tolerance, "lse");
        Close.Check(Widened(gdqkv), Widened(dqkv), tolerance, "dqkv");
    }

    /// <summary>
    /// Runs <paramref name="op"/> on the CPU and on the device (<c>t</c> moves an input there) into a fresh output of
    /// <paramref name="dtype"/> (or a copy of <paramref name="initial"/>) and checks they agree. A bf16 output must also
    /// be bf16's rounding of the float32 op on the same (widened) inputs: close to it, and not equal. Returns the
    /// device's values.
    /// </summary>
    private double[] Compare(string what, Shape shape, Action<Backends.Ops, Func<Tensor, Tensor>, Tensor> op, DType dtype = DType.BFloat16, Tensor? initial = null)
    {
        var cpu = initial?.Clone() ?? Tensor.Empty(shape, dtype);
        op(s_cpu, t => t, cpu);
        var device = initial is null ? Tensor.Empty(shape, dtype, Gpu) : On(initial);
        op(Gpu.Ops, On, device);
        var (got, want) = (Widened(device), Widened(cpu));
        Close.Check(got, want, dtype == DType.BFloat16 ? Bf16Agreement : Float32Agreement, what);
        if (dtype == DType.BFloat16)
        {
            var float32 = Tensor.Empty(shape);
            op(s_cpu, t => t.DType == DType.BFloat16 ? Tensor.FromArray(Widened(t).Select(v => (float)v).ToArray(), t.Shape) : t, float32);
            Assert.That(Close.RelativeError(want, float32.ToDoubles()), Is.InRange(1e-5, 4e-3), $"{what}: bf16's rounding of the float32 op");
        }

        return got;
    }

    private static Tensor Bf16(Tensor t)
    {
        var narrow = Tensor.Empty(t.Shape, DType.BFloat16, t.Context);
        t.Context.Ops.Cast(t, narrow);
        return narrow;
    }

    private static double[] Widened(Tensor t) =>
        t.DType == DType.BFloat16 ? t.ToArray<ushort>().Select(b => (double)BFloat16.ToSingle(b)).ToArray() : t.ToDoubles();

    private Tensor On(Tensor cpu) => On(cpu, Gpu);

    private static Tensor On(Tensor cpu, ComputeContext ctx)
    {
        var t = Tensor.Empty(cpu.Shape, cpu.DType, ctx);
        ctx.Ops.CopyAcross(cpu, t);
        return t;
    }
}

[Category("Emulator")]
public sealed class EmulatedMixedPrecisionParityTests : MixedPrecisionParityTests
{
    private protected override string? UnavailableReason => CudaDevices.EmulatorUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Emulated(3, precision, index);
}

[Category("Gpu")]
public sealed class GpuMixedPrecisionParityTests : MixedPrecisionParityTests
{
    private protected override string? UnavailableReason => CudaDevices.GpuUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Gpu(precision, index);
}
