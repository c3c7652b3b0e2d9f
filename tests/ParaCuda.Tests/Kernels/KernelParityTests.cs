using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Tensors;
using ParaCuda.Tests.Emulator;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Kernels;

/// <summary>
/// Every kernel in kernels/ against the CPU backend's op on the same random inputs, as llm.c checks its
/// kernels: float32 within 1e-5 relative, bit-exact where the op has no arithmetic (dropout's mask,
/// patchify, argmax). Outputs are poisoned with NaN first, so an element a kernel forgets fails. The same
/// tests run on the GPU (<see cref="GpuKernelParityTests"/>) and on the CPU emulator of the kernels
/// (<see cref="EmulatedKernelParityTests"/>), which checks their indexing and arithmetic where there is no GPU.
/// </summary>
public abstract class KernelParityTests
{
    private const uint Block = 256;
    private const uint WarpsPerBlock = Block / 32;
    private const double Tolerance = 1e-5;

    private static readonly Backends.Ops s_cpu = ComputeContext.Default.Ops;

    private IKernelDevice _device = null!;
    private TensorScope _scope = null!;

    /// <summary>Why this fixture cannot run here, or null.</summary>
    private protected abstract string? UnavailableReason { get; }

    private protected abstract IKernelDevice Open();

    [OneTimeSetUp]
    public void OpenDevice()
    {
        if (UnavailableReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        _device = Open();
    }

    [OneTimeTearDown]
    public void CloseDevice() => _device?.Dispose();

    [SetUp]
    public void BeginScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void EndScope() => _scope.Dispose();

    private static uint Warps(long rows) => (uint)((rows + WarpsPerBlock - 1) / WarpsPerBlock);

    private static uint Blocks(long n) => (uint)Math.Min((n + Block - 1) / Block, 65535);

    private KernelBuffer Up(Tensor t) => t.DType == DType.Int32 ? _device.Upload<int>(t.ToArray<int>()) : _device.Upload<float>(t.ToArray<float>());

    private KernelBuffer Up<T>(T[] values)
        where T : unmanaged => _device.Upload<T>(values);

    private KernelBuffer Out(long elements)
    {
        var buffer = _device.Allocate(elements);
        buffer.Poison();
        return buffer;
    }

    private void Same(KernelBuffer gpu, Tensor cpu, double tolerance, string what)
    {
        _device.Synchronize();
        var actual = gpu.Download<float>().Take((int)cpu.NumElements).Select(v => (double)v).ToArray();
        Close.Check(actual, cpu.ToDoubles(), tolerance, what);
    }

    /// <summary>Column sums of a [rows, cols] view with the given row stride, by the two reductions.cu kernels.</summary>
    private void SumRows(KernelBuffer x, int rows, int cols, long stride, KernelBuffer output, bool accumulate)
    {
        const int RowsPerBlock = 64;
        var rowBlocks = (rows + RowsPerBlock - 1) / RowsPerBlock;
        using var partial = _device.Allocate((long)rowBlocks * cols);
        _device.Launch("reductions.cu", "sum_rows_partial", ((uint)((cols + 31) / 32), (uint)rowBlocks, 1), 32, x, rows, cols, stride, RowsPerBlock, partial);
        _device.Launch("reductions.cu", "sum_rows_finish", Blocks(cols), Block, partial, rowBlocks, cols, accumulate ? 1 : 0, output);
        _device.Synchronize();
    }

    private KernelBuffer Slices(List<KernelBuffer> tensors, out int blocks)
    {
        var slices = new TensorSlice[tensors.Count];
        blocks = 0;
        for (var i = 0; i < tensors.Count; i++)
        {
            slices[i] = new TensorSlice { Data = tensors[i].Pointer, Count = tensors[i].Elements, FirstBlock = blocks };
            blocks += KernelTables.Blocks(tensors[i].Elements);
        }

        return _device.Upload<TensorSlice>(slices);
    }

    [Test]
    public void LayerNorm_forward_and_backward()
    {
        const int rows = 300, cols = 192;
        var x = Rand.Tensor(new Shape(rows, cols), 1, scale: 3);
        var gamma = Rand.Tensor(new Shape(cols), 2);
        var beta = Rand.Tensor(new Shape(cols), 3);
        var dy = Rand.Tensor(new Shape(rows, cols), 4);
        var (y, mean, rstd) = (x.EmptyLike(), Tensor.Empty(new Shape(rows)), Tensor.Empty(new Shape(rows)));
        s_cpu.LayerNorm(x, gamma, beta, 1e-5f, y, mean, rstd);
        var (dx, dgamma, dbeta) = (x.EmptyLike(), gamma.EmptyLike(), gamma.EmptyLike());
        s_cpu.LayerNormBackward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);

        using KernelBuffer gx = Up(x), gg = Up(gamma), gb = Up(beta), gdy = Up(dy);
        using KernelBuffer gy = Out(rows * cols), gmean = Out(rows), grstd = Out(rows), gdx = Out(rows * cols), gdg = Out(cols), gdb = Out(cols);
        _device.Launch("layernorm_forward.cu", "layernorm_forward", Warps(rows), Block, gx, gg, gb, 1e-5f, rows, cols, gy, gmean, grstd);
        _device.Launch("layernorm_backward.cu", "layernorm_backward_dx", Warps(rows), Block, gdy, gx, gg, gmean, grstd, rows, cols, 0, gdx);
        const int RowsPerBlock = 64;
        var rowBlocks = (rows + RowsPerBlock - 1) / RowsPerBlock;
        using KernelBuffer pg = Out((long)rowBlocks * cols), pb = Out((long)rowBlocks * cols);
        _device.Launch("layernorm_backward.cu", "layernorm_backward_params_partial", ((uint)((cols + 31) / 32), (uint)rowBlocks, 1), 32, gdy, gx, gmean, grstd, rows, cols, RowsPerBlock, pg, pb);
        _device.Launch("reductions.cu", "sum_rows_finish", Blocks(cols), Block, pg, rowBlocks, cols, 0, gdg);
        _device.Launch("reductions.cu", "sum_rows_finish", Blocks(cols), Block, pb, rowBlocks, cols, 0, gdb);

        Same(gy, y, Tolerance, "y");
        Same(gmean, mean, Tolerance, "mean");
        Same(grstd, rstd, Tolerance, "rstd");
        Same(gdx, dx, Tolerance, "dx");
        Same(gdg, dgamma, Tolerance, "dgamma");
        Same(gdb, dbeta, Tolerance, "dbeta");
    }

