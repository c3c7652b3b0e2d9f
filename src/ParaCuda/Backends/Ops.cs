using ParaCuda.Tensors;

namespace ParaCuda.Backends;

/// <summary>How a sequence of token features becomes one feature vector per sample.</summary>
public enum Pooling
{
    /// <summary>Take token 0 (the CLS token).</summary>
    Cls,

    /// <summary>Average over all tokens.</summary>
    Mean,
}

/// <summary>
/// Where a backward op writes one gradient: into <see cref="Tensor"/>, adding to its contents when
/// <see cref="Accumulate"/> is set (a tensor used twice collects both gradients without extra passes),
/// or nowhere when Tensor is null.
/// </summary>
public readonly record struct GradOut(Tensor? Tensor, bool Accumulate = false)
{
    public static GradOut None => default;

    public static implicit operator GradOut(Tensor? tensor) => new(tensor);
}

/// <summary>Adam / AdamW hyper-parameters for one update.</summary>
public readonly record struct AdamParameters(
    float LearningRate,
    float Beta1 = 0.9f,
    float Beta2 = 0.999f,
    float Epsilon = 1e-8f,
    float WeightDecay = 0f,
    bool DecoupledWeightDecay = false);

/// <summary>
/// The engine's op set, defined once: every backend implements the protected <c>*Core</c> methods and
/// inherits the argument checks of the public ones. Ops are coarse on purpose: each maps to one GPU
/// kernel or one cuBLAS call. They write into caller-provided outputs (allocation stays with the
/// caller, so a device can use a caching allocator); outputs may alias inputs only where stated.
/// Backward ops write parameter-like gradients through <see cref="GradOut"/>, which can accumulate.
/// All tensors must be contiguous; float tensors are <see cref="DType.Float32"/>, except the activations of the ops
/// that say so, which may be <see cref="DType.BFloat16"/> (mixed precision: stored in bf16, computed in float32).
/// </summary>
public abstract class Ops
{
    protected Ops(Device device)
    {
        Device = device;
    }

    public Device Device { get; }

    // ---------------------------------------------------------------- memory

    /// <summary>dst[i] = value.</summary>
    public void Fill(Tensor dst, float value)
    {
        ArgumentNullException.ThrowIfNull(dst);
        var c = Check(nameof(Fill));
        c.Tensor("dst", dst, dst.DType);
        FillCore(dst, value);
    }

