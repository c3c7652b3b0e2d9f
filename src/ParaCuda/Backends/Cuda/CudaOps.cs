using ParaCuda.Backends.Cpu;
using ParaCuda.Native;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// The op set on one CUDA stream: each op is one or a few launches of the kernels in kernels/ (named in each
/// file's header comment), or a cuBLAS GEMM, issued on the context's stream without waiting for it. Every
/// tensor an op touches is noted as used by this stream, so the allocator does not reuse its memory before
/// the stream is done with it. Temporaries (partial sums, kernel tables) are freed as soon as their
/// launches are issued: a stream-ordered free.
/// </summary>
internal sealed unsafe class CudaOps(CudaContext context) : Ops(context.Device)
{
    private const uint Threads = 256;
    private const uint WarpsPerBlock = Threads / 32;
    private const int RowsPerPartial = 64;
    private const int MaxHeadDim = 256;
    private const int TensorCoreTile = 64;
    private const int BranchSumInputs = 8;

    private CudaBackend Backend => context.Cuda;

    protected override void FillCore(Tensor dst, float value)
    {
        if (OnFloat32([dst], [0], t => FillCore(t[0]!, value)))
        {
            return;
        }

        var bits = dst.DType switch
        {
            DType.Float32 => BitConverter.SingleToUInt32Bits(value),
            DType.Int32 => (uint)checked((int)value),
            _ => throw Unsupported(nameof(Fill), dst),
        };
        context.Gpu.Fill32(P(dst), bits, dst.NumElements, context.Stream);
    }