    [Test]
    public void Bias_gelu_forward_and_backward()
    {
        const int rows = 257, cols = 768;
        var x = Rand.Tensor(new Shape(rows, cols), 5, scale: 4);
        var bias = Rand.Tensor(new Shape(cols), 6);
        var dy = Rand.Tensor(new Shape(rows, cols), 7);
        var y = x.EmptyLike();
        s_cpu.BiasGelu(x, bias, y);
        var (dx, dbias) = (x.EmptyLike(), bias.EmptyLike());
        s_cpu.BiasGeluBackward(x, bias, dy, dx, dbias);

        using KernelBuffer gx = Up(x), gbias = Up(bias), gdy = Up(dy), gy = Out(rows * cols), gdx = Out(rows * cols), gdbias = Out(cols);
        const long n = (long)rows * cols;
        _device.Launch("bias_gelu_forward.cu", "bias_gelu_forward", Blocks(n), Block, gx, gbias, n, cols, gy);
        _device.Launch("bias_gelu_backward.cu", "bias_gelu_backward", Blocks(n), Block, gx, gbias, gdy, n, cols, gdx);
        SumRows(gdx, rows, cols, cols, gdbias, accumulate: false);

        Same(gy, y, Tolerance, "y");
        Same(gdx, dx, Tolerance, "dx");
        Same(gdbias, dbias, Tolerance, "dbias");
    }

    [Test]
    public void Cross_entropy_forward_and_backward()
    {
        const int rows = 500, classes = 10;
        var logits = Rand.Tensor(new Shape(rows, classes), 8, scale: 6);
        var labels = Tensor.FromArray(Rand.Labels(rows, classes, 9), new Shape(rows));
        var dloss = Tensor.FromArray([0.75f], new Shape(1));
        var losses = Tensor.Empty(new Shape(rows));
        s_cpu.CrossEntropy(logits, labels, losses);
        var dlogits = logits.EmptyLike();
        s_cpu.CrossEntropyBackward(logits, labels, dloss, 1f / rows, dlogits);

        using KernelBuffer gl = Up(logits), gy = Up(labels), gd = Up(dloss), gloss = Out(rows), gdl = Out(rows * classes);
        _device.Launch("cross_entropy.cu", "cross_entropy_forward", Warps(rows), Block, gl, gy, rows, classes, gloss);
        _device.Launch("cross_entropy.cu", "cross_entropy_backward", Warps(rows), Block, gl, gy, gd, 1f / rows, rows, classes, gdl);

        Same(gloss, losses, Tolerance, "losses");
        Same(gdl, dlogits, Tolerance, "dlogits");
    }

