using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

/// <summary>
/// Differentiable functions (PyTorch's torch.nn.functional): each allocates its outputs, runs one or
/// two backend ops on the context of its inputs, and records how to backpropagate through them.
/// Inputs must share a context; moving between contexts is explicit, through <see cref="Transfer"/>.
/// </summary>
public static partial class F
{
    /// <summary>a + b.</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        var ctx = SameContext(nameof(Add), a, b);
        var y = a.EmptyLike();
        ctx.Ops.Add(a, b, y);
        return Record(nameof(Add), y, [a, b], AddBackward);
    }

    /// <summary>
    /// A residual add and the LayerNorm after it, computed in one pass over memory (<see cref="Ops.AddLayerNorm"/>)
    /// and recorded as the two ops they are: the same numbers and gradients as <see cref="Add"/> then <see cref="LayerNorm"/>.
    /// </summary>
    public static (Tensor Sum, Tensor Normalized) AddLayerNorm(Tensor a, Tensor b, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        var ctx = SameContext(nameof(AddLayerNorm), a, b, gamma, beta);
        var (sum, y, mean, rstd) = (a.EmptyLike(), a.EmptyLike(), a.EmptyLike(new Shape(Rows(a))), a.EmptyLike(new Shape(Rows(a))));
        ctx.Ops.AddLayerNorm(a, b, gamma, beta, eps, sum, y, mean, rstd);
        Record(nameof(Add), sum, [a, b], AddBackward);
        return (sum, Record(nameof(LayerNorm), y, [sum, gamma, beta], LayerNormBackward(sum, gamma, mean, rstd)));
    }

    private static void AddBackward(Tensor g, GradSink sink)
    {
        sink.Pass(0, g);
        sink.Pass(1, g);
    }

    /// <summary>x stored as <paramref name="dtype"/> (float32 ↔ bf16; x itself when it already is); the gradient comes back in x's dtype.</summary>
    public static Tensor Cast(Tensor x, DType dtype)
    {
        var ctx = SameContext(nameof(Cast), x);
        if (x.DType == dtype)
        {
            return x;
        }

        var y = Tensor.Empty(x.Shape, dtype, ctx);
        ctx.Ops.Cast(x, y);
        return Record(nameof(Cast), y, [x], (g, sink) => sink.Write(0, dx => ctx.Ops.Cast(g, dx)));
    }

    /// <summary>alpha · x.</summary>
    public static Tensor Scale(Tensor x, float alpha)
    {
        var ctx = SameContext(nameof(Scale), x);
        var y = x.EmptyLike();
        ctx.Ops.Scale(x, alpha, y);
        return Record(nameof(Scale), y, [x], (g, sink) => sink.Write(0, dx => ctx.Ops.Scale(g, alpha, dx)));
    }

    /// <summary>Σ xs: the branch sum, one pass over memory however many terms.</summary>
    public static Tensor SumMany(IReadOnlyList<Tensor> xs)
    {
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0)
        {
            throw new ArgumentException("SumMany needs at least one tensor", nameof(xs));
        }

        var inputs = xs.ToArray();
        var ctx = SameContext(nameof(SumMany), inputs);
        var y = inputs[0].EmptyLike();
        ctx.Ops.SumMany(inputs, y);
        return Record(nameof(SumMany), y, inputs, (g, sink) =>
        {
            for (var i = 0; i < inputs.Length; i++)
            {
                sink.Pass(i, g);
            }
        });
    }

    /// <summary>A view with another shape (one dimension may be -1); gradients are reshaped back.</summary>
    public static Tensor Reshape(Tensor x, params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = x.View(dims);
        var shape = x.Shape;
        return Record(nameof(Reshape), y, [x], (g, sink) =>
        {
            using var back = g.View(shape.AsSpan());
            sink.Pass(0, back);
        });
    }

    /// <summary>a · b for 2-D tensors, or batch by batch for 3-D ones.</summary>
    public static Tensor Matmul(Tensor a, Tensor b)
    {
        var ctx = SameContext(nameof(Matmul), a, b);
        if (a.Rank != b.Rank || a.Rank is not (2 or 3))
        {
            throw new TensorOpException(nameof(Matmul), $"needs two 2-D or two 3-D tensors, got {a.Shape} and {b.Shape}");
        }

        var batched = a.Rank == 3;
        var y = batched ? a.EmptyLike(new Shape(a.Shape[0], a.Shape[1], b.Shape[2])) : a.EmptyLike(new Shape(a.Shape[0], b.Shape[1]));
        Product(a, b, y, false, false, 0f);
        return Record(nameof(Matmul), y, [a, b], (g, sink) =>
        {
            // dA = dY·Bᵀ, dB = Aᵀ·dY.
            if (sink.Target(0) is { Tensor: { } da } ta)
            {
                Product(g, b, da, false, true, ta.Accumulate ? 1f : 0f);
            }

            if (sink.Target(1) is { Tensor: { } db } tb)
            {
                Product(a, g, db, true, false, tb.Accumulate ? 1f : 0f);
            }
        });

        void Product(Tensor x, Tensor w, Tensor output, bool transX, bool transW, float beta)
        {
            if (batched)
            {
                ctx.Ops.BatchedGemm(x, w, output, transX, transW, 1f, beta);
            }
            else
            {
                ctx.Ops.Gemm(x, w, output, transX, transW, 1f, beta);
            }
        }
    }

    /// <summary>gelu(x + bias), the exact erf GELU; bias [N] broadcasts over the last axis (or is null).</summary>
    public static Tensor BiasGelu(Tensor x, Tensor? bias) => BiasGelu(x, bias, computed: null);

    /// <summary>BiasGelu, or (with <paramref name="computed"/>) only its autograd node over an output computed already.</summary>
    private static Tensor BiasGelu(Tensor x, Tensor? bias, Tensor? computed)
    {
        var ctx = SameContext(nameof(BiasGelu), x, bias);
        var y = computed ?? x.EmptyLike();
        if (computed is null)
        {
            ctx.Ops.BiasGelu(x, bias, y);
        }

        return Record(nameof(BiasGelu), y, [x, bias], (g, sink) =>
        {
            var dbias = sink.Target(1);
            if (sink.Wants(0))
            {
                sink.Write(0, dx => ctx.Ops.BiasGeluBackward(x, bias, g, dx, dbias));
            }
            else if (dbias.Tensor is not null)
            {
                using var dx = x.EmptyLike();
                ctx.Ops.BiasGeluBackward(x, bias, g, dx, dbias);
            }
        });
    }

    public static Tensor Gelu(Tensor x) => BiasGelu(x, null);

    /// <summary>LayerNorm over the last axis with affine parameters gamma and beta.</summary>
    public static Tensor LayerNorm(Tensor x, Tensor gamma, Tensor beta, float eps = 1e-5f)
    {
        var ctx = SameContext(nameof(LayerNorm), x, gamma, beta);
        var y = x.EmptyLike();
        var mean = x.EmptyLike(new Shape(Rows(x)));
        var rstd = x.EmptyLike(new Shape(Rows(x)));
        ctx.Ops.LayerNorm(x, gamma, beta, eps, y, mean, rstd);
        return Record(nameof(LayerNorm), y, [x, gamma, beta], LayerNormBackward(x, gamma, mean, rstd));
    }

    private static BackwardFunction LayerNormBackward(Tensor x, Tensor gamma, Tensor mean, Tensor rstd) => (g, sink) =>
        x.Context.Ops.LayerNormBackward(g, x, gamma, mean, rstd, sink.Target(0), sink.Target(1), sink.Target(2));

    /// <summary>Rows of x over its last axis (0 for an empty one).</summary>
    private static int Rows(Tensor x) => x.Rank == 0 || x.Shape[-1] == 0 ? 0 : (int)(x.NumElements / x.Shape[-1]);

    /// <summary>Inverted dropout with probability p; identity when not training or p = 0.</summary>
    public static Tensor Dropout(Tensor x, float p, Generator generator, bool training)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(generator);
        if (!training || p == 0f)
        {
            return x;
        }

        var ctx = SameContext(nameof(Dropout), x);
        var seed = generator.Seed;
        var (stream, offsetBase) = generator.NextOnDevice();
        var y = x.EmptyLike();
        ctx.Ops.Dropout(x, y, p, seed, stream, offsetBase);
        return Record(nameof(Dropout), y, [x], (g, sink) => sink.Write(0, dx => ctx.Ops.Dropout(g, dx, p, seed, stream, offsetBase)));
    }

    /// <summary>Fused multi-head self-attention over packed qkv [B, T, 3·D] → [B, T, D].</summary>
    public static Tensor Attention(Tensor qkv, int heads)
    {
        var ctx = SameContext(nameof(Attention), qkv);
        if (qkv.Rank != 3)
        {
            throw new TensorOpException(nameof(Attention), $"qkv must be [B, T, 3·D], got {qkv.Shape}");
        }

        var y = qkv.EmptyLike(new Shape(qkv.Shape[0], qkv.Shape[1], qkv.Shape[2] / 3));
        var lse = GradMode.IsEnabled && qkv.RequiresGrad ? Tensor.Empty(new Shape(qkv.Shape[0], heads, qkv.Shape[1]), DType.Float32, ctx) : null;
        ctx.Ops.Attention(qkv, heads, y, lse);
        return Record(nameof(Attention), y, [qkv], (g, sink) => sink.Write(0, dqkv => ctx.Ops.AttentionBackward(qkv, y, g, lse, heads, dqkv)));
    }

    /// <summary>Mean softmax cross-entropy of logits [N, C] against Int32 labels [N], as a one-element tensor.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        var ctx = SameContext(nameof(CrossEntropy), logits, labels);
        var n = logits.Rank == 2 ? logits.Shape[0] : 0;
        using var losses = logits.EmptyLike(new Shape(n));
        ctx.Ops.CrossEntropy(logits, labels, losses);
        var loss = logits.EmptyLike(new Shape(1));
        ctx.Ops.SumAll(losses, loss, 1f / Math.Max(n, 1));
        return Record(nameof(CrossEntropy), loss, [logits, labels], (g, sink) =>
            sink.Write(0, dlogits => ctx.Ops.CrossEntropyBackward(logits, labels, g, 1f / n, dlogits)));
    }

    /// <summary>images [B, C, H, W] → patch rows [B, N, p·p·C] (inputs need no gradient).</summary>
    public static Tensor Patchify(Tensor images, int patch)
    {
        var ctx = SameContext(nameof(Patchify), images);
        if (images.Rank != 4 || patch <= 0)
        {
            throw new TensorOpException(nameof(Patchify), $"needs images [B, C, H, W] and a positive patch size, got {images.Shape} and {patch}");
        }

        var (b, c, h, w) = (images.Shape[0], images.Shape[1], images.Shape[2], images.Shape[3]);
        var patches = images.EmptyLike(new Shape(b, h / patch * (w / patch), patch * patch * c));
        ctx.Ops.Patchify(images, patch, patches);
        return patches;
    }

    /// <summary>[CLS; patch embeddings] + positional embeddings → tokens [B, N+1, D].</summary>
    public static Tensor AssembleTokens(Tensor patchEmbeddings, Tensor cls, Tensor positions)
    {
        var ctx = SameContext(nameof(AssembleTokens), patchEmbeddings, cls, positions);
        if (patchEmbeddings.Rank != 3)
        {
            throw new TensorOpException(nameof(AssembleTokens), $"patch embeddings must be [B, N, D], got {patchEmbeddings.Shape}");
        }

        var (b, n, d) = (patchEmbeddings.Shape[0], patchEmbeddings.Shape[1], patchEmbeddings.Shape[2]);
        var tokens = patchEmbeddings.EmptyLike(new Shape(b, n + 1, d));
        ctx.Ops.AssembleTokens(patchEmbeddings, cls, positions, tokens);
        return Record(nameof(AssembleTokens), tokens, [patchEmbeddings, cls, positions], (g, sink) =>
            ctx.Ops.AssembleTokensBackward(g, sink.Target(0), sink.Target(1), sink.Target(2)));
    }

    /// <summary>[B, T, D] → [B, D] by the CLS token or the mean over tokens.</summary>
    public static Tensor PoolTokens(Tensor x, Pooling mode)
    {
        var ctx = SameContext(nameof(PoolTokens), x);
        if (x.Rank != 3)
        {
            throw new TensorOpException(nameof(PoolTokens), $"x must be [B, T, D], got {x.Shape}");
        }

        var y = x.EmptyLike(new Shape(x.Shape[0], x.Shape[2]));
        ctx.Ops.PoolTokens(x, mode, y);
        return Record(nameof(PoolTokens), y, [x], (g, sink) => ctx.Ops.PoolTokensBackward(g, mode, sink.Target(0)));
    }

    /// <summary>
    /// The explicit crossing between contexts: <paramref name="target"/> waits for the work that produced x,
    /// then uses it (a view on the same device, or a copy on another: peer to peer between GPUs). In backward
    /// the gradient crosses back the same way, and is accumulated on x's own context in tape order, so results
    /// do not depend on timing.
    /// </summary>
    public static Tensor Transfer(Tensor x, ComputeContext target)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(target);
        if (ReferenceEquals(x.Context, target))
        {
            return x;
        }

        var source = x.Context;
        if (x.Device != target.Device)
        {
            var copy = Tensor.Empty(x.Shape, x.DType, target);
            target.Ops.CopyAcross(x, copy);
            return Record(nameof(Transfer), copy, [x], (g, sink) =>
            {
                using var back = Tensor.Empty(g.Shape, g.DType, source);
                source.Ops.CopyAcross(g, back);
                sink.Pass(0, back);
            });
        }

        target.WaitFor(source);
        var y = x.AliasOn(target);
        return Record(nameof(Transfer), y, [x], (g, sink) =>
        {
            source.WaitFor(target);
            using var back = g.AliasOn(source);
            sink.Pass(0, back);
        });
    }

    /// <summary>Adds a node to the tape when grad mode is on and some input requires grad.</summary>
    internal static Tensor Record(string name, Tensor output, Tensor?[] inputs, BackwardFunction backward)
    {
        if (!GradMode.IsEnabled || !Array.Exists(inputs, t => t is { RequiresGrad: true }))
        {
            return output;
        }

        output.SetGradFn(new Node(name, output, inputs, output.Context, backward));
        return output;
    }

    /// <summary>The one context all <paramref name="tensors"/> (nulls skipped) are ordered on.</summary>
    internal static ComputeContext SameContext(string op, params ReadOnlySpan<Tensor?> tensors)
    {
        Tensor? first = null;
        foreach (var t in tensors)
        {
            if (t is null)
            {
                continue;
            }

            if (t.IsDisposed)
            {
                throw new ObjectDisposedException(t.Describe(), $"{op}: an input was already disposed");
            }

            if (first is null)
            {
                first = t;
            }
            else if (!ReferenceEquals(t.Context, first.Context))
            {
                throw new InvalidOperationException(
                    $"{op}: {first.Describe()} and {t.Describe()} are ordered on different contexts; move one across with F.Transfer(x, context)");
            }
        }

        return first?.Context ?? throw new ArgumentException($"{op}: no input tensor");
    }
}