    protected override void CopyCore(Tensor src, Tensor dst)
    {
        if (src.IsContiguous)
        {
            context.Gpu.CopyDeviceToDevice(P(dst), P(src), dst.ByteLength, context.Stream);
            return;
        }

        if (src.DType.SizeInBytes() != 4 || src.Rank > 6)
        {
            throw new TensorOpException(nameof(Copy), $"a strided copy of {src.Describe()} needs 32-bit elements and rank ≤ 6 on the CUDA backend");
        }

        // Pad shape and strides with leading 1s to the kernel's six axes.
        Span<long> dims = [1, 1, 1, 1, 1, 1];
        Span<long> strides = [0, 0, 0, 0, 0, 0];
        for (var a = 0; a < src.Rank; a++)
        {
            dims[6 - src.Rank + a] = src.Shape[a];
            strides[6 - src.Rank + a] = src.Strides[a];
        }

        var n = dst.NumElements;
        Run("elementwise.cu", "copy_strided", Grid(n), P(src), n, dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], strides[0], strides[1], strides[2], strides[3], strides[4], strides[5], P(dst));
    }

    protected override void CopyAcrossCore(Tensor src, Tensor dst)
    {
        if (src.Storage is CpuStorage)
        {
            using var host = src.Contiguous();
            CopyFromHostCore(new ReadOnlySpan<byte>((byte*)((CpuStorage)host.Storage).Pointer + (host.Offset * host.DType.SizeInBytes()), checked((int)host.ByteLength)), dst);
            return;
        }

        using var contiguous = src.Contiguous();
        context.WaitFor(src.Context);
        var from = (CudaStorage)contiguous.Storage;
        if (ReferenceEquals(from.Backend.Gpu, context.Gpu))
        {
            context.Gpu.CopyDeviceToDevice(P(dst), P(contiguous), dst.ByteLength, context.Stream);
        }
        else
        {
            context.Gpu.CopyPeer(P(dst), P(contiguous), from.Backend.Gpu, dst.ByteLength, context.Stream);
        }
    }

    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, Tensor dst) => context.Upload(src, P(dst));

    protected override void CopyToHostCore(Tensor src, Span<byte> dst)
    {
        fixed (byte* d = dst)
        {
            context.Gpu.CopyDeviceToHost(d, P(src), dst.Length, context.Stream);
        }
    }

    protected override void CastCore(Tensor src, Tensor dst) =>
        Run("cast.cu", src.DType == DType.Float32 ? "f32_to_bf16" : "bf16_to_f32", Grid(src.NumElements), P(src), src.NumElements, P(dst));

    protected override void AddCore(Tensor a, Tensor b, Tensor output) =>
        Run("elementwise.cu", "add", a, Grid(a.NumElements), P(a), P(b), a.NumElements, P(output));

    protected override void ScaleCore(Tensor x, float alpha, Tensor output) =>
        Run("elementwise.cu", "scale", x, Grid(x.NumElements), P(x), alpha, x.NumElements, P(output));

    protected override void SumManyCore(IReadOnlyList<Tensor> xs, Tensor output)
    {
        var n = output.NumElements;
        for (var first = 0; first < xs.Count; first += BranchSumInputs)
        {
            var count = Math.Min(BranchSumInputs, xs.Count - first);
            ulong Input(int i) => i < count ? P(xs[first + i]) : 0;
            Run("branch_sum.cu", "branch_sum", Grid(n), Input(0), Input(1), Input(2), Input(3), Input(4), Input(5), Input(6), Input(7), count, first > 0, n, P(output));
        }
    }

    protected override void BiasGeluCore(Tensor x, Tensor? bias, Tensor y) =>
        Run("bias_gelu_forward.cu", "bias_gelu_forward", x, Grid(x.NumElements), P(x), P(bias), x.NumElements, x.Shape[-1], GroupElements(x, bias), P(y));

    protected override void BiasGeluBackwardCore(Tensor x, Tensor? bias, Tensor dy, Tensor dx, GradOut dbias)
    {
        Run("bias_gelu_backward.cu", "bias_gelu_backward", x, Grid(x.NumElements), P(x), P(bias), P(dy), x.NumElements, x.Shape[-1], GroupElements(x, bias), P(dx));
        if (dbias.Tensor is not null)
        {
            ColumnSums(dx, Groups(dbias.Tensor), Rows(dx) / Groups(dbias.Tensor), dx.Shape[-1], dx.Shape[-1], dbias);
        }
    }

    protected override void DropoutCore(Tensor x, Tensor y, float p, ulong seed, ulong offset, Tensor? offsetBase) =>
        Run("dropout.cu", "dropout_forward", x, Grid((x.NumElements + 3) / 4), P(x), x.NumElements, p, seed, offset, P(offsetBase), P(y));

    protected override void GemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        if (!transA && transB && alpha == 1f && beta == 0f && (SettledChoice(a.Shape[0]) ?? FasterLinear(a, b, bias, c)))
        {
            LinearOnTensorCores("linear_bias_tc", a, b, bias, c, P(c));
            return;
        }

        LibraryGemm(a, b, c, transA, transB, alpha, beta, bias);
    }

    private void LibraryGemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        var (m, k) = transA ? (a.Shape[1], a.Shape[0]) : (a.Shape[0], a.Shape[1]);
        // A bias goes into C before cuBLAS adds the product: a bf16 C would round the sum twice, so it takes float32.
        if (bias is not null && OnFloat32([c], [0], t => LibraryGemm(a, b, t[0]!, transA, transB, alpha, beta, bias)))
        {
            return;
        }

        var n = c.Shape[1];
        var types = (Blas(a), Blas(c));
        if (bias is not null && Gemm(transA, transB, m, n, k, alpha, P(a), a.Shape[1], 0, P(b), b.Shape[1], 0, beta, P(c), 0, 1, types, LtEpilogue.Bias, P(bias), 0))
        {
            return;
        }

        if (bias is not null)
        {
            Run("elementwise.cu", "bias_rows", c, Grid(c.NumElements), P(bias), beta, c.NumElements, n, c.NumElements, P(c));
            beta = 1f;
        }

        Gemm(transA, transB, m, n, k, alpha, P(a), a.Shape[1], 0, P(b), b.Shape[1], 0, beta, P(c), 0, 1, types);
    }

    protected override void BatchedGemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        if (!transA && transB && alpha == 1f && beta == 0f && (SettledChoice(a.Shape[1]) ?? FasterLinear(a, b, bias, c)))
        {
            LinearOnTensorCores("linear_bias_tc", a, b, bias, c, P(c));
            return;
        }

        LibraryBatchedGemm(a, b, c, transA, transB, alpha, beta, bias);
    }

    private void LibraryBatchedGemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias)
    {
        var (m, k) = transA ? (a.Shape[2], a.Shape[1]) : (a.Shape[1], a.Shape[2]);
        if (bias is not null && OnFloat32([c], [0], t => LibraryBatchedGemm(a, b, t[0]!, transA, transB, alpha, beta, bias)))
        {
            return;
        }

        var n = c.Shape[2];
        var types = (Blas(a), Blas(c));
        if (bias is not null && Gemm(transA, transB, m, n, k, alpha, P(a), a.Shape[2], (long)a.Shape[1] * a.Shape[2], P(b), b.Shape[2], (long)b.Shape[1] * b.Shape[2], beta, P(c), (long)m * n, a.Shape[0], types, LtEpilogue.Bias, P(bias), n))
        {
            return;
        }

        if (bias is not null)
        {
            Run("elementwise.cu", "bias_rows", c, Grid(c.NumElements), P(bias), beta, c.NumElements, n, (long)m * n, P(c));
            beta = 1f;
        }

        Gemm(transA, transB, m, n, k, alpha, P(a), a.Shape[2], (long)a.Shape[1] * a.Shape[2], P(b), b.Shape[2], (long)b.Shape[1] * b.Shape[2], beta, P(c), (long)m * n, a.Shape[0], types);
    }

    protected override void LinearGeluCore(Tensor x, Tensor weight, Tensor? bias, Tensor product, Tensor y)
    {
        if (SettledChoice(x.Shape[-2]) ?? FasterLinearGelu(x, weight, bias, product, y))
        {
            LinearOnTensorCores("linear_gelu_tc", x, weight, bias, product, P(product), P(y));
            return;
        }

        LibraryLinearGelu(x, weight, bias, product, y);
    }

    /// <summary>The library path: cuBLAS for the product (never the hand-written GEMM), then the bias+GELU kernel.</summary>
    private void LibraryLinearGelu(Tensor x, Tensor weight, Tensor? bias, Tensor product, Tensor y)
    {
        LibraryLinear(x, weight, null, product);
        BiasGeluCore(product, bias, y);
    }

    /// <summary>A linear layer's forward, y = x·wᵀ + bias, through cuBLAS: plain, or grouped for a [G, out, in] weight.</summary>
    private void LibraryLinear(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        if (weight.Rank == 3)
        {
            LibraryBatchedGemm(x, weight, y, transA: false, transB: true, 1f, 0f, bias);
        }
        else
        {
            LibraryGemm(x, weight, y, transA: false, transB: true, 1f, 0f, bias);
        }
    }

    protected override void LinearGeluBackwardCore(Tensor dy, Tensor weight, Tensor pre, Tensor? bias, float p, ulong seed, ulong offset, Tensor? offsetBase, Tensor dPre, GradOut dbias)
    {
        // The hand-written kernel reads one activation type: dy and pre of the same dtype.
        if (dy.DType == pre.DType && (SettledChoice(dy.Shape[-2]) ?? FasterMlpBackward(dy, weight, pre, bias, p, seed, offset, offsetBase, dPre, dbias)))
        {
            MlpBackwardOnTensorCores(dy, weight, pre, bias, p, seed, offset, offsetBase, dPre, dbias);
            return;
        }

        base.LinearGeluBackwardCore(dy, weight, pre, bias, p, seed, offset, offsetBase, dPre, dbias);
    }

    private void MlpBackwardOnTensorCores(Tensor dy, Tensor weight, Tensor pre, Tensor? bias, float p, ulong seed, ulong offset, Tensor? offsetBase, Tensor dPre, GradOut dbias)
    {
        var (groups, inFeatures, outFeatures) = weight.Rank == 3 ? (weight.Shape[0], weight.Shape[1], weight.Shape[2]) : (1, weight.Shape[0], weight.Shape[1]);
        var rows = dy.Shape[-2];
        var kernel = LinearKernel("linear_dgelu_tc", dy, dPre);
        var grid = new Dim3((uint)((outFeatures + 63) / 64), (uint)((rows + 63) / 64), (uint)groups);
        // The kernel writes the bias gradient's per-block column sums itself; sum_rows_finish adds them up.
        var blocks = (int)grid.Y;
        using var partial = dbias.Tensor is null ? null : Temp((long)groups * blocks * outFeatures);
        context.Launch(kernel, grid, new Dim3(128), 0, P(dy), P(weight), P(pre), P(bias), rows, inFeatures, outFeatures, p, seed, offset, P(offsetBase), P(dPre), P(partial));
        if (partial is not null)
        {
            FinishColumnSums(partial, groups, blocks, outFeatures, dbias);
        }
    }

    /// <summary>
    /// Whether a linear op over <paramref name="rows"/> rows (per group) runs its hand-written kernel (linear_tc.cu)
    /// when that needs no timing: never in fp32 or outside the kernels' grid, else as <see cref="CudaBackend.LinearKernels"/>
    /// says; null for <see cref="LinearKernels.Fastest"/>, whose choice the Faster* methods make (and allocate for).
    /// </summary>
    private bool? SettledChoice(int rows)
    {
        if (Backend.Precision == GemmPrecision.Fp32 || rows <= 0 || (rows + 63) / 64 > 65535)
        {
            return false;
        }

        return Backend.LinearKernels switch
        {
            LinearKernels.Library => false,
            LinearKernels.HandWritten => true,
            _ => null,
        };
    }

    private bool FasterLinear(Tensor a, Tensor b, Tensor? bias, Tensor c) =>
        Faster("linear_bias_tc", [a, b, bias], [c], o => LibraryLinear(a, b, bias, o[0]!), o => LinearOnTensorCores("linear_bias_tc", a, b, bias, o[0]!, P(o[0])));

    private bool FasterLinearGelu(Tensor x, Tensor weight, Tensor? bias, Tensor product, Tensor y) =>
        Faster("linear_gelu_tc", [x, weight, bias], [product, y], o => LibraryLinearGelu(x, weight, bias, o[0]!, o[1]!), o => LinearOnTensorCores("linear_gelu_tc", x, weight, bias, o[0]!, P(o[0]), P(o[1])));

    private bool FasterMlpBackward(Tensor dy, Tensor weight, Tensor pre, Tensor? bias, float p, ulong seed, ulong offset, Tensor? offsetBase, Tensor dPre, GradOut dbias) =>
        Faster(
            "linear_dgelu_tc",
            [dy, weight, pre, bias],
            [dPre, dbias.Tensor],
            o => base.LinearGeluBackwardCore(dy, weight, pre, bias, p, seed, offset, offsetBase, o[0]!, new GradOut(o[1], dbias.Accumulate)),
            o => MlpBackwardOnTensorCores(dy, weight, pre, bias, p, seed, offset, offsetBase, o[0]!, new GradOut(o[1], dbias.Accumulate)));

    /// <summary>
    /// <see cref="LinearKernels.Fastest"/>'s choice for an op: the first time it meets these shapes it times both paths
    /// (<paramref name="library"/> and <paramref name="handWritten"/>, each writing scratch copies of
    /// <paramref name="outputs"/>) and keeps whether the hand-written one won; inside a capture, where nothing can be
    /// timed, an op not decided yet takes the library path.
    /// </summary>
    private bool Faster(string kernel, Tensor?[] inputs, Tensor?[] outputs, Action<Tensor?[]> library, Action<Tensor?[]> handWritten)
    {
        var key = $"{kernel} {string.Join(" ", inputs.Concat(outputs).Select(t => t is null ? "-" : $"{t.Shape}{t.DType}"))}";
        if (Backend.LinearChoices.TryGetValue(key, out var chosen))
        {
            return chosen;
        }

        if (context.IsCapturing)
        {
            return false;
        }

        var scratch = new Tensor?[outputs.Length];
        using (TensorScope.Unscoped())
        {
            for (var i = 0; i < outputs.Length; i++)
            {
                scratch[i] = outputs[i] is { } o ? Tensor.Empty(o.Shape, o.DType, context) : null;
            }
        }

        try
        {
            // Once each to warm up (compiling, cuBLAS's heuristics), then the best of three each, taken in turn.
            library(scratch);
            handWritten(scratch);
            var (libraryMs, handWrittenMs) = (double.MaxValue, double.MaxValue);
            for (var repeat = 0; repeat < 3; repeat++)
            {
                libraryMs = Math.Min(libraryMs, context.Time(() => library(scratch)));
                handWrittenMs = Math.Min(handWrittenMs, context.Time(() => handWritten(scratch)));
            }

            return Backend.LinearChoices[key] = handWrittenMs < libraryMs;
        }
        finally
        {
            foreach (var t in scratch)
            {
                t?.Dispose();
            }
        }
    }

    /// <summary>
    /// One of linear_tc.cu's forward kernels on x [rows, in] (or [G, rows, in]) and weight [out, in] (or [G, out, in]),
    /// in the build <see cref="LinearKernel"/> picks for <paramref name="output"/>.
    /// </summary>
    private void LinearOnTensorCores(string kernel, Tensor x, Tensor weight, Tensor? bias, Tensor output, params ReadOnlySpan<KernelArgument> outputs)
    {
        var (groups, outFeatures, inFeatures) = weight.Rank == 3 ? (weight.Shape[0], weight.Shape[1], weight.Shape[2]) : (1, weight.Shape[0], weight.Shape[1]);
        var rows = x.Shape[-2];
        var grid = new Dim3((uint)((outFeatures + 63) / 64), (uint)((rows + 63) / 64), (uint)groups);
        context.Launch(LinearKernel(kernel, x, output), grid, new Dim3(128), 0, [P(x), P(weight), P(bias), rows, inFeatures, outFeatures, .. outputs]);
    }

    /// <summary>
    /// The build of a linear_tc.cu kernel for activations like <paramref name="x"/> and an output like
    /// <paramref name="output"/>: bf16 products under bf16 precision or for bf16 activations, else TF32; float32
    /// outputs from bf16 operands where the output is float32.
    /// </summary>
    private KernelFunction LinearKernel(string kernel, Tensor x, Tensor output)
    {
        var bf16 = Backend.Precision == GemmPrecision.Bf16 || x.DType == DType.BFloat16;
        string[] defines = [.. bf16 ? ["PC_BF16=1"] : Array.Empty<string>(), .. x.DType != output.DType ? ["PC_OUTPUT_F32=1"] : Array.Empty<string>()];
        return Kernel("linear_tc.cu", kernel, x, defines);
    }

    protected override void WeightGradCore(Tensor dy, Tensor x, GradOut dw, GradOut dbias)
    {
        // cuBLASLt writes the bias gradient (BGRADB: Σ over k of op(B), here the rows of dy); one that accumulates
        // takes the unfused path.
        if (dw.Tensor is { } w && dbias.Tensor is { } db && !dbias.Accumulate)
        {
            var (groups, rows) = dy.Rank == 3 ? (dy.Shape[0], dy.Shape[1]) : (1, dy.Shape[0]);
            var (outFeatures, inFeatures) = (dy.Shape[-1], x.Shape[-1]);
            if (Gemm(true, false, outFeatures, inFeatures, rows, 1f, P(dy), outFeatures, (long)rows * outFeatures, P(x), inFeatures, (long)rows * inFeatures, dw.Accumulate ? 1f : 0f, P(w), (long)outFeatures * inFeatures, groups, (Blas(dy), BlasType.Float32), LtEpilogue.BiasGradientB, P(db), outFeatures))
            {
                return;
            }
        }

        base.WeightGradCore(dy, x, dw, dbias);
    }

    protected override void SumRowsCore(Tensor x, GradOut output) =>
        ColumnSums(x, Groups(output.Tensor!), Rows(x) / Groups(output.Tensor!), x.Shape[-1], x.Shape[-1], output);

    protected override void LayerNormCore(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd) =>
        NormalizeRows(x, null, null, gamma, beta, eps, y, mean, rstd);

    protected override void AddLayerNormCore(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps, Tensor sum, Tensor y, Tensor mean, Tensor rstd) =>
        NormalizeRows(a, b, sum, gamma, beta, eps, y, mean, rstd);

    private void NormalizeRows(Tensor x, Tensor? residual, Tensor? sum, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        var rows = Rows(x);
        Run("layernorm_forward.cu", "layernorm_forward", Warps(rows), P(x), P(residual), P(gamma), P(beta), eps, rows, x.Shape[-1], rows / Groups(gamma), P(sum), P(y), P(mean), P(rstd));
    }

    protected override void LayerNormBackwardCore(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, GradOut dx, GradOut dgamma, GradOut dbeta)
    {
        var (rows, cols, groups) = (Rows(x), x.Shape[-1], Groups(gamma));
        var groupRows = rows / groups;
        if (dx.Tensor is not null)
        {
            Run("layernorm_backward.cu", "layernorm_backward_dx", Warps(rows), P(dy), P(x), P(gamma), P(mean), P(rstd), rows, cols, groupRows, dx.Accumulate, P(dx.Tensor));
        }

        if (dgamma.Tensor is null && dbeta.Tensor is null)
        {
            return;
        }

        // Row blocks within each group, as if the group ran alone: its dγ and dβ come out bit for bit the same.
        var blocks = PartialBlocks(groupRows, out var rowsPerBlock);
        using var partialGamma = Temp((long)Math.Max(blocks * groups, 1) * cols);
        using var partialBeta = Temp((long)Math.Max(blocks * groups, 1) * cols);
        if (blocks > 0 && cols > 0)
        {
            context.Launch(
                Backend.Kernel("layernorm_backward.cu", "layernorm_backward_params_partial"),
                new Dim3((uint)((cols + 31) / 32), (uint)blocks, (uint)groups),
                new Dim3(32),
                0,
                P(dy), P(x), P(mean), P(rstd), groupRows, cols, rowsPerBlock, dgamma.Tensor is null ? 0UL : P(partialGamma), dbeta.Tensor is null ? 0UL : P(partialBeta));
        }

        FinishColumnSums(partialGamma, groups, blocks, cols, dgamma);
        FinishColumnSums(partialBeta, groups, blocks, cols, dbeta);
    }

    protected override void AttentionCore(Tensor qkv, int heads, Tensor output, Tensor? lse)
    {
        var (b, t, headDim) = AttentionShape(qkv, heads);
        if (OnTensorCores(b, heads, headDim))
        {
            TensorCoreLaunch("attention_forward_tc.cu", "attention_forward_tc", qkv, t, heads, headDim, 2, (1, 1), 0, P(qkv), b, t, heads, P(output), P(lse));
            return;
        }

        Launch(Attention("attention_forward.cu", "attention_forward", qkv, headDim), Warps((long)b * heads * t), P(qkv), b, t, heads, P(output), P(lse));
    }

    /// <summary>
    /// Whether attention runs on the tensor cores: with TF32 or bf16 precision (its two products are GEMMs, which
    /// those put on the tensor cores), a head dim the tiled kernels take, and a grid in range.
    /// </summary>
    private bool OnTensorCores(int batch, int heads, int headDim) =>
        Backend.Precision != GemmPrecision.Fp32 && headDim % 8 == 0 && headDim <= 128 && (long)batch * heads <= 65535;

    protected override void AttentionBackwardCore(Tensor qkv, Tensor output, Tensor dOutput, Tensor? lse, int heads, Tensor dQkv)
    {
        var (b, t, headDim) = AttentionShape(qkv, heads);
        var rows = (long)b * heads * t;
        var grid = Warps(rows);
        using var delta = Temp(Math.Max(rows, 1));
        using var ownLse = lse is null ? Temp(Math.Max(rows, 1)) : null;
        var lsePointer = P(lse ?? ownLse);
        Launch(Attention("attention_backward.cu", "attention_backward_rows", qkv, headDim), grid, P(qkv), P(output), P(dOutput), b, t, heads, lse is null, lsePointer, P(delta));
        if (OnTensorCores(b, heads, headDim))
        {
            TensorCoreLaunch("attention_backward_tc.cu", "attention_backward_dq_tc", qkv, t, heads, headDim, 2, (2, 1), 0, P(qkv), P(dOutput), lsePointer, P(delta), b, t, heads, P(dQkv));
            TensorCoreLaunch("attention_backward_tc.cu", "attention_backward_dkdv_tc", qkv, t, heads, headDim, 2, (2, 2), 2 * TensorCoreTile, P(qkv), P(dOutput), lsePointer, P(delta), b, t, heads, P(dQkv));
            return;
        }

        Launch(Attention("attention_backward.cu", "attention_backward_dq", qkv, headDim), grid, P(qkv), P(dOutput), lsePointer, P(delta), b, t, heads, P(dQkv));
        Launch(Attention("attention_backward.cu", "attention_backward_dkdv", qkv, headDim), grid, P(qkv), P(dOutput), lsePointer, P(delta), b, t, heads, P(dQkv));
    }

    /// <summary>
    /// A tensor-core attention kernel (attention_tc.cuh), TF32 or bf16 as the precision says (bf16 too for bf16
    /// activations, whose values bf16 products take exactly): a block of 4 warps per
    /// 64 rows of each (batch, head). Shared memory holds the kernel's staged tiles, <paramref name="tf32Tiles"/>
    /// of them in TF32 (one layout serves both products) or <paramref name="bf16Tiles"/> by rows and by columns in
    /// bf16, then <paramref name="extraFloats"/>.
    /// </summary>
    private void TensorCoreLaunch(string file, string name, Tensor qkv, int tokens, int heads, int headDim, int tf32Tiles, (int Rows, int Columns) bf16Tiles, int extraFloats, params ReadOnlySpan<KernelArgument> arguments)
    {
        // bf16 products need head dims in steps of 16 (mma m16n8k16); others take the TF32 kernels.
        var batch = qkv.Shape[0];
        var bf16 = (Backend.Precision == GemmPrecision.Bf16 || qkv.DType == DType.BFloat16) && headDim % 16 == 0;
        var kernel = bf16 ? Kernel(file, name, qkv, $"PC_HEAD_DIM={headDim}", "PC_BF16=1") : Attention(file, name, qkv, headDim);
        // Sizes in 4-byte words, as attention_tc.cuh lays the tiles out.
        var words = bf16
            ? (bf16Tiles.Rows * TensorCoreTile * ((headDim / 2) + 4)) + (bf16Tiles.Columns * headDim * ((TensorCoreTile / 2) + 4))
            : tf32Tiles * TensorCoreTile * (headDim + 4);
        var shared = (words + extraFloats) * sizeof(float);
        Backend.AllowSharedMemory(kernel, shared);
        context.Launch(kernel, new Dim3((uint)((tokens + TensorCoreTile - 1) / TensorCoreTile), (uint)(batch * heads)), new Dim3(128), shared, arguments);
    }

    protected override void CrossEntropyCore(Tensor logits, Tensor labels, Tensor losses) =>
        Run("cross_entropy.cu", "cross_entropy_forward", Warps(logits.Shape[0]), P(logits), P(labels), logits.Shape[0], logits.Shape[1], P(losses));

    protected override void CrossEntropyBackwardCore(Tensor logits, Tensor labels, Tensor dLoss, float scale, Tensor dLogits) =>
        Run("cross_entropy.cu", "cross_entropy_backward", Warps(logits.Shape[0]), P(logits), P(labels), P(dLoss), scale, logits.Shape[0], logits.Shape[1], P(dLogits));

    protected override void SumAllCore(Tensor x, Tensor output, float scale, bool squareRoot)
    {
        using var table = Slices([x]);
        using var partial = Partials(table, squares: false);
        Run("reductions.cu", "sum_finish", new Dim3(1), P(partial), table.Blocks, scale, squareRoot, P(output));
    }

    protected override void ArgmaxRowsCore(Tensor x, Tensor indices) =>
        Run("classify.cu", "argmax_rows", Grid(x.Shape[0]), P(x), x.Shape[0], x.Shape[1], P(indices));

    protected override void CountCorrectCore(Tensor logits, Tensor labels, Tensor count)
    {
        context.Gpu.Fill32(P(count), 0, 1, context.Stream);
        Run("classify.cu", "count_correct", Grid(logits.Shape[0]), P(logits), P(labels), logits.Shape[0], logits.Shape[1], P(count));
    }

    protected override void TransformImagesCore(Tensor pixels, Tensor draws, IReadOnlyList<float> scale, IReadOnlyList<float> black, Tensor images)
    {
        var channels = pixels.Shape[1];
        if (channels > 4)
        {
            throw new TensorOpException(nameof(TransformImages), $"{channels}-channel images: the CUDA kernel takes at most 4 channels");
        }

        float At(IReadOnlyList<float> values, int c) => c < channels ? values[c] : 0f;
        Run("transform_images.cu", "transform_images", Grid(images.NumElements), P(pixels), P(draws), pixels.Shape[0], channels, pixels.Shape[2], pixels.Shape[3], images.Shape[2], At(scale, 0), At(scale, 1), At(scale, 2), At(scale, 3), At(black, 0), At(black, 1), At(black, 2), At(black, 3), P(images));
    }

    protected override void PatchifyCore(Tensor images, int patch, Tensor patches) =>
        Run("patchify.cu", "patchify", Grid(patches.NumElements), P(images), images.Shape[0], images.Shape[1], images.Shape[2], images.Shape[3], patch, P(patches));

    protected override void AssembleTokensCore(Tensor patchEmbeddings, Tensor cls, Tensor positions, Tensor tokens)
    {
        var (b, n, d) = (patchEmbeddings.Shape[0], patchEmbeddings.Shape[1], patchEmbeddings.Shape[2]);
        Run("tokens.cu", "assemble_tokens", Grid(tokens.NumElements), P(patchEmbeddings), P(cls), P(positions), b, n, d, P(tokens));
    }

    protected override void AssembleTokensBackwardCore(Tensor dTokens, GradOut dPatchEmbeddings, GradOut dCls, GradOut dPositions)
    {
        var (b, t, d) = (dTokens.Shape[0], dTokens.Shape[1], dTokens.Shape[2]);
        if (dPatchEmbeddings.Tensor is { } dEmb)
        {
            Run("tokens.cu", "assemble_tokens_backward_patches", Grid(dEmb.NumElements), P(dTokens), b, t - 1, d, dPatchEmbeddings.Accumulate, P(dEmb));
        }

        if (dCls.Tensor is not null)
        {
            ColumnSums(dTokens, 1, b, d, (long)t * d, dCls);
        }

        if (dPositions.Tensor is not null)
        {
            ColumnSums(dTokens, 1, b, t * d, (long)t * d, dPositions);
        }
    }

    protected override void PoolTokensCore(Tensor x, Pooling mode, Tensor output) =>
        Run("pool_tokens.cu", "pool_tokens_forward", Grid(output.NumElements), P(x), x.Shape[0], x.Shape[1], x.Shape[2], mode == Pooling.Mean, P(output));

    protected override void PoolTokensBackwardCore(Tensor dOutput, Pooling mode, GradOut dx)
    {
        var t = dx.Tensor!;
        Run("pool_tokens.cu", "pool_tokens_backward", Grid(t.NumElements), P(dOutput), t.Shape[0], t.Shape[1], t.Shape[2], mode == Pooling.Mean, dx.Accumulate, P(t));
    }

    protected override void SumOfSquaresCore(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor> outputs)
    {
        using var table = Slices(tensors, outputs);
        using var partial = Partials(table, squares: true);
        if (tensors.Count > 0)
        {
            context.Launch(Backend.Kernel("reductions.cu", "sum_slices_finish"), Grid(tensors.Count), new Dim3(Threads), 0, table.Outputs, P(partial), P(table.Table), tensors.Count, table.Blocks);
        }
    }

    protected override void ClipByNormCore(IReadOnlyList<Tensor> tensors, Tensor norm, float maxNorm)
    {
        using var table = Slices(tensors, written: true);
        if (table.Blocks > 0)
        {
            context.Launch(Backend.Kernel("reductions.cu", "scale_by_norm"), new Dim3((uint)table.Blocks), new Dim3(Threads), 0, table.Inputs, P(table.Table), tensors.Count, KernelTables.ElementsPerBlock, P(norm), maxNorm);
        }
    }

    protected override void AdamUpdateCore(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v, AdamParameters hp, IReadOnlyList<Tensor> steps, Tensor? learningRate)
    {
        var slices = new AdamSlice[parameters.Count];
        var accesses = new List<BufferAccess>();
        var blocks = 0;
        for (var t = 0; t < parameters.Count; t++)
        {
            slices[t] = new AdamSlice
            {
                Param = P(parameters[t]),
                Grad = P(grads[t]),
                M = P(m[t]),
                V = P(v[t]),
                Step = P(steps[t]),
                Count = parameters[t].NumElements,
                FirstBlock = blocks,
            };
            accesses.AddRange([new(slices[t].Param, true), new(slices[t].Grad, false), new(slices[t].M, true), new(slices[t].V, true), new(slices[t].Step, true)]);
            blocks += KernelTables.Blocks(parameters[t].NumElements);
        }

        if (parameters.Count == 0)
        {
            return;
        }

        using var table = context.Table<AdamSlice>(slices);
        context.Launch(Backend.Kernel("adam.cu", "adam_update"), new Dim3((uint)blocks), new Dim3(Threads), 0, [.. accesses], P(table), parameters.Count, KernelTables.ElementsPerBlock, P(learningRate), hp.LearningRate, hp.Beta1, hp.Beta2, hp.Epsilon, hp.WeightDecay, hp.DecoupledWeightDecay);
        context.Launch(Backend.Kernel("adam.cu", "adam_count"), Grid(parameters.Count), new Dim3(Threads), 0, [.. accesses], P(table), parameters.Count);
    }

    private static TensorOpException Unsupported(string op, Tensor t) => new(op, $"{t.DType} is not supported on the CUDA backend yet");

    private static int Rows(Tensor t) => t.Shape[-1] == 0 ? 0 : checked((int)(t.NumElements / t.Shape[-1]));

    /// <summary>One warp per row, eight rows a block.</summary>
    private static Dim3 Warps(long rows) => new((uint)Math.Max(1, (rows + WarpsPerBlock - 1) / WarpsPerBlock));

    /// <summary>Blocks of rows for the two-step column sums: 64 rows each, more when the grid's y limit requires.</summary>
    private static int PartialBlocks(int rows, out int rowsPerBlock)
    {
        rowsPerBlock = Math.Max(RowsPerPartial, (rows + 65534) / 65535);
        return (rows + rowsPerBlock - 1) / rowsPerBlock;
    }

    private static (int B, int T, int HeadDim) AttentionShape(Tensor qkv, int heads)
    {
        var headDim = qkv.Shape[2] / 3 / heads;
        if (headDim > MaxHeadDim)
        {
            throw new TensorOpException(nameof(Attention), $"head dim {headDim} is above the CUDA attention kernels' limit of {MaxHeadDim}; use more heads or the CPU");
        }

        return (qkv.Shape[0], qkv.Shape[1], headDim);
    }

    /// <summary>The address of a tensor's first element; notes the use by this stream. Null stays 0.</summary>
    private ulong P(Tensor? t)
    {
        if (t is null)
        {
            return 0;
        }

        var storage = (CudaStorage)t.Storage;
        storage.UseOn(context);
        return storage.Pointer + (ulong)(t.Offset * t.DType.SizeInBytes());
    }

    /// <summary>Grid-stride launches: enough blocks to cover n, at most 32 per multiprocessor.</summary>
    private Dim3 Grid(long n) => new((uint)Math.Clamp((n + Threads - 1) / Threads, 1, 32L * context.Gpu.Properties.Multiprocessors));

    private Tensor Temp(long elements)
    {
        using var unscoped = TensorScope.Unscoped();
        return Tensor.Empty(new Shape(checked((int)elements)), DType.Float32, context);
    }

    private KernelFunction Attention(string file, string kernel, Tensor qkv, int headDim) =>
        Kernel(file, kernel, qkv, $"PC_HEAD_DIM={headDim}");

    private void Run(string file, string kernel, Dim3 grid, params ReadOnlySpan<KernelArgument> arguments) =>
        context.Launch(Backend.Kernel(file, kernel), grid, new Dim3(Threads), 0, arguments);

    /// <summary>A launch of a kernel whose activations (`act`) have <paramref name="activation"/>'s dtype.</summary>
    private void Run(string file, string kernel, Tensor activation, Dim3 grid, params ReadOnlySpan<KernelArgument> arguments) =>
        context.Launch(Kernel(file, kernel, activation), grid, new Dim3(Threads), 0, arguments);

    /// <summary>The build of a kernel file whose activations (`act`) have <paramref name="activation"/>'s dtype: bf16 or float32.</summary>
    private KernelFunction Kernel(string file, string kernel, Tensor activation, params string[] defines) =>
        Backend.Kernel(file, kernel, activation.DType == DType.BFloat16 ? [.. defines, "PC_STORE_BF16=1"] : defines);

    /// <summary>A GEMM matrix's type in cuBLAS's terms.</summary>
    private static BlasType Blas(Tensor t) => t.DType == DType.BFloat16 ? BlasType.BFloat16 : BlasType.Float32;

    private void Launch(KernelFunction kernel, Dim3 grid, params ReadOnlySpan<KernelArgument> arguments) =>
        context.Launch(kernel, grid, new Dim3(Threads), 0, arguments);

    /// <summary>
    /// Row-major C = op(A)·op(B) through column-major cuBLAS: row-major X is column-major Xᵀ, so the call
    /// computes Cᵀ = op(B)ᵀ·op(A)ᵀ, swapping the operands and their leading dimensions.
    /// </summary>
    /// <remarks>
    /// With an <paramref name="epilogue"/>, through cuBLASLt; false when it has no algorithm for the call (nothing
    /// issued). In cuBLAS's terms the bias vector runs along the rows of the swapped product, i.e. over our n.
    /// </remarks>
    private bool Gemm(bool transA, bool transB, int m, int n, int k, float alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float beta, ulong c, long strideC, int batch, (BlasType Operands, BlasType Output) types, LtEpilogue? epilogue = null, ulong vector = 0, long vectorStride = 0)
    {
        var call = new GemmCall(
            TransA: transB,
            TransB: transA,
            M: n,
            N: m,
            K: k,
            Alpha: alpha,
            A: b,
            Lda: Math.Max(ldb, 1),
            StrideA: strideB,
            B: a,
            Ldb: Math.Max(lda, 1),
            StrideB: strideA,
            Beta: beta,
            C: c,
            Ldc: Math.Max(n, 1),
            StrideC: strideC,
            Batch: batch,
            // bf16 operands go to the tensor cores as they are, with float32 accumulation (CUBLAS_COMPUTE_32F).
            Compute: types.Operands == BlasType.BFloat16 ? BlasCompute.Fp32 : Backend.Precision switch
            {
                GemmPrecision.Tf32 => BlasCompute.Tf32,
                GemmPrecision.Bf16 => BlasCompute.Bf16,
                _ => BlasCompute.Fp32,
            },
            Operands: types.Operands,
            Output: types.Output);
        if (epilogue is { } e)
        {
            return context.Gpu.GemmEpilogue(context.Blas, call, e, vector, vectorStride);
        }

        context.Gpu.Gemm(context.Blas, call);
        return true;
    }

    /// <summary>out (+)= the column sums of the [rows, cols] matrix at <paramref name="x"/> whose rows are <paramref name="stride"/> floats apart.</summary>
    /// <summary>output[g, c] (+)= Σ over group g's <paramref name="groupRows"/> rows of x[r·stride + c] (one group: plain column sums).</summary>
    private void ColumnSums(Tensor x, int groups, int groupRows, int cols, long stride, GradOut output)
    {
        if (cols == 0)
        {
            return;
        }

        var blocks = PartialBlocks(groupRows, out var rowsPerBlock);
        using var partial = Temp((long)Math.Max(blocks * groups, 1) * cols);
        if (blocks > 0)
        {
            context.Launch(Kernel("reductions.cu", "sum_rows_partial", x), new Dim3((uint)((cols + 31) / 32), (uint)blocks, (uint)groups), new Dim3(32), 0, P(x), groupRows, cols, stride, rowsPerBlock, P(partial));
        }

        FinishColumnSums(partial, groups, blocks, cols, output);
    }

    private void FinishColumnSums(Tensor partial, int groups, int blocks, int cols, GradOut output)
    {
        if (output.Tensor is { } target && cols > 0)
        {
            var n = (long)groups * cols;
            Run("reductions.cu", "sum_rows_finish", new Dim3((uint)((n + Threads - 1) / Threads)), P(partial), blocks, cols, groups, output.Accumulate, P(target));
        }
    }

    /// <summary>Elements of x per group of a per-group parameter (all of them for a plain one, or none).</summary>
    private static long GroupElements(Tensor x, Tensor? parameter) => x.NumElements / (parameter is null ? 1 : Groups(parameter));

    /// <summary>
    /// A device table describing <paramref name="tensors"/> for the multi-tensor kernels (with each tensor's
    /// output, when given), the blocks a launch over them needs, and the buffers it points at.
    /// </summary>
    private SliceTable Slices(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor>? outputs = null, bool written = false)
    {
        var slices = new TensorSlice[tensors.Count];
        var blocks = 0;
        for (var i = 0; i < tensors.Count; i++)
        {
            slices[i] = new TensorSlice { Data = P(tensors[i]), Count = tensors[i].NumElements, FirstBlock = blocks, Out = P(outputs?[i]) };
            blocks += KernelTables.Blocks(tensors[i].NumElements);
        }

        return new SliceTable(
            context.Table<TensorSlice>(slices),
            tensors.Count,
            blocks,
            [.. slices.Select(s => new BufferAccess(s.Data, written))],
            [.. slices.Where(s => s.Out != 0).Select(s => new BufferAccess(s.Out, true))]);
    }

    /// <summary>The per-block sums (of squares) of the tensors a table describes, in block order.</summary>
    private Tensor Partials(SliceTable table, bool squares)
    {
        var partial = Temp(Math.Max(table.Blocks, 1));
        if (table.Blocks > 0)
        {
            context.Launch(Backend.Kernel("reductions.cu", "sum_partial"), new Dim3((uint)table.Blocks), new Dim3(Threads), 0, table.Inputs, P(table.Table), table.Tensors, KernelTables.ElementsPerBlock, squares, P(partial));
        }

        return partial;
    }

    /// <summary>A multi-tensor table on the device, and what its pointers reach: the tensors, and their outputs.</summary>
    private sealed record SliceTable(Tensor Table, int Tensors, int Blocks, BufferAccess[] Inputs, BufferAccess[] Outputs) : IDisposable
    {
        public void Dispose() => Table.Dispose();
    }
}