    [Test]
    public void Dropout_mask_is_the_cpu_mask_bit_for_bit()
    {
        const int n = 10_001;
        var x = Rand.Tensor(new Shape(n), 10);
        var y = x.EmptyLike();
        s_cpu.Dropout(x, y, 0.3f, 1234567890123UL, 42UL);
        using KernelBuffer gx = Up(x), gy = Out(n);
        _device.Launch("dropout.cu", "dropout_forward", Blocks((n + 3) / 4), Block, gx, (long)n, 0.3f, 1234567890123UL, 42UL, gy);
        Same(gy, y, 0, "dropout");
    }

    [Test]
    public void Patchify_tokens_and_pooling()
    {
        const int batch = 3, channels = 3, size = 28, patch = 7, dim = 16;
        const int patches = size / patch * (size / patch), features = patch * patch * channels, tokens = patches + 1;
        var images = Rand.Tensor(new Shape(batch, channels, size, size), 11);
        var patchified = Tensor.Empty(new Shape(batch, patches, features));
        s_cpu.Patchify(images, patch, patchified);
        var emb = Rand.Tensor(new Shape(batch, patches, dim), 12);
        var cls = Rand.Tensor(new Shape(dim), 13);
        var pos = Rand.Tensor(new Shape(tokens, dim), 14);
        var assembled = Tensor.Empty(new Shape(batch, tokens, dim));
        s_cpu.AssembleTokens(emb, cls, pos, assembled);
        var dtokens = Rand.Tensor(new Shape(batch, tokens, dim), 15);
        var (demb, dcls, dpos) = (emb.EmptyLike(), cls.EmptyLike(), pos.EmptyLike());
        s_cpu.AssembleTokensBackward(dtokens, demb, dcls, dpos);

        using KernelBuffer gimages = Up(images), gpatches = Out(patchified.NumElements);
        _device.Launch("patchify.cu", "patchify", Blocks(patchified.NumElements), Block, gimages, batch, channels, size, size, patch, gpatches);
        Same(gpatches, patchified, 0, "patchify");

        using KernelBuffer gemb = Up(emb), gcls = Up(cls), gpos = Up(pos), gtokens = Out(assembled.NumElements);
        using KernelBuffer gdtokens = Up(dtokens), gdemb = Out(emb.NumElements), gdcls = Out(dim), gdpos = Out(pos.NumElements);
        _device.Launch("tokens.cu", "assemble_tokens", Blocks(assembled.NumElements), Block, gemb, gcls, gpos, batch, patches, dim, gtokens);
        _device.Launch("tokens.cu", "assemble_tokens_backward_patches", Blocks(emb.NumElements), Block, gdtokens, batch, patches, dim, 0, gdemb);
        SumRows(gdtokens, batch, dim, tokens * dim, gdcls, accumulate: false);
        SumRows(gdtokens, batch, tokens * dim, tokens * dim, gdpos, accumulate: false);
        Same(gtokens, assembled, Tolerance, "tokens");
        Same(gdemb, demb, Tolerance, "dEmb");
        Same(gdcls, dcls, Tolerance, "dcls");
        Same(gdpos, dpos, Tolerance, "dpos");
        foreach (var mode in new[] { Pooling.Cls, Pooling.Mean })
        {
            var pooled = Tensor.Empty(new Shape(batch, dim));
            s_cpu.PoolTokens(assembled, mode, pooled);
            var dpooled = Rand.Tensor(new Shape(batch, dim), 16);
            var dx = assembled.EmptyLike();
            s_cpu.PoolTokensBackward(dpooled, mode, dx);
            using KernelBuffer gpooled = Out(pooled.NumElements), gdpooled = Up(dpooled), gdx = Out(dx.NumElements);
            var mean = mode == Pooling.Mean ? 1 : 0;
            _device.Launch("pool_tokens.cu", "pool_tokens_forward", Blocks(pooled.NumElements), Block, gtokens, batch, tokens, dim, mean, gpooled);
            _device.Launch("pool_tokens.cu", "pool_tokens_backward", Blocks(dx.NumElements), Block, gdpooled, batch, tokens, dim, mean, 0, gdx);
            Same(gpooled, pooled, Tolerance, $"pool {mode}");
            Same(gdx, dx, Tolerance, $"pool backward {mode}");
        }
    }