    /// <summary>dst = src element by element; src may be a strided view, dst is contiguous.</summary>
    public void Copy(Tensor src, Tensor dst)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(dst);
        var c = Check(nameof(Copy));
        c.Tensor("dst", dst, src.DType);
        c.That(!src.IsDisposed && src.Device == Device, $"src {src.Shape} must be a live tensor on {Device}");
        c.SameShape("src", src, "dst", dst);
        CopyCore(src, dst);
    }

    /// <summary>
    /// dst = src where src lives on another device (the host, or another GPU); src may be a strided view. The
    /// copy is ordered after the work that produced src, and later work on dst's context after the copy.
    /// </summary>
    public void CopyAcross(Tensor src, Tensor dst)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(dst);
        var c = Check(nameof(CopyAcross));
        c.Tensor("dst", dst, src.DType);
        c.That(!src.IsDisposed, $"src {src.Shape} was disposed");
        c.SameShape("src", src, "dst", dst);
        CopyAcrossCore(src, dst);
    }

    /// <summary>Writes host bytes into dst (asynchronous on devices that can; the source is consumed before return).</summary>
    public void CopyFromHost(ReadOnlySpan<byte> src, Tensor dst)
    {
        ArgumentNullException.ThrowIfNull(dst);
        var c = Check(nameof(CopyFromHost));
        c.Tensor("dst", dst, dst.DType);
        c.That(src.Length == dst.ByteLength, $"dst {dst.Shape} {dst.DType} holds {dst.ByteLength} bytes, the host buffer {src.Length}");
        CopyFromHostCore(src, dst);
    }

    /// <summary>Reads src into host bytes, waiting for the work that produces it.</summary>
    public void CopyToHost(Tensor src, Span<byte> dst)
    {
        ArgumentNullException.ThrowIfNull(src);
        var c = Check(nameof(CopyToHost));
        c.Tensor("src", src, src.DType);
        c.That(dst.Length == src.ByteLength, $"src {src.Shape} {src.DType} holds {src.ByteLength} bytes, the host buffer {dst.Length}");
        CopyToHostCore(src, dst);
    }

    /// <summary>dst = src in dst's dtype: float32 ↔ bf16 (to nearest even, NaN stays NaN; widening is exact), or a copy when they match.</summary>
    public void Cast(Tensor src, Tensor dst)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(dst);
        var c = Check(nameof(Cast));
        c.Activation("src", src);
        c.Activation("dst", dst);
        c.SameShape("src", src, "dst", dst);
        if (src.DType == dst.DType)
        {
            CopyCore(src, dst);
            return;
        }

        CastCore(src, dst);
    }

    // ---------------------------------------------------------------- elementwise

    /// <summary>out = a + b (same shapes; out may alias a or b); all float32, or all bf16.</summary>
    public void Add(Tensor a, Tensor b, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(Add));
        c.Activation("a", a);
        c.Activation("b", b, a, "a");
        c.Activation("out", output, a, "a");
        c.SameShape("a", a, "b", b);
        c.SameShape("a", a, "out", output);
        AddCore(a, b, output);
    }

    /// <summary>out = alpha * x (out may alias x); both float32, or both bf16.</summary>
    public void Scale(Tensor x, float alpha, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(Scale));
        c.Activation("x", x);
        c.Activation("out", output, x, "x");
        c.SameShape("x", x, "out", output);
        ScaleCore(x, alpha, output);
    }

    /// <summary>out = Σ xs[i] (the branch sum; out must not alias any input).</summary>
    public void SumMany(IReadOnlyList<Tensor> xs, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(xs);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(SumMany));
        c.That(xs.Count > 0, "needs at least one input");
        c.Tensor("out", output);
        for (var i = 0; i < xs.Count; i++)
        {
            c.Tensor($"xs[{i}]", xs[i]);
            c.SameShape($"xs[{i}]", xs[i], "out", output);
        }

        SumManyCore(xs, output);
    }

    /// <summary>y = gelu(x + bias) with the exact erf GELU; bias [N] broadcasts over the rows of x [*, N] (or [G, N] over x [G, …, N], group by group). x and y float32, or both bf16; bias float32.</summary>
    public void BiasGelu(Tensor x, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var c = Check(nameof(BiasGelu));
        c.Activation("x", x);
        c.Activation("y", y, x, "x");
        c.SameShape("x", x, "y", y);
        CheckBias(c, x, bias);
        BiasGeluCore(x, bias, y);
    }

    /// <summary>dx = dy * gelu'(x + bias); dbias (+)= Σ_rows dx (as stored). x is the input before the bias. x, dy and dx float32, or all bf16; bias and dbias float32.</summary>
    public void BiasGeluBackward(Tensor x, Tensor? bias, Tensor dy, Tensor dx, GradOut dbias)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(dx);
        var c = Check(nameof(BiasGeluBackward));
        c.Activation("x", x);
        c.Activation("dy", dy, x, "x");
        c.Activation("dx", dx, x, "x");
        c.SameShape("x", x, "dy", dy);
        c.SameShape("x", x, "dx", dx);
        CheckBias(c, x, bias);
        c.That(dbias.Tensor is null || bias is not null, "dbias given without bias");
        if (dbias.Tensor is { } db)
        {
            c.Tensor("dbias", db);
            c.SameShape("dbias", db, "bias", bias!);
        }

        BiasGeluBackwardCore(x, bias, dy, dx, dbias);
    }

    /// <summary>
    /// y = x * keep / (1 - p) where keep = (uniform(seed, offset, i) ≥ p) from the counter-based Philox RNG,
    /// so the same (seed, offset) gives the same mask on every backend. Backward is the same op on dy. With
    /// <paramref name="offsetBase"/> (Int32 [2], a 64-bit number as low and high words) the offset is
    /// offsetBase + <paramref name="offset"/>, read where the op runs: a captured step replayed with a new base
    /// draws new masks. x and y float32, or both bf16.
    /// </summary>
    public void Dropout(Tensor x, Tensor y, float p, ulong seed, ulong offset, Tensor? offsetBase = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var c = Check(nameof(Dropout));
        c.Activation("x", x);
        c.Activation("y", y, x, "x");
        c.SameShape("x", x, "y", y);
        c.That(p >= 0f && p < 1f, $"p must be in [0, 1), got {p}");
        if (offsetBase is not null)
        {
            c.Tensor("offsetBase", offsetBase, DType.Int32);
            c.That(offsetBase.NumElements == 2 && offsetBase.IsContiguous, $"offsetBase must be a contiguous [2] (low and high words), got {offsetBase.Shape}");
        }

        DropoutCore(x, y, p, seed, offset, offsetBase);
    }

    // ---------------------------------------------------------------- matrix products

    /// <summary>
    /// C = alpha · op(A) · op(B) + beta · C + bias, with op(X) = Xᵀ when its flag is set. A is [m, k] ([k, m]
    /// transposed), B is [k, n] ([n, k] transposed), C is [m, n], bias [n] broadcasts over rows.
    /// beta = 0 ignores C's previous contents (even NaN). A and B float32, or both bf16 (float32 accumulation); C
    /// float32, or bf16 from bf16 operands; bias float32.
    /// </summary>
    public void Gemm(Tensor a, Tensor b, Tensor cOut, bool transA = false, bool transB = false, float alpha = 1f, float beta = 0f, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(cOut);
        var c = Check(nameof(Gemm));
        CheckProductTypes(c, a, b, cOut);
        c.Rank("A", a, 2);
        c.Rank("B", b, 2);
        c.Rank("C", cOut, 2);
        var (m, k) = transA ? (a.Shape[1], a.Shape[0]) : (a.Shape[0], a.Shape[1]);
        var (kb, n) = transB ? (b.Shape[1], b.Shape[0]) : (b.Shape[0], b.Shape[1]);
        c.That(k == kb, $"A {a.Shape}{(transA ? "ᵀ" : "")} · B {b.Shape}{(transB ? "ᵀ" : "")}: inner dimensions {k} and {kb} differ");
        c.Shape("C", cOut, new Shape(m, n), $"A {a.Shape}{(transA ? "ᵀ" : "")} · B {b.Shape}{(transB ? "ᵀ" : "")}");
        if (bias is not null)
        {
            c.Tensor("bias", bias);
            c.Shape("bias", bias, new Shape(n), $"C {cOut.Shape}");
        }

        GemmCore(a, b, cOut, transA, transB, alpha, beta, bias);
    }

    /// <summary>C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i] (+ bias[i], broadcast over C[i]'s rows) for every i of the leading batch axis; dtypes as <see cref="Gemm"/>.</summary>
    public void BatchedGemm(Tensor a, Tensor b, Tensor cOut, bool transA = false, bool transB = false, float alpha = 1f, float beta = 0f, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(cOut);
        var c = Check(nameof(BatchedGemm));
        CheckProductTypes(c, a, b, cOut);
        c.Rank("A", a, 3);
        c.Rank("B", b, 3);
        c.Rank("C", cOut, 3);
        c.That(a.Shape[0] == b.Shape[0] && a.Shape[0] == cOut.Shape[0], $"batch sizes of A {a.Shape}, B {b.Shape} and C {cOut.Shape} differ");
        var (m, k) = transA ? (a.Shape[2], a.Shape[1]) : (a.Shape[1], a.Shape[2]);
        var (kb, n) = transB ? (b.Shape[2], b.Shape[1]) : (b.Shape[1], b.Shape[2]);
        c.That(k == kb, $"A {a.Shape}{(transA ? "ᵀ" : "")} · B {b.Shape}{(transB ? "ᵀ" : "")}: inner dimensions {k} and {kb} differ");
        c.Shape("C", cOut, new Shape(a.Shape[0], m, n), $"A {a.Shape}{(transA ? "ᵀ" : "")} · B {b.Shape}{(transB ? "ᵀ" : "")}");
        if (bias is not null)
        {
            c.Tensor("bias", bias);
            c.Shape("bias", bias, new Shape(a.Shape[0], n), $"C {cOut.Shape}");
        }

        BatchedGemmCore(a, b, cOut, transA, transB, alpha, beta, bias);
    }

    /// <summary>
    /// A linear layer followed by bias and GELU, as the MLP's first layer runs them: product = x·wᵀ and
    /// y = gelu(product + bias), x [rows, in], w [out, in], bias [out] or null, product and y [rows, out]; with
    /// x [G, rows, in], w [G, out, in], bias [G, out] and outputs [G, rows, out] each group on its own (branches
    /// batched). The same as <see cref="Gemm"/> then <see cref="BiasGelu"/>, which is how it runs unless a backend
    /// has a fused kernel for it (the CUDA backend's hand-written tensor-core kernel, when chosen). Dtypes as
    /// <see cref="Gemm"/> (x and w its operands, product and y its output).
    /// </summary>
    public void LinearGelu(Tensor x, Tensor weight, Tensor? bias, Tensor product, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(product);
        ArgumentNullException.ThrowIfNull(y);
        var c = Check(nameof(LinearGelu));
        CheckProductTypes(c, x, weight, product, "x", "weight", "product");
        c.Activation("y", y, product, "product");
        var grouped = weight.Rank == 3;
        c.That(weight.Rank is 2 or 3 && x.Rank == weight.Rank && x.Shape[-1] == weight.Shape[-1] && (!grouped || x.Shape[0] == weight.Shape[0]),
            $"x {x.Shape} does not fit weight {weight.Shape} (expected [rows, in] with [out, in], or [G, rows, in] with [G, out, in])");
        var dims = x.Shape.AsSpan().ToArray();
        dims[^1] = weight.Shape[-2];
        c.Shape("product", product, new Shape(dims), $"x {x.Shape} · weight {weight.Shape}ᵀ");
        c.SameShape("y", y, "product", product);
        if (bias is not null)
        {
            c.Tensor("bias", bias);
            c.Shape("bias", bias, grouped ? new Shape(weight.Shape[0], weight.Shape[1]) : new Shape(weight.Shape[0]), $"weight {weight.Shape}");
        }

        LinearGeluCore(x, weight, bias, product, y);
    }

    /// <summary>
    /// The MLP's backward from its second layer's output gradient to its first layer's product: for
    /// y = dropout(gelu(pre + bias))·wᵀ, with dropout as <see cref="Dropout"/> draws it (p, seed, offset, offsetBase;
    /// none for p = 0), dpre = (dy·w) ∘ keep/(1 − p) ∘ gelu'(pre + bias) and dbias (+)= Σ over the rows of dpre.
    /// dy [rows, in] and w [in, out] (the second layer's weight as stored) share a dtype, as pre and dpre [rows, out]
    /// do; bias [out] or null. With dy [G, rows, in], w [G, in, out], bias [G, out], pre and dpre [G, rows, out], each
    /// group on its own, the dropout's element index running on across groups. The same as <see cref="Gemm"/> (in
    /// float32), <see cref="Dropout"/> and <see cref="BiasGeluBackward"/>, which is how it runs unless a backend fuses
    /// them (the CUDA backend's hand-written kernel, when chosen).
    /// </summary>
    public void LinearGeluBackward(Tensor dy, Tensor weight, Tensor pre, Tensor? bias, float p, ulong seed, ulong offset, Tensor? offsetBase, Tensor dPre, GradOut dbias)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(pre);
        ArgumentNullException.ThrowIfNull(dPre);
        var c = Check(nameof(LinearGeluBackward));
        c.Activation("dy", dy);
        c.Activation("weight", weight, dy, "dy");
        c.Activation("pre", pre);
        c.Activation("dpre", dPre, pre, "pre");
        var grouped = weight.Rank == 3;
        c.That(weight.Rank is 2 or 3 && dy.Rank == weight.Rank && dy.Shape[-1] == weight.Shape[-2] && (!grouped || dy.Shape[0] == weight.Shape[0]),
            $"dy {dy.Shape} does not fit weight {weight.Shape} (expected [rows, in] with [in, out], or [G, rows, in] with [G, in, out])");
        var dims = dy.Shape.AsSpan().ToArray();
        dims[^1] = weight.Shape[-1];
        c.Shape("pre", pre, new Shape(dims), $"dy {dy.Shape} · weight {weight.Shape}");
        c.SameShape("dpre", dPre, "pre", pre);
        CheckBias(c, pre, bias);
        c.That(p >= 0f && p < 1f, $"p must be in [0, 1), got {p}");
        if (offsetBase is not null)
        {
            c.Tensor("offsetBase", offsetBase, DType.Int32);
            c.That(offsetBase.NumElements == 2, $"offsetBase must be [2] (low and high words), got {offsetBase.Shape}");
        }

        c.That(dbias.Tensor is null || bias is not null, "dbias given without bias");
        if (dbias.Tensor is { } db)
        {
            c.Tensor("dbias", db);
            c.SameShape("dbias", db, "bias", bias!);
        }

        LinearGeluBackwardCore(dy, weight, pre, bias, p, seed, offset, offsetBase, dPre, dbias);
    }

    /// <summary>
    /// A linear layer's parameter gradients from its output gradient dy [rows, out] and input x [rows, in]:
    /// dw [out, in] (+)= dyᵀ·x and dbias [out] (+)= Σ over the rows of dy. With dy [G, rows, out] and x [G, rows, in]
    /// (branches batched), dw is [G, out, in] and dbias [G, out], each group on its own. Either output may be
    /// <see cref="GradOut.None"/>. One pass where the backend can (the CUDA backend's cuBLASLt bias-gradient epilogue).
    /// dy and x float32, or both bf16; dw and dbias float32.
    /// </summary>
    public void WeightGrad(Tensor dy, Tensor x, GradOut dw, GradOut dbias)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(x);
        var c = Check(nameof(WeightGrad));
        c.Activation("dy", dy);
        c.Activation("x", x, dy, "dy");
        c.That(dy.Rank is 2 or 3 && x.Rank == dy.Rank && dy.Shape[0] == x.Shape[0] && (dy.Rank == 2 || dy.Shape[1] == x.Shape[1]),
            $"dy {dy.Shape} and x {x.Shape} must be [rows, out] and [rows, in] (or [G, rows, …] both)");
        var grouped = dy.Rank == 3;
        var (outFeatures, inFeatures) = (dy.Shape[-1], x.Shape[-1]);
        if (dw.Tensor is { } w)
        {
            c.Tensor("dw", w);
            c.Shape("dw", w, grouped ? new Shape(dy.Shape[0], outFeatures, inFeatures) : new Shape(outFeatures, inFeatures), $"dy {dy.Shape}, x {x.Shape}");
        }

        if (dbias.Tensor is { } b)
        {
            c.Tensor("dbias", b);
            c.Shape("dbias", b, grouped ? new Shape(dy.Shape[0], outFeatures) : new Shape(outFeatures), $"dy {dy.Shape}");
        }

        WeightGradCore(dy, x, dw, dbias);
    }

    /// <summary>out[j] (+)= Σ_i x[i, j] over the rows of x [*, n] (a bias gradient); with out [G, n] and x [G, …, n], each group's rows on their own. x float32 or bf16; out float32.</summary>
    public void SumRows(Tensor x, GradOut output)
    {
        ArgumentNullException.ThrowIfNull(x);
        var c = Check(nameof(SumRows));
        c.Activation("x", x);
        c.That(output.Tensor is not null, "out is required");
        c.Tensor("out", output.Tensor!);
        c.That(x.Rank >= 1, $"x must have rank ≥ 1, got {x.Shape}");
        CheckPerGroup(c, "out", output.Tensor!, x);
        SumRowsCore(x, output);
    }

    // ---------------------------------------------------------------- normalization

    /// <summary>
    /// Over the last axis of x [*, n]: mean_r, rstd_r = 1/sqrt(var_r + eps) (biased variance),
    /// y = (x - mean) · rstd · gamma + beta. mean and rstd [rows] are saved for the backward. gamma and beta
    /// are [n], or [G, n] for x [G, …, n] in G groups (branches batched), each group with its own row.
    /// </summary>
    public void LayerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(beta);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(rstd);
        var c = Check(nameof(LayerNorm));
        CheckLayerNormArgs(c, x, gamma, mean, rstd);
        c.Tensor("beta", beta);
        c.SameShape("beta", beta, "gamma", gamma);
        c.Tensor("y", y);
        c.SameShape("x", x, "y", y);
        c.That(eps > 0f, $"eps must be positive, got {eps}");
        LayerNormCore(x, gamma, beta, eps, y, mean, rstd);
    }

    /// <summary>
    /// A residual add and the LayerNorm after it in one pass over memory: sum = a + b, then <see cref="LayerNorm"/>
    /// of sum into y (mean, rstd as there). The same numbers as <see cref="Add"/> then <see cref="LayerNorm"/>.
    /// </summary>
    public void AddLayerNorm(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps, Tensor sum, Tensor y, Tensor mean, Tensor rstd)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(beta);
        ArgumentNullException.ThrowIfNull(sum);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(rstd);
        var c = Check(nameof(AddLayerNorm));
        CheckLayerNormArgs(c, a, gamma, mean, rstd);
        c.Tensor("b", b);
        c.SameShape("a", a, "b", b);
        c.Tensor("beta", beta);
        c.SameShape("beta", beta, "gamma", gamma);
        c.Tensor("sum", sum);
        c.SameShape("a", a, "sum", sum);
        c.Tensor("y", y);
        c.SameShape("a", a, "y", y);
        c.That(eps > 0f, $"eps must be positive, got {eps}");
        AddLayerNormCore(a, b, gamma, beta, eps, sum, y, mean, rstd);
    }

    /// <summary>
    /// With x̂ = (x - mean)·rstd and g = dy·gamma: dx (+)= rstd·(g - mean(g) - x̂·mean(g·x̂));
    /// dgamma (+)= Σ_rows dy·x̂; dbeta (+)= Σ_rows dy. Any of the three outputs may be None.
    /// </summary>
    public void LayerNormBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, GradOut dx, GradOut dgamma, GradOut dbeta)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(rstd);
        var c = Check(nameof(LayerNormBackward));
        CheckLayerNormArgs(c, x, gamma, mean, rstd);
        c.Tensor("dy", dy);
        c.SameShape("dy", dy, "x", x);
        CheckGradOut(c, "dx", dx, x.Shape);
        CheckGradOut(c, "dgamma", dgamma, gamma.Shape);
        CheckGradOut(c, "dbeta", dbeta, gamma.Shape);
        LayerNormBackwardCore(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
    }

    // ---------------------------------------------------------------- attention

    /// <summary>
    /// Multi-head self-attention on packed projections. qkv [B, T, 3·H·Dh] holds q, k, v side by side
    /// (each split into H heads of Dh); per batch b and head h: S = q·kᵀ/√Dh, P = softmax_rows(S),
    /// out[b, :, h·Dh..] = P·v. lse [B, H, T] (optional) receives each row's log Σ exp(S), which the
    /// backward uses to rebuild P without storing it. qkv and out float32, or both bf16; lse float32.
    /// </summary>
    public void Attention(Tensor qkv, int heads, Tensor output, Tensor? lse)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(Attention));
        var (b, t, _) = CheckAttentionArgs(c, qkv, heads, output);
        if (lse is not null)
        {
            c.Tensor("lse", lse);
            c.Shape("lse", lse, new Shape(b, heads, t), $"qkv {qkv.Shape} with {heads} heads");
        }

        AttentionCore(qkv, heads, output, lse);
    }

    /// <summary>
    /// Gradient of <see cref="Attention"/>: with P rebuilt from lse (or recomputed when lse is null),
    /// dP = dout·vᵀ, dS = P ∘ (dP - rowsum(dout ∘ out)), dq = dS·k/√Dh, dk = dSᵀ·q/√Dh, dv = Pᵀ·dout,
    /// written into dqkv [B, T, 3·H·Dh] in the same packed layout. qkv, out, dout and dqkv float32, or all bf16.
    /// </summary>
    public void AttentionBackward(Tensor qkv, Tensor output, Tensor dOutput, Tensor? lse, int heads, Tensor dQkv)
    {
        ArgumentNullException.ThrowIfNull(qkv);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(dOutput);
        ArgumentNullException.ThrowIfNull(dQkv);
        var c = Check(nameof(AttentionBackward));
        var (b, t, _) = CheckAttentionArgs(c, qkv, heads, output);
        c.Activation("dout", dOutput, qkv, "qkv");
        c.SameShape("dout", dOutput, "out", output);
        c.Activation("dqkv", dQkv, qkv, "qkv");
        c.SameShape("dqkv", dQkv, "qkv", qkv);
        if (lse is not null)
        {
            c.Tensor("lse", lse);
            c.Shape("lse", lse, new Shape(b, heads, t), $"qkv {qkv.Shape} with {heads} heads");
        }

        AttentionBackwardCore(qkv, output, dOutput, lse, heads, dQkv);
    }

    // ---------------------------------------------------------------- loss and metrics

    /// <summary>losses[i] = logsumexp(logits[i, :]) - logits[i, labels[i]]; labels are Int32 class indices.</summary>
    public void CrossEntropy(Tensor logits, Tensor labels, Tensor losses)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(losses);
        var c = Check(nameof(CrossEntropy));
        CheckLogitsAndLabels(c, logits, labels);
        c.Tensor("losses", losses);
        c.Shape("losses", losses, new Shape(logits.Shape[0]), $"logits {logits.Shape}");
        CrossEntropyCore(logits, labels, losses);
    }

    /// <summary>dlogits[i, j] = (softmax(logits[i])[j] - [j = labels[i]]) · dloss[0] · scale; dloss is a one-element tensor.</summary>
    public void CrossEntropyBackward(Tensor logits, Tensor labels, Tensor dLoss, float scale, Tensor dLogits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(dLoss);
        ArgumentNullException.ThrowIfNull(dLogits);
        var c = Check(nameof(CrossEntropyBackward));
        CheckLogitsAndLabels(c, logits, labels);
        c.Tensor("dloss", dLoss);
        c.That(dLoss.NumElements == 1, $"dloss must have one element, got {dLoss.Shape}");
        c.Tensor("dlogits", dLogits);
        c.SameShape("dlogits", dLogits, "logits", logits);
        CrossEntropyBackwardCore(logits, labels, dLoss, scale, dLogits);
    }

    /// <summary>out[0] = scale · Σ x, or √(Σ x) with <paramref name="squareRoot"/> (a norm from summed squares).</summary>
    public void SumAll(Tensor x, Tensor output, float scale = 1f, bool squareRoot = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(SumAll));
        c.Tensor("x", x);
        c.Tensor("out", output);
        c.That(output.NumElements == 1, $"out must have one element, got {output.Shape}");
        SumAllCore(x, output, scale, squareRoot);
    }

    /// <summary>indices[i] = argmax_j x[i, j] (the first maximum), as Int32.</summary>
    public void ArgmaxRows(Tensor x, Tensor indices)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(indices);
        var c = Check(nameof(ArgmaxRows));
        c.Tensor("x", x);
        c.Rank("x", x, 2);
        c.Tensor("indices", indices, DType.Int32);
        c.Shape("indices", indices, new Shape(x.Shape[0]), $"x {x.Shape}");
        ArgmaxRowsCore(x, indices);
    }

    /// <summary>count[0] = #{i : argmax logits[i] = labels[i]}, as Int32.</summary>
    public void CountCorrect(Tensor logits, Tensor labels, Tensor count)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(count);
        var c = Check(nameof(CountCorrect));
        CheckLogitsAndLabels(c, logits, labels);
        c.Tensor("count", count, DType.Int32);
        c.That(count.NumElements == 1, $"count must have one element, got {count.Shape}");
        CountCorrectCore(logits, labels, count);
    }

    // ---------------------------------------------------------------- vision

    /// <summary>
    /// images[b] = stored bytes pixels[b] [C, H, W] turned into model input with draws[b] = (top, left, flip):
    /// bilinear resize to S×S, crop window, mirror, pixel·scale[c] + black[c] (see <see cref="ImageTransform"/>).
    /// pixels UInt8 [B, C, H, W], draws Int32 [B, 3], images [B, C, S, S]; one scale and one black per channel.
    /// </summary>
    public void TransformImages(Tensor pixels, Tensor draws, IReadOnlyList<float> scale, IReadOnlyList<float> black, Tensor images)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(draws);
        ArgumentNullException.ThrowIfNull(scale);
        ArgumentNullException.ThrowIfNull(black);
        ArgumentNullException.ThrowIfNull(images);
        var c = Check(nameof(TransformImages));
        c.Tensor("pixels", pixels, DType.UInt8);
        c.Rank("pixels", pixels, 4);
        c.Tensor("draws", draws, DType.Int32);
        c.Shape("draws", draws, new Shape(pixels.Shape[0], 3), $"pixels {pixels.Shape}");
        c.Tensor("images", images);
        c.Rank("images", images, 4);
        c.That(images.Shape[0] == pixels.Shape[0] && images.Shape[1] == pixels.Shape[1] && images.Shape[2] == images.Shape[3] && images.Shape[2] > 0,
            $"images {images.Shape} must be [B, C, S, S] for pixels {pixels.Shape}");
        c.That(scale.Count == pixels.Shape[1] && black.Count == pixels.Shape[1], $"{pixels.Shape[1]} channels but {scale.Count} scales and {black.Count} blacks");
        TransformImagesCore(pixels, draws, scale, black, images);
    }

    /// <summary>
    /// images [B, C, H, W] → patches [B, (H/p)·(W/p), p·p·C]; patch n = (row, col) in raster order and
    /// its features in (p1, p2, c) order, as the reference's einops pattern 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'.
    /// </summary>
    public void Patchify(Tensor images, int patch, Tensor patches)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(patches);
        var c = Check(nameof(Patchify));
        c.Tensor("images", images);
        c.Rank("images", images, 4);
        c.That(patch > 0, $"patch size must be positive, got {patch}");
        var (b, ch, h, w) = (images.Shape[0], images.Shape[1], images.Shape[2], images.Shape[3]);
        c.That(h % patch == 0 && w % patch == 0, $"images {images.Shape} are not divisible into {patch}×{patch} patches");
        c.Tensor("patches", patches);
        c.Shape("patches", patches, new Shape(b, h / patch * (w / patch), patch * patch * ch), $"images {images.Shape} with patch {patch}");
        PatchifyCore(images, patch, patches);
    }

    /// <summary>tokens[b, 0] = cls + pos[0]; tokens[b, 1 + n] = patchEmb[b, n] + pos[1 + n]. cls [D], pos [N+1, D].</summary>
    public void AssembleTokens(Tensor patchEmbeddings, Tensor cls, Tensor positions, Tensor tokens)
    {
        ArgumentNullException.ThrowIfNull(patchEmbeddings);
        ArgumentNullException.ThrowIfNull(cls);
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(tokens);
        var c = Check(nameof(AssembleTokens));
        CheckTokenArgs(c, patchEmbeddings, cls, positions, tokens);
        AssembleTokensCore(patchEmbeddings, cls, positions, tokens);
    }

    /// <summary>dPatchEmb (+)= dTokens[:, 1:]; dcls (+)= Σ_b dTokens[b, 0]; dpos (+)= Σ_b dTokens[b]. None outputs are skipped.</summary>
    public void AssembleTokensBackward(Tensor dTokens, GradOut dPatchEmbeddings, GradOut dCls, GradOut dPositions)
    {
        ArgumentNullException.ThrowIfNull(dTokens);
        var c = Check(nameof(AssembleTokensBackward));
        c.Tensor("dtokens", dTokens);
        c.Rank("dtokens", dTokens, 3);
        var (b, t, d) = (dTokens.Shape[0], dTokens.Shape[1], dTokens.Shape[2]);
        c.That(t >= 1, $"dtokens {dTokens.Shape} has no CLS token");
        CheckGradOut(c, "dpatch", dPatchEmbeddings, new Shape(b, t - 1, d));
        CheckGradOut(c, "dcls", dCls, new Shape(d));
        CheckGradOut(c, "dpos", dPositions, new Shape(t, d));
        AssembleTokensBackwardCore(dTokens, dPatchEmbeddings, dCls, dPositions);
    }

    /// <summary>x [B, T, D] → out [B, D]: token 0 (<see cref="Pooling.Cls"/>) or the mean over tokens.</summary>
    public void PoolTokens(Tensor x, Pooling mode, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(output);
        var c = Check(nameof(PoolTokens));
        c.Tensor("x", x);
        c.Rank("x", x, 3);
        c.Tensor("out", output);
        c.Shape("out", output, new Shape(x.Shape[0], x.Shape[2]), $"x {x.Shape}");
        PoolTokensCore(x, mode, output);
    }

    /// <summary>dx (+)= the gradient of <see cref="PoolTokens"/>: dout into token 0, or dout/T into every token.</summary>
    public void PoolTokensBackward(Tensor dOutput, Pooling mode, GradOut dx)
    {
        ArgumentNullException.ThrowIfNull(dOutput);
        var c = Check(nameof(PoolTokensBackward));
        c.That(dx.Tensor is not null, "dx is required");
        var t = dx.Tensor!;
        c.Tensor("dx", t);
        c.Rank("dx", t, 3);
        c.Tensor("dout", dOutput);
        c.Shape("dout", dOutput, new Shape(t.Shape[0], t.Shape[2]), $"dx {t.Shape}");
        PoolTokensBackwardCore(dOutput, mode, dx);
    }

    // ---------------------------------------------------------------- optimizer

    /// <summary>
    /// outputs[i][0] = Σ_j tensors[i][j]², each tensor summed on its own in a fixed order, so its sum does not
    /// depend on the other tensors of the call: gradients spread over devices sum to what they sum to on one.
    /// </summary>
    public void SumOfSquares(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor> outputs)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(outputs);
        var c = Check(nameof(SumOfSquares));
        CheckTensorList(c, "tensors", tensors);
        CheckTensorList(c, "outputs", outputs);
        c.That(outputs.Count == tensors.Count, $"{tensors.Count} tensors but {outputs.Count} outputs");
        for (var i = 0; i < outputs.Count; i++)
        {
            c.That(outputs[i].NumElements == 1, $"outputs[{i}] must have one element, got {outputs[i].Shape}");
        }

        SumOfSquaresCore(tensors, outputs);
    }

    /// <summary>
    /// norm[0] = √(Σ_t Σ_i t[i]²) over all tensors (the global gradient norm): each tensor's sum of squares
    /// (<see cref="SumOfSquares"/>), then the root of their sum in tensor order.
    /// </summary>
    public void GlobalNorm(IReadOnlyList<Tensor> tensors, Tensor norm)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(norm);
        var c = Check(nameof(GlobalNorm));
        CheckTensorList(c, "tensors", tensors);
        c.Tensor("norm", norm);
        c.That(norm.NumElements == 1, $"norm must have one element, got {norm.Shape}");
        using var unscoped = TensorScope.Unscoped();
        using var sums = Tensor.Empty(new Shape(tensors.Count), DType.Float32, norm.Context);
        var slots = Enumerable.Range(0, tensors.Count).Select(i => sums.NarrowView(i, 1)).ToList();
        SumOfSquares(tensors, slots);
        SumAll(sums, norm, squareRoot: true);
        foreach (var slot in slots)
        {
            slot.Dispose();
        }
    }

    /// <summary>Scales every tensor in place by min(1, maxNorm / (norm[0] + 1e-6)), as torch.nn.utils.clip_grad_norm_.</summary>
    public void ClipByNorm(IReadOnlyList<Tensor> tensors, Tensor norm, float maxNorm)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(norm);
        var c = Check(nameof(ClipByNorm));
        CheckTensorList(c, "tensors", tensors);
        c.Tensor("norm", norm);
        c.That(norm.NumElements == 1, $"norm must have one element, got {norm.Shape}");
        c.That(maxNorm > 0f, $"maxNorm must be positive, got {maxNorm}");
        ClipByNormCore(tensors, norm, maxNorm);
    }

    /// <summary>
    /// One Adam/AdamW step over all parameters. Each parameter counts its own steps, as PyTorch counts them (a
    /// parameter without a gradient is skipped): <paramref name="steps"/>[i] is an Int32 [1] tensor holding the
    /// steps parameter i has taken; the op advances it to t = steps[i] + 1 and updates with t: g = grad (+ wd·p for
    /// Adam); m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²; p -= lr·(m/(1-β1ᵗ)) / (sqrt(v/(1-β2ᵗ)) + eps); AdamW first
    /// decays p *= 1 - lr·wd. Same formulas as torch.optim.Adam/AdamW. The counts, and the learning rate when
    /// <paramref name="learningRate"/> (float32 [1]) is given in place of <c>hp.LearningRate</c>, are read where the
    /// op runs, so a captured update replayed step after step keeps counting and follows learning-rate changes.
    /// </summary>
    public void AdamUpdate(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v, AdamParameters hp, IReadOnlyList<Tensor> steps, Tensor? learningRate = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(v);
        var c = Check(nameof(AdamUpdate));
        CheckTensorList(c, "parameters", parameters);
        c.That(grads.Count == parameters.Count && m.Count == parameters.Count && v.Count == parameters.Count,
            $"{parameters.Count} parameters but {grads.Count} grads, {m.Count} first and {v.Count} second moments");
        for (var i = 0; i < parameters.Count; i++)
        {
            c.Tensor($"grads[{i}]", grads[i]);
            c.Tensor($"m[{i}]", m[i]);
            c.Tensor($"v[{i}]", v[i]);
            c.SameShape($"grads[{i}]", grads[i], $"parameters[{i}]", parameters[i]);
            c.SameShape($"m[{i}]", m[i], $"parameters[{i}]", parameters[i]);
            c.SameShape($"v[{i}]", v[i], $"parameters[{i}]", parameters[i]);
        }

        ArgumentNullException.ThrowIfNull(steps);
        c.That(steps.Count == parameters.Count, $"{parameters.Count} parameters but {steps.Count} step counts");
        for (var i = 0; i < steps.Count; i++)
        {
            c.Tensor($"steps[{i}]", steps[i], DType.Int32);
            c.That(steps[i].NumElements == 1, $"steps[{i}] must have one element (the parameter's step count), got {steps[i].Shape}");
        }

        if (learningRate is not null)
        {
            c.Tensor("learningRate", learningRate);
            c.That(learningRate.NumElements == 1, $"learningRate must have one element, got {learningRate.Shape}");
        }

        c.That(hp.LearningRate >= 0f && hp.Beta1 is >= 0f and < 1f && hp.Beta2 is >= 0f and < 1f && hp.Epsilon > 0f && hp.WeightDecay >= 0f,
            $"invalid hyper-parameters {hp}");
        AdamUpdateCore(parameters, grads, m, v, hp, steps, learningRate);
    }

    // ---------------------------------------------------------------- backend hooks

    protected abstract void FillCore(Tensor dst, float value);

    protected abstract void CopyCore(Tensor src, Tensor dst);

    protected abstract void CopyAcrossCore(Tensor src, Tensor dst);

    protected abstract void CopyFromHostCore(ReadOnlySpan<byte> src, Tensor dst);

    protected abstract void CopyToHostCore(Tensor src, Span<byte> dst);

    /// <summary>float32 → bf16 or bf16 → float32.</summary>
    protected abstract void CastCore(Tensor src, Tensor dst);

    protected abstract void AddCore(Tensor a, Tensor b, Tensor output);

    protected abstract void ScaleCore(Tensor x, float alpha, Tensor output);

    protected abstract void SumManyCore(IReadOnlyList<Tensor> xs, Tensor output);

    protected abstract void BiasGeluCore(Tensor x, Tensor? bias, Tensor y);

    protected abstract void BiasGeluBackwardCore(Tensor x, Tensor? bias, Tensor dy, Tensor dx, GradOut dbias);

    protected abstract void DropoutCore(Tensor x, Tensor y, float p, ulong seed, ulong offset, Tensor? offsetBase);

    protected abstract void GemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias);

    protected abstract void BatchedGemmCore(Tensor a, Tensor b, Tensor c, bool transA, bool transB, float alpha, float beta, Tensor? bias);

    protected abstract void SumRowsCore(Tensor x, GradOut output);

    /// <summary>The GEMM, then bias and GELU: backends that fuse them override this.</summary>
    protected virtual void LinearGeluCore(Tensor x, Tensor weight, Tensor? bias, Tensor product, Tensor y)
    {
        if (weight.Rank == 3)
        {
            BatchedGemmCore(x, weight, product, transA: false, transB: true, 1f, 0f, null);
        }
        else
        {
            GemmCore(x, weight, product, transA: false, transB: true, 1f, 0f, null);
        }

        BiasGeluCore(product, bias, y);
    }

    /// <summary>The GEMM into float32, dropout's backward, then bias and GELU's backward: backends that fuse them override this.</summary>
    protected virtual void LinearGeluBackwardCore(Tensor dy, Tensor weight, Tensor pre, Tensor? bias, float p, ulong seed, ulong offset, Tensor? offsetBase, Tensor dPre, GradOut dbias)
    {
        // dy·w stays float32 however pre is stored, as in a fused kernel: dpre is rounded once.
        Tensor through;
        using (TensorScope.Unscoped())
        {
            through = Tensor.Empty(pre.Shape, DType.Float32, pre.Context);
        }

        using (through)
        {
            if (weight.Rank == 3)
            {
                BatchedGemmCore(dy, weight, through, transA: false, transB: false, 1f, 0f, null);
            }
            else
            {
                GemmCore(dy, weight, through, transA: false, transB: false, 1f, 0f, null);
            }

            if (p > 0f)
            {
                DropoutCore(through, through, p, seed, offset, offsetBase);
            }

            if (!OnFloat32([pre, dPre], [1], t => BiasGeluBackwardCore(t[0]!, bias, through, t[1]!, GradOut.None)))
            {
                BiasGeluBackwardCore(pre, bias, through, dPre, dbias);
                return;
            }
        }

        if (dbias.Tensor is not null)
        {
            SumRowsCore(dPre, dbias);
        }
    }

    /// <summary>The weight-gradient GEMM, then the bias gradient's column sums: backends that fuse them override this.</summary>
    protected virtual void WeightGradCore(Tensor dy, Tensor x, GradOut dw, GradOut dbias)
    {
        if (dw.Tensor is { } w)
        {
            var beta = dw.Accumulate ? 1f : 0f;
            if (dy.Rank == 3)
            {
                BatchedGemmCore(dy, x, w, transA: true, transB: false, 1f, beta, null);
            }
            else
            {
                GemmCore(dy, x, w, transA: true, transB: false, 1f, beta, null);
            }
        }

        if (dbias.Tensor is not null)
        {
            SumRowsCore(dy, dbias);
        }
    }

    protected abstract void LayerNormCore(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor y, Tensor mean, Tensor rstd);

    protected abstract void AddLayerNormCore(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps, Tensor sum, Tensor y, Tensor mean, Tensor rstd);

    protected abstract void LayerNormBackwardCore(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, GradOut dx, GradOut dgamma, GradOut dbeta);

    protected abstract void AttentionCore(Tensor qkv, int heads, Tensor output, Tensor? lse);

    protected abstract void AttentionBackwardCore(Tensor qkv, Tensor output, Tensor dOutput, Tensor? lse, int heads, Tensor dQkv);

    protected abstract void CrossEntropyCore(Tensor logits, Tensor labels, Tensor losses);

    protected abstract void CrossEntropyBackwardCore(Tensor logits, Tensor labels, Tensor dLoss, float scale, Tensor dLogits);

    protected abstract void SumAllCore(Tensor x, Tensor output, float scale, bool squareRoot);

    protected abstract void ArgmaxRowsCore(Tensor x, Tensor indices);

    protected abstract void CountCorrectCore(Tensor logits, Tensor labels, Tensor count);

    protected abstract void TransformImagesCore(Tensor pixels, Tensor draws, IReadOnlyList<float> scale, IReadOnlyList<float> black, Tensor images);

    protected abstract void PatchifyCore(Tensor images, int patch, Tensor patches);

    protected abstract void AssembleTokensCore(Tensor patchEmbeddings, Tensor cls, Tensor positions, Tensor tokens);

    protected abstract void AssembleTokensBackwardCore(Tensor dTokens, GradOut dPatchEmbeddings, GradOut dCls, GradOut dPositions);

    protected abstract void PoolTokensCore(Tensor x, Pooling mode, Tensor output);

    protected abstract void PoolTokensBackwardCore(Tensor dOutput, Pooling mode, GradOut dx);

    protected abstract void SumOfSquaresCore(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor> outputs);

    protected abstract void ClipByNormCore(IReadOnlyList<Tensor> tensors, Tensor norm, float maxNorm);

    protected abstract void AdamUpdateCore(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v, AdamParameters hp, IReadOnlyList<Tensor> steps, Tensor? learningRate);

    /// <summary>
    /// For an op a backend has no bf16 kernel for: when some of <paramref name="tensors"/> are bf16, runs
    /// <paramref name="body"/> on float32 copies of them (the others as they are) and rounds the copies of the
    /// <paramref name="written"/> ones back, then returns true; false, doing nothing, when none is bf16. The float32
    /// op on the exact values, each output rounded once: what a bf16 kernel computing in float32 gives.
    /// </summary>
    protected bool OnFloat32(Tensor?[] tensors, int[] written, Action<Tensor?[]> body)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(written);
        ArgumentNullException.ThrowIfNull(body);
        if (!Array.Exists(tensors, t => t?.DType == DType.BFloat16))
        {
            return false;
        }

        var wide = new Tensor?[tensors.Length];
        try
        {
            using (TensorScope.Unscoped())
            {
                for (var i = 0; i < tensors.Length; i++)
                {
                    if (tensors[i] is { DType: DType.BFloat16 } t)
                    {
                        wide[i] = Tensor.Empty(t.Shape, DType.Float32, t.Context);
                        CastCore(t, wide[i]!);
                    }
                    else
                    {
                        wide[i] = tensors[i];
                    }
                }
            }

            body(wide);
            foreach (var i in written)
            {
                if (tensors[i] is { DType: DType.BFloat16 } t)
                {
                    CastCore(wide[i]!, t);
                }
            }
        }
        finally
        {
            for (var i = 0; i < tensors.Length; i++)
            {
                if (!ReferenceEquals(wide[i], tensors[i]))
                {
                    wide[i]?.Dispose();
                }
            }
        }

        return true;
    }

    // ---------------------------------------------------------------- shared checks

    private OpCheck Check(string op) => new(op, Device);

    private static void CheckGradOut(OpCheck c, string role, GradOut g, Shape expected)
    {
        if (g.Tensor is { } t)
        {
            c.Tensor(role, t);
            c.Shape(role, t, expected, "the forward's operand");
        }
    }

    private static void CheckBias(OpCheck c, Tensor x, Tensor? bias)
    {
        if (bias is null)
        {
            return;
        }

        c.Tensor("bias", bias);
        c.That(x.Rank >= 1, $"x must have rank ≥ 1, got {x.Shape}");
        CheckPerGroup(c, "bias", bias, x);
    }

    /// <summary>
    /// A parameter of x [*, n]'s last axis: [n] for every row, or [G, n] when x [G, …, n] comes in G groups (a
    /// ParaFormer's branches batched), group g's rows using row g.
    /// </summary>
    private static void CheckPerGroup(OpCheck c, string name, Tensor parameter, Tensor x)
    {
        if (parameter.Rank == 2 && x.Rank >= 2)
        {
            c.Shape(name, parameter, new Shape(x.Shape[0], x.Shape[-1]), $"x {x.Shape} in {x.Shape[0]} groups");
        }
        else
        {
            c.Shape(name, parameter, new Shape(x.Shape[-1]), $"x {x.Shape}");
        }
    }

    /// <summary>The groups a per-group parameter (see <see cref="CheckPerGroup"/>) splits x into: 1 for a plain [n] one.</summary>
    protected static int Groups(Tensor parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        return parameter.Rank == 2 ? parameter.Shape[0] : 1;
    }

    private static void CheckLayerNormArgs(OpCheck c, Tensor x, Tensor gamma, Tensor mean, Tensor rstd)
    {
        c.Tensor("x", x);
        c.That(x.Rank >= 1, $"x must have rank ≥ 1, got {x.Shape}");
        c.Tensor("gamma", gamma);
        CheckPerGroup(c, "gamma", gamma, x);
        var rows = (int)(x.NumElements / Math.Max(1, x.Shape[-1]));
        c.Tensor("mean", mean);
        c.Shape("mean", mean, new Shape(rows), $"x {x.Shape}");
        c.Tensor("rstd", rstd);
        c.Shape("rstd", rstd, new Shape(rows), $"x {x.Shape}");
    }

    private static (int B, int T, int D) CheckAttentionArgs(OpCheck c, Tensor qkv, int heads, Tensor output)
    {
        c.Activation("qkv", qkv);
        c.Rank("qkv", qkv, 3);
        c.That(heads > 0, $"heads must be positive, got {heads}");
        var (b, t, d3) = (qkv.Shape[0], qkv.Shape[1], qkv.Shape[2]);
        c.That(d3 % (3 * heads) == 0, $"qkv {qkv.Shape}: last axis must be 3·heads·head_dim, with heads = {heads}");
        var d = d3 / 3;
        c.Activation("out", output, qkv, "qkv");
        c.Shape("out", output, new Shape(b, t, d), $"qkv {qkv.Shape}");
        return (b, t, d);
    }

    /// <summary>
    /// A product's operands: both float32, or both bf16 (mixed precision, float32 accumulation); its output float32,
    /// or bf16 when the operands are (cuBLAS writes a float32 product only from float32 operands or bf16 ones).
    /// </summary>
    private static void CheckProductTypes(OpCheck c, Tensor a, Tensor b, Tensor output, string aRole = "A", string bRole = "B", string outputRole = "C")
    {
        c.Activation(aRole, a);
        c.Activation(bRole, b, a, aRole);
        c.Activation(outputRole, output);
        c.That(a.DType == DType.BFloat16 || output.DType == DType.Float32, $"{outputRole} {output.Shape} is {output.DType}: float32 operands give a float32 product");
    }

    private static void CheckLogitsAndLabels(OpCheck c, Tensor logits, Tensor labels)
    {
        c.Tensor("logits", logits);
        c.Rank("logits", logits, 2);
        c.Tensor("labels", labels, DType.Int32);
        c.Shape("labels", labels, new Shape(logits.Shape[0]), $"logits {logits.Shape}");
    }

    private static void CheckTokenArgs(OpCheck c, Tensor patchEmbeddings, Tensor cls, Tensor positions, Tensor tokens)
    {
        c.Tensor("patch", patchEmbeddings);
        c.Rank("patch", patchEmbeddings, 3);
        var (b, n, d) = (patchEmbeddings.Shape[0], patchEmbeddings.Shape[1], patchEmbeddings.Shape[2]);
        c.Tensor("cls", cls);
        c.Shape("cls", cls, new Shape(d), $"patch {patchEmbeddings.Shape}");
        c.Tensor("pos", positions);
        c.Shape("pos", positions, new Shape(n + 1, d), $"patch {patchEmbeddings.Shape}");
        c.Tensor("tokens", tokens);
        c.Shape("tokens", tokens, new Shape(b, n + 1, d), $"patch {patchEmbeddings.Shape}");
    }

    private static void CheckTensorList(OpCheck c, string role, IReadOnlyList<Tensor> tensors)
    {
        for (var i = 0; i < tensors.Count; i++)
        {
            c.Tensor($"{role}[{i}]", tensors[i]);
        }
    }
}
