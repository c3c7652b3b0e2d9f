using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

// Linear layers: Linear, the MLP's first layer (LinearGelu) and the whole MLP (Mlp), in float32 or, under
// Autocast, on bf16 operands.
public static partial class F
{
    /// <summary>
    /// y = x·Wᵀ + b over the last axis of x [*, in], with W [out, in] as PyTorch's nn.Linear stores it.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias) => Linear(x, weight, bias, DType.Float32);

    /// <summary>
    /// Linear with its output stored as <paramref name="output"/>. Under <see cref="Autocast"/>, for a bf16 x or a bf16
    /// output, the product runs on bf16 operands (x and W cast to bf16, float32 accumulation); otherwise everything is
    /// float32. W, the bias and their gradients stay float32 either way.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, DType output)
    {
        SameContext(nameof(Linear), x, weight, bias);
        var layer = new LinearLayer(nameof(Linear), x, weight, bias, output);
        var y = layer.Output();
        layer.Forward(y);
        return RecordLinear(layer, y);
    }

    /// <summary>
    /// gelu(x·Wᵀ + bias), the MLP's first layer: the same values and gradients as BiasGelu(Linear(x, W, null), bias),
    /// computed by one op (<see cref="Ops.LinearGelu"/>) that a backend may run as one kernel. W is [out, in],
    /// or [G, out, in] for x [G, *, in] (branches batched).
    /// </summary>
    public static Tensor LinearGelu(Tensor x, Tensor weight, Tensor? bias) => LinearGelu(x, weight, bias, DType.Float32);

    /// <summary>LinearGelu with its output (and the pre-activation kept for backward) stored as <paramref name="output"/>, in bf16 products as <see cref="Linear(Tensor, Tensor, Tensor?, DType)"/> says.</summary>
    public static Tensor LinearGelu(Tensor x, Tensor weight, Tensor? bias, DType output)
    {
        SameContext(nameof(LinearGelu), x, weight, bias);
        var (product, y) = FirstLayer(x, weight, bias, output);
        return BiasGelu(product, bias, y);
    }

    /// <summary>
    /// The MLP without its output dropout: dropout(gelu(x·W1ᵀ + b1))·W2ᵀ + b2, the hidden layer stored as
    /// <paramref name="hidden"/> (bf16 under mixed precision), the output float32. Recorded as the first layer's linear
    /// node over its product and one node for the rest, whose backward runs the second layer's parameter gradients,
    /// then one op back through the second layer, the dropout and the GELU to the product
    /// (<see cref="Ops.LinearGeluBackward"/>, a single kernel where a backend fuses it). The same values and
    /// gradients as <see cref="LinearGelu(Tensor, Tensor, Tensor?, DType)"/>, <see cref="Dropout"/> and
    /// <see cref="Linear(Tensor, Tensor, Tensor?)"/> in turn (the dropout draws the same mask); weights [out, in], or
    /// [G, out, in] for x [G, *, in] (branches batched).
    /// </summary>
    public static Tensor Mlp(Tensor x, Tensor fc1Weight, Tensor? fc1Bias, Tensor fc2Weight, Tensor? fc2Bias, float dropout, Generator generator, bool training, DType hidden)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var ctx = SameContext(nameof(Mlp), x, fc1Weight, fc1Bias, fc2Weight, fc2Bias);
        var (product, activated) = FirstLayer(x, fc1Weight, fc1Bias, hidden);
        var (p, seed, offset, offsetBase) = (0f, 0UL, 0UL, (Tensor?)null);
        var kept = activated;
        if (training && dropout > 0f)
        {
            (p, seed) = (dropout, generator.Seed);
            (offset, offsetBase) = generator.NextOnDevice();
            kept = activated.EmptyLike();
            ctx.Ops.Dropout(activated, kept, p, seed, offset, offsetBase);
        }