    [Test]
    public void Accumulating_gradients_add_to_what_is_there()
    {
        const int batch = 4, patches = 9, dim = 32, tokens = patches + 1, rows = batch * tokens;
        var x = Rand.Tensor(new Shape(rows, dim), 70);
        var gamma = Rand.Tensor(new Shape(dim), 71);
        var beta = Rand.Tensor(new Shape(dim), 72);
        var dy = Rand.Tensor(new Shape(rows, dim), 73);
        var (y, mean, rstd) = (x.EmptyLike(), Tensor.Empty(new Shape(rows)), Tensor.Empty(new Shape(rows)));
        s_cpu.LayerNorm(x, gamma, beta, 1e-5f, y, mean, rstd);
        var dtokens = Rand.Tensor(new Shape(batch, tokens, dim), 74);
        var dpooled = Rand.Tensor(new Shape(batch, dim), 75);

        // Every gradient starts from a known nonzero value that the op must keep.
        var dx = Rand.Tensor(new Shape(rows, dim), 76);
        var demb = Rand.Tensor(new Shape(batch, patches, dim), 77);
        var dcls = Rand.Tensor(new Shape(dim), 78);
        var dpool = Rand.Tensor(new Shape(batch, tokens, dim), 79);
        using KernelBuffer gdx = Up(dx), gdemb = Up(demb), gdcls = Up(dcls), gdpool = Up(dpool);
        using KernelBuffer gx = Up(x), gg = Up(gamma), gdy = Up(dy), gmean = Up(mean), grstd = Up(rstd), gdtokens = Up(dtokens), gdpooled = Up(dpooled);

        s_cpu.LayerNormBackward(dy, x, gamma, mean, rstd, new GradOut(dx, Accumulate: true), GradOut.None, GradOut.None);
        s_cpu.AssembleTokensBackward(dtokens, new GradOut(demb, Accumulate: true), new GradOut(dcls, Accumulate: true), GradOut.None);
        s_cpu.PoolTokensBackward(dpooled, Pooling.Cls, new GradOut(dpool, Accumulate: true));
        _device.Launch("layernorm_backward.cu", "layernorm_backward_dx", Warps(rows), Block, gdy, gx, gg, gmean, grstd, rows, dim, 1, gdx);
        _device.Launch("tokens.cu", "assemble_tokens_backward_patches", Blocks(demb.NumElements), Block, gdtokens, batch, patches, dim, 1, gdemb);
        SumRows(gdtokens, batch, dim, tokens * dim, gdcls, accumulate: true);
        _device.Launch("pool_tokens.cu", "pool_tokens_backward", Blocks(dpool.NumElements), Block, gdpooled, batch, tokens, dim, 0, 1, gdpool);

        Same(gdx, dx, Tolerance, "dx accumulated");
        Same(gdemb, demb, Tolerance, "dEmb accumulated");
        Same(gdcls, dcls, Tolerance, "dcls accumulated");
        Same(gdpool, dpool, Tolerance, "pooled dx accumulated (cls: only token 0 changes)");
    }

    [Test]
    public void Argmax_and_count_correct_with_ties_and_nan()
    {
        const int rows = 1000, classes = 10;
        var values = Rand.Values(rows * classes, 17).Select(v => (float)Math.Round(v * 3)).ToArray();
        values[0] = float.NaN;
        values[classes + 4] = float.NaN;
        var logits = Tensor.FromArray(values, new Shape(rows, classes));
        var labels = Tensor.FromArray(Rand.Labels(rows, classes, 18), new Shape(rows));
        var indices = Tensor.Empty(new Shape(rows), DType.Int32);
        s_cpu.ArgmaxRows(logits, indices);
        var count = Tensor.Empty(new Shape(1), DType.Int32);
        s_cpu.CountCorrect(logits, labels, count);

        using KernelBuffer gl = Up(logits), gy = Up(labels), gi = Out(rows), gc = _device.Upload<int>([0]);
        _device.Launch("classify.cu", "argmax_rows", Blocks(rows), Block, gl, rows, classes, gi);
        _device.Launch("classify.cu", "count_correct", Blocks(rows), Block, gl, gy, rows, classes, gc);
        _device.Synchronize();
        Assert.That(gi.Download<int>(), Is.EqualTo(indices.ToArray<int>()));
        Assert.That(gc.Download<int>(), Is.EqualTo(count.ToArray<int>()));
    }

    // Small enough for the emulator, which switches fibers at every warp reduction; the GPU fixture adds
    // the paper's shape.
    [TestCase(2, 17, 3, 32, true)]
    [TestCase(1, 9, 1, 128, false)]
    public void Attention_forward_and_backward(int batch, int tokens, int heads, int headDim, bool keepLse) =>
        CheckAttention(batch, tokens, heads, headDim, keepLse);

    private protected void CheckAttention(int batch, int tokens, int heads, int headDim, bool keepLse)
    {
        var dim = heads * headDim;
        var qkv = Rand.Tensor(new Shape(batch, tokens, 3 * dim), 19);
        var output = Tensor.Empty(new Shape(batch, tokens, dim));
        var lse = Tensor.Empty(new Shape(batch, heads, tokens));
        s_cpu.Attention(qkv, heads, output, lse);
        var dout = Rand.Tensor(output.Shape, 20);
        var dqkv = qkv.EmptyLike();
        s_cpu.AttentionBackward(qkv, output, dout, lse, heads, dqkv);

        var rows = (long)batch * heads * tokens;
        using KernelBuffer gqkv = Up(qkv), gout = Out(output.NumElements), glse = Out(rows), gdout = Up(dout), gdelta = Out(rows), gdqkv = Out(qkv.NumElements);
        _device.Launch("attention_forward.cu", "attention_forward", Warps(rows), Block, gqkv, batch, tokens, heads, headDim, gout, keepLse ? glse : null);
        _device.Launch("attention_backward.cu", "attention_backward_rows", Warps(rows), Block, gqkv, gout, gdout, batch, tokens, heads, headDim, keepLse ? 0 : 1, glse, gdelta);
        _device.Launch("attention_backward.cu", "attention_backward_dq", Warps(rows), Block, gqkv, gdout, glse, gdelta, batch, tokens, heads, headDim, gdqkv);
        _device.Launch("attention_backward.cu", "attention_backward_dkdv", Warps(rows), Block, gqkv, gdout, glse, gdelta, batch, tokens, heads, headDim, gdqkv);

        Same(gout, output, Tolerance, "out");
        Same(glse, lse, Tolerance, "lse");
        Same(gdqkv, dqkv, Tolerance, "dqkv");
    }

    [Test]
    public void Adam_updates_every_tensor_in_one_launch()
    {
        var hp = new AdamParameters(3e-3f, WeightDecay: 0.05f, DecoupledWeightDecay: true);
        long[] steps = [3, 7];
        Shape[] shapes = [new(5000), new(33, 17)];
        var parameters = shapes.Select((s, i) => Rand.Tensor(s, 21 + i)).ToList();
        var grads = shapes.Select((s, i) => Rand.Tensor(s, 31 + i)).ToList();
        var m = shapes.Select((s, i) => Rand.Tensor(s, 41 + i, scale: 0.1)).ToList();
        var v = shapes.Select((s, i) => Tensor.FromArray(Rand.Values(s.NumElements, 51 + i, 0.01).Select(x => (float)Math.Abs(x)).ToArray(), s)).ToList();
        var gp = parameters.Select(Up).ToList();
        var gg = grads.Select(Up).ToList();
        var gm = m.Select(Up).ToList();
        var gv = v.Select(Up).ToList();
        try
        {
            s_cpu.AdamUpdate(parameters, grads, m, v, hp, steps);
            var slices = new AdamSlice[shapes.Length];
            var blocks = 0;
            for (var t = 0; t < shapes.Length; t++)
            {
                slices[t] = new AdamSlice
                {
                    Param = gp[t].Pointer,
                    Grad = gg[t].Pointer,
                    M = gm[t].Pointer,
                    V = gv[t].Pointer,
                    Count = shapes[t].NumElements,
                    StepSize = (float)(hp.LearningRate / (1.0 - Math.Pow(hp.Beta1, steps[t]))),
                    Bc2Sqrt = (float)Math.Sqrt(1.0 - Math.Pow(hp.Beta2, steps[t])),
                    FirstBlock = blocks,
                };
                blocks += KernelTables.Blocks(shapes[t].NumElements);
            }

            using var table = _device.Upload<AdamSlice>(slices);
            _device.Launch("adam.cu", "adam_update", (uint)blocks, Block, table, shapes.Length, KernelTables.ElementsPerBlock, hp.Beta1, hp.Beta2, hp.Epsilon, 1f - (hp.LearningRate * hp.WeightDecay), 0f);
            for (var t = 0; t < shapes.Length; t++)
            {
                Same(gp[t], parameters[t], Tolerance, $"param {t}");
                Same(gm[t], m[t], Tolerance, $"m {t}");
                Same(gv[t], v[t], Tolerance, $"v {t}");
            }
        }
        finally
        {
            foreach (var buffer in gp.Concat(gg).Concat(gm).Concat(gv))
            {
                buffer.Dispose();
            }
        }
    }