        var second = new LinearLayer(nameof(Mlp), kept, fc2Weight, fc2Bias, DType.Float32);
        var y = second.Output();
        second.Forward(y);
        return Record(nameof(Mlp), y, [product, fc1Bias, fc2Weight, fc2Bias], (g, sink) =>
        {
            using var gm = second.OutputGradient(g);
            second.ParameterGradients(gm, g, sink.Target(2), sink.Target(3));
            var dbias = sink.Target(1);
            void ThroughGelu(Tensor dProduct)
            {
                using var pm = second.Matrix(product, second.In);
                using var dm = second.Matrix(dProduct, second.In);
                ctx.Ops.LinearGeluBackward(gm, second.Weight, pm, fc1Bias, p, seed, offset, offsetBase, dm, dbias);
            }

            if (sink.Wants(0))
            {
                sink.Write(0, ThroughGelu);
            }
            else if (dbias.Tensor is not null)
            {
                using var dProduct = product.EmptyLike();
                ThroughGelu(dProduct);
            }
        });
    }

    /// <summary>
    /// The MLP's first layer computed by <see cref="Ops.LinearGelu"/>: its product, recorded as a linear node, and
    /// gelu(product + bias), for the caller to record (or not).
    /// </summary>
    private static (Tensor Product, Tensor Y) FirstLayer(Tensor x, Tensor weight, Tensor? bias, DType output)
    {
        var layer = new LinearLayer(nameof(LinearGelu), x, weight, null, output);
        var product = layer.Output();
        var y = product.EmptyLike();
        using (var pm = layer.Matrix(product, layer.Out))
        using (var ym = layer.Matrix(y, layer.Out))
        {
            x.Context.Ops.LinearGelu(layer.XMatrix, layer.Weight, bias, pm, ym);
        }

        return (RecordLinear(layer, product), y);
    }

    /// <summary>A linear layer's node: dx through the layer's weight, then its parameter gradients.</summary>
    private static Tensor RecordLinear(LinearLayer layer, Tensor y) =>
        Record(nameof(Linear), y, [layer.Input, layer.MasterWeight, layer.Bias], (g, sink) =>
        {
            using var gm = layer.OutputGradient(g);
            if (sink.Target(0) is { Tensor: { } dx } tx)
            {
                using var dxm = layer.Matrix(dx, layer.In);
                layer.Product(gm, layer.Weight, dxm, transB: false, tx.Accumulate ? 1f : 0f, null);
            }

            layer.ParameterGradients(gm, g, sink.Target(1), sink.Target(2));
        });

    /// <summary>
    /// One linear layer's shapes and operands: x [*, in] with weight [out, in], or x [G, *, in] with [G, out, in]
    /// (branches as one batch, each with its own weight: strided-batched GEMMs, parameter gradients per group). Under
    /// <see cref="Autocast"/>, for a bf16 x or a bf16 output, the operands are bf16 (x itself when it is already, the
    /// weight cast outside autograd; gradients flow to the float32 originals).
    /// </summary>
    private sealed class LinearLayer
    {
        private readonly ComputeContext _ctx;
        private readonly int _groups;
        private readonly int _rows;
        private readonly DType _output;

        public LinearLayer(string op, Tensor x, Tensor weight, Tensor? bias, DType output)
        {
            var grouped = weight.Rank == 3;
            (_groups, Out, In) = grouped ? (weight.Shape[0], weight.Shape[1], weight.Shape[2]) : (1, weight.Shape[0], weight.Rank == 2 ? weight.Shape[1] : -1);
            if (grouped ? x.Rank < 2 || x.Shape[0] != _groups || x.Shape[-1] != In : weight.Rank != 2 || x.Rank < 1 || x.Shape[-1] != In)
            {
                throw new TensorOpException(op, grouped
                    ? $"x {x.Shape} does not fit grouped weight {weight.Shape} (expected [{_groups}, *, {In}])"
                    : $"x {x.Shape} does not fit weight {weight.Shape} (expected [*, {In}])");
            }

            (_ctx, Input, MasterWeight, Bias, _rows) = (x.Context, x, weight, bias, (int)(x.NumElements / _groups / In));
            Bf16 = Autocast.IsEnabled || x.DType == DType.BFloat16 || output == DType.BFloat16;
            _output = Bf16 ? output : DType.Float32;
            X = Bf16 && x.DType != DType.BFloat16 ? ToBf16(x) : x;
            Weight = Bf16 ? ToBf16(weight) : weight;
            // A view taken now keeps x's memory for backward, even if the caller disposes x in between.
            XMatrix = Matrix(X, In);
        }

        public int In { get; }

        public int Out { get; }

        /// <summary>Whether the products run on bf16 operands.</summary>
        public bool Bf16 { get; }

        /// <summary>x as the caller gave it (autograd's input).</summary>
        public Tensor Input { get; }

        /// <summary>The weight as the caller gave it (autograd's input).</summary>
        public Tensor MasterWeight { get; }

        public Tensor? Bias { get; }

        /// <summary>x as the products read it.</summary>
        public Tensor X { get; }

        /// <summary>The weight as the products read it.</summary>
        public Tensor Weight { get; }

        /// <summary><see cref="X"/> as a matrix.</summary>
        public Tensor XMatrix { get; }

        /// <summary>A new output [*, out], of the output dtype (float32 unless the products are bf16).</summary>
        public Tensor Output()
        {
            var dims = Input.Shape.AsSpan().ToArray();
            dims[^1] = Out;
            return Tensor.Empty(new Shape(dims), _output, _ctx);
        }

        /// <summary>t [*, features] as the [rows, features] (or [G, rows, features]) matrix the GEMMs take.</summary>
        public Tensor Matrix(Tensor t, int features) => MasterWeight.Rank == 3 ? t.View(_groups, _rows, features) : t.View(_rows, features);

        /// <summary>y = x·Wᵀ + bias.</summary>
        public void Forward(Tensor y)
        {
            using var ym = Matrix(y, Out);
            Product(XMatrix, Weight, ym, transB: true, 0f, Bias);
        }

        public void Product(Tensor a, Tensor b, Tensor c, bool transB, float beta, Tensor? add)
        {
            if (MasterWeight.Rank == 3)
            {
                _ctx.Ops.BatchedGemm(a, b, c, transB: transB, beta: beta, bias: add);
            }
            else
            {
                _ctx.Ops.Gemm(a, b, c, transB: transB, beta: beta, bias: add);
            }
        }

        /// <summary>The output gradient as the products read it, as a matrix: bf16 for bf16 products.</summary>
        public Tensor OutputGradient(Tensor g)
        {
            if (!Bf16 || g.DType == DType.BFloat16)
            {
                return Matrix(g, Out);
            }

            using var low = ToBf16(g);
            return Matrix(low, Out);
        }

        /// <summary>
        /// dW (+)= gᵀ·x from the output gradient <paramref name="gm"/> as the products read it; dbias (+)= the column sums of
        /// the output gradient <paramref name="g"/> as it arrived (fused into the weight gradient where both are float32).
        /// </summary>
        public void ParameterGradients(Tensor gm, Tensor g, GradOut dw, GradOut dbias)
        {
            if (!Bf16)
            {
                _ctx.Ops.WeightGrad(gm, XMatrix, dw, dbias);
                return;
            }

            _ctx.Ops.WeightGrad(gm, XMatrix, dw, GradOut.None);
            if (dbias.Tensor is not null)
            {
                using var rows = Matrix(g, Out);
                _ctx.Ops.SumRows(rows, dbias);
            }
        }

        /// <summary>A bf16 copy outside autograd.</summary>
        private static Tensor ToBf16(Tensor t)
        {
            var copy = Tensor.Empty(t.Shape, DType.BFloat16, t.Context);
            t.Context.Ops.Cast(t, copy);
            return copy;
        }
    }
}