    [Test]
    public void Branch_sum_and_reductions()
    {
        var branches = Enumerable.Range(0, 3).Select(b => Rand.Tensor(new Shape(64, 17, 48), 60 + b)).ToList();
        var sum = branches[0].EmptyLike();
        s_cpu.SumMany(branches, sum);
        var columns = Tensor.Empty(new Shape(48));
        s_cpu.SumRows(branches[0], columns);
        var total = Tensor.Empty(new Shape(1));
        s_cpu.SumAll(branches[1], total, 0.25f);
        var norm = Tensor.Empty(new Shape(1));
        s_cpu.GlobalNorm(branches, norm);
        var clipped = branches.Select(b => b.Clone()).ToList();
        s_cpu.ClipByNorm(clipped, norm, 1f);

        var gb = branches.Select(Up).ToList();
        try
        {
            using var pointers = _device.Upload<ulong>(gb.Select(b => b.Pointer).ToArray());
            using KernelBuffer gsum = Out(sum.NumElements), gcols = Out(48), gtotal = Out(1), gnorm = Out(1);
            _device.Launch("branch_sum.cu", "branch_sum", Blocks(sum.NumElements), Block, pointers, gb.Count, sum.NumElements, gsum);
            SumRows(gb[0], 64 * 17, 48, 48, gcols, accumulate: false);
            using (var one = Slices([gb[1]], out var blocks))
            using (var partial = _device.Allocate(blocks))
            {
                _device.Launch("reductions.cu", "sum_partial", (uint)blocks, Block, one, 1, KernelTables.ElementsPerBlock, 0, partial);
                _device.Launch("reductions.cu", "sum_finish", 1, 1024, partial, blocks, 0.25f, 0, gtotal);
            }

            using (var all = Slices(gb, out var blocks))
            using (var partial = _device.Allocate(blocks))
            {
                _device.Launch("reductions.cu", "sum_partial", (uint)blocks, Block, all, gb.Count, KernelTables.ElementsPerBlock, 1, partial);
                _device.Launch("reductions.cu", "sum_finish", 1, 1024, partial, blocks, 1f, 1, gnorm);
                _device.Launch("reductions.cu", "scale_by_norm", (uint)blocks, Block, all, gb.Count, KernelTables.ElementsPerBlock, gnorm, 1f);
            }

            Same(gsum, sum, Tolerance, "branch sum");
            Same(gcols, columns, Tolerance, "sum rows");
            Same(gtotal, total, Tolerance, "sum all");
            Same(gnorm, norm, Tolerance, "global norm");
            for (var b = 0; b < gb.Count; b++)
            {
                Same(gb[b], clipped[b], Tolerance, $"clipped {b}");
            }
        }
        finally
        {
            foreach (var buffer in gb)
            {
                buffer.Dispose();
            }
        }
    }
}

[Category("Gpu")]
public sealed class GpuKernelParityTests : KernelParityTests
{
    private protected override string? UnavailableReason =>
        Native.CudaDriver.IsAvailable ? null : $"GPU test skipped: {Native.CudaDriver.UnavailableReason}";

    [TestCase(8, 197, 3, 64)]
    [TestCase(4, 65, 2, 128)]
    public void Attention_at_vision_shapes(int batch, int tokens, int heads, int headDim) => CheckAttention(batch, tokens, heads, headDim, keepLse: true);

    private protected override IKernelDevice Open() => new GpuKernelDevice();
}

[Category("Emulator")]
public sealed class EmulatedKernelParityTests : KernelParityTests
{
    private protected override string? UnavailableReason => EmulatedKernelDevice.UnavailableReason is { } reason
        ? Environment.GetEnvironmentVariable("PARACUDA_REQUIRE_EMULATOR") == "1" ? throw new InvalidOperationException($"PARACUDA_REQUIRE_EMULATOR=1 but {reason}") : $"kernel emulator skipped: {reason}"
        : null;

    private protected override IKernelDevice Open() => new EmulatedKernelDevice();
}
