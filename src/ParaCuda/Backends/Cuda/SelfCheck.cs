using ParaCuda.Backends.Cpu;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda;

/// <summary>One op family of a <see cref="SelfCheck"/>: its largest relative error against the CPU, and the bound it must stay under.</summary>
public sealed record SelfCheckResult(string Ops, double Error, double Tolerance)
{
    public bool Passed => Error <= Tolerance;
}

/// <summary>
/// A check, in seconds, that a CUDA device computes what the CPU computes: every op of the op set on small
/// random inputs, forward and backward, on the device and on the CPU, compared by ‖device − cpu‖ / ‖cpu‖.
/// Device outputs start as NaN, so an element a kernel leaves unwritten fails. GEMMs and attention (whose two
/// products run on the tensor cores too) are held to TF32's rounding when the backend runs them in TF32,
/// everything else to float32's (1e-5); the ops on bf16 activations (mixed precision) to bf16's (1e-2).
/// </summary>
public static class SelfCheck
{
    private const double Float32 = 1e-5;
    private const double Tf32 = 5e-3;
    private const double Bf16 = 1e-2;

    public static IReadOnlyList<SelfCheckResult> Run(CudaBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        var gemm = backend.Precision switch
        {
            GemmPrecision.Tf32 => Tf32,
            GemmPrecision.Bf16 => Bf16,
            _ => Float32,
        };
        (string Name, double Tolerance, Func<Side, IEnumerable<Tensor>> Body)[] cases =
        [
            ("fill, copy (strided), add, scale", Float32, s =>
            {
                var x = s.Random(4, 5, 6);
                var filled = s.Out(7);
                s.Ops.Fill(filled, 1.5f);
                using var view = x.TransposeView(0, 2);
                var copy = s.Out(6, 5, 4);
                s.Ops.Copy(view, copy);
                var sum = s.Out(4, 5, 6);
                s.Ops.Add(x, s.Random(4, 5, 6), sum);
                s.Ops.Scale(sum, -0.5f, sum);
                return [filled, copy, sum];
            }),
            ("branch sum", Float32, s =>
            {
                var total = s.Out(3, 9, 8);
                s.Ops.SumMany(Enumerable.Range(0, 10).Select(_ => s.Random(3, 9, 8)).ToList(), total);
                return [total];
            }),
            ("bias + GELU, forward and backward", Float32, s =>
            {
                var (x, bias, dy) = (s.Random(33, 40), s.Random(40), s.Random(33, 40));
                var (y, dx, dbias) = (s.Out(33, 40), s.Out(33, 40), s.Out(40));
                s.Ops.BiasGelu(x, bias, y);
                s.Ops.BiasGeluBackward(x, bias, dy, dx, dbias);
                return [y, dx, dbias];
            }),
            ("dropout", Float32, s =>
            {
                var (y, shifted) = (s.Out(999), s.Out(999));
                s.Ops.Dropout(s.Random(999), y, 0.25f, 123, 4);
                s.Ops.Dropout(s.Random(999), shifted, 0.25f, 123, 4, offsetBase: s.Ints(5, 1));
                return [y, shifted];
            }),
            ("GEMM, batched GEMM", gemm, s =>
            {
                var (c1, c2) = (s.Out(17, 13), s.Random(17, 13));
                s.Ops.Gemm(s.Random(17, 21), s.Random(13, 21), c1, transB: true, bias: s.Random(13));
                s.Ops.Gemm(s.Random(21, 17), s.Random(21, 13), c2, transA: true, alpha: 0.5f, beta: 2f);
                var c3 = s.Out(3, 9, 7);
                s.Ops.BatchedGemm(s.Random(3, 9, 11), s.Random(3, 11, 7), c3);
                return [c1, c2, c3];
            }),
            ("bf16 activations: cast, GEMMs, GELU, dropout, attention", Bf16, s =>
            {
                var (x, bias) = (s.Low(s.Random(33, 40)), s.Random(24));
                var (y, y16) = (s.Out(33, 24), s.OutLow(33, 24));
                var w = s.Low(s.Random(24, 40));
                s.Ops.Gemm(x, w, y, transB: true, bias: bias);
                s.Ops.Gemm(x, w, y16, transB: true);
                var (gelu, dx, dbias, dropped) = (s.OutLow(33, 40), s.OutLow(33, 40), s.Out(40), s.OutLow(33, 40));
                var geluBias = s.Random(40);
                s.Ops.BiasGelu(x, geluBias, gelu);
                s.Ops.BiasGeluBackward(x, geluBias, s.Low(s.Random(33, 40)), dx, dbias);
                s.Ops.Dropout(x, dropped, 0.25f, 123, 4);
                var (dw, db) = (s.Out(24, 40), s.Out(24));
                s.Ops.WeightGrad(y16, x, dw, db);
                var qkv = s.Low(s.Random(2, 9, 3 * 2 * 32));
                var (output, lse, dqkv) = (s.OutLow(2, 9, 64), s.Out(2, 2, 9), s.OutLow(2, 9, 3 * 2 * 32));
                s.Ops.Attention(qkv, 2, output, lse);
                s.Ops.AttentionBackward(qkv, output, s.Low(s.Random(2, 9, 64)), lse, 2, dqkv);
                return [y, y16, gelu, dx, dbias, dropped, dw, db, output, lse, dqkv];
            }),
            ("column sums", Float32, s =>
            {
                var output = s.Out(24);
                s.Ops.SumRows(s.Random(70, 24), output);
                return [output];
            }),
            ("LayerNorm, forward and backward", Float32, s =>
            {
                var (x, gamma, beta, dy) = (s.Random(50, 48), s.Random(48), s.Random(48), s.Random(50, 48));
                var (y, mean, rstd) = (s.Out(50, 48), s.Out(50), s.Out(50));
                s.Ops.LayerNorm(x, gamma, beta, 1e-5f, y, mean, rstd);
                var (dx, dgamma, dbeta) = (s.Out(50, 48), s.Out(48), s.Out(48));
                s.Ops.LayerNormBackward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
                return [y, mean, rstd, dx, dgamma, dbeta];
            }),
            ("attention, forward and backward", gemm, s =>
            {
                var qkv = s.Random(2, 9, 3 * 2 * 32);
                var (output, lse) = (s.Out(2, 9, 64), s.Out(2, 2, 9));
                s.Ops.Attention(qkv, 2, output, lse);
                var dqkv = s.Out(2, 9, 3 * 2 * 32);
                s.Ops.AttentionBackward(qkv, output, s.Random(2, 9, 64), lse, 2, dqkv);
                return [output, lse, dqkv];
            }),
            ("cross-entropy, forward and backward; sum", Float32, s =>
            {
                var (logits, labels) = (s.Random(40, 10), s.Labels(40, 10));
                var losses = s.Out(40);
                s.Ops.CrossEntropy(logits, labels, losses);
                var loss = s.Out(1);
                s.Ops.SumAll(losses, loss, 1f / 40);
                var dlogits = s.Out(40, 10);
                s.Ops.CrossEntropyBackward(logits, labels, loss, 1f / 40, dlogits);
                return [losses, loss, dlogits];
            }),
            ("argmax, correct count", 0, s =>
            {
                var (logits, labels) = (s.Random(64, 10), s.Labels(64, 10));
                var (indices, count) = (s.Out(DType.Int32, 64), s.Out(DType.Int32, 1));
                s.Ops.ArgmaxRows(logits, indices);
                s.Ops.CountCorrect(logits, labels, count);
                return [indices, count];
            }),
            ("norms, clipping, Adam", Float32, s =>
            {
                List<Tensor> grads = [s.Random(300), s.Random(7, 9)];
                var norm = s.Out(1);
                s.Ops.GlobalNorm(grads, norm);
                s.Ops.ClipByNorm(grads, norm, 0.5f);
                List<Tensor> parameters = [s.Random(300), s.Random(7, 9)];
                List<Tensor> m = [s.Random(300), s.Random(7, 9)];
                List<Tensor> v = [s.Positive(300), s.Positive(7, 9)];
                List<Tensor> steps = [s.Ints(2), s.Ints(40)];
                s.Ops.AdamUpdate(parameters, grads, m, v, new AdamParameters(1f, WeightDecay: 0.01f, DecoupledWeightDecay: true), steps, s.Scalar(1e-3f));
                return [norm, .. grads, .. parameters, .. m, .. v, .. steps];
            }),
            ("image transform, patchify, tokens, pooling", Float32, s =>
            {
                var images = s.Out(2, 1, 28, 28);
                s.Ops.TransformImages(s.Bytes(2, 1, 30, 30), s.Draws(2), [1f / 51], [-2.5f], images);
                var patches = s.Out(2, 16, 49);
                s.Ops.Patchify(images, 7, patches);
                var tokens = s.Out(2, 17, 8);
                s.Ops.AssembleTokens(s.Random(2, 16, 8), s.Random(8), s.Random(17, 8), tokens);
                var (dpatch, dcls, dpos) = (s.Out(2, 16, 8), s.Out(8), s.Out(17, 8));
                s.Ops.AssembleTokensBackward(tokens, dpatch, dcls, dpos);
                var pooled = s.Out(2, 8);
                s.Ops.PoolTokens(tokens, Pooling.Mean, pooled);
                var dtokens = s.Out(2, 17, 8);
                s.Ops.PoolTokensBackward(pooled, Pooling.Mean, dtokens);
                return [images, patches, tokens, dpatch, dcls, dpos, pooled, dtokens];
            }),
        ];

        var results = new List<SelfCheckResult>();
        foreach (var (name, tolerance, body) in cases)
        {
            using var scope = TensorScope.Begin();
            var expected = body(new Side(CpuBackend.Instance.DefaultContext)).Select(Values).ToList();
            var actual = body(new Side(backend.DefaultContext)).Select(Values).ToList();
            var error = expected.Zip(actual, RelativeError).Max();
            results.Add(new SelfCheckResult(name, error, tolerance));
        }

        return results;
    }

    private static double[] Values(Tensor t) => t.DType switch
    {
        DType.Int32 => t.ToArray<int>().Select(v => (double)v).ToArray(),
        DType.BFloat16 => t.ToArray<ushort>().Select(v => (double)BFloat16.ToSingle(v)).ToArray(),
        _ => t.ToArray<float>().Select(v => (double)v).ToArray(),
    };

    private static double RelativeError(double[] expected, double[] actual)
    {
        double difference = 0, norm = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            if (!double.IsFinite(actual[i]))
            {
                return double.PositiveInfinity;
            }

            difference += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }

        return Math.Sqrt(difference / Math.Max(norm, double.Epsilon));
    }

    /// <summary>One side of the comparison: where tensors go, and the same random inputs on either side.</summary>
    private sealed class Side(ComputeContext context)
    {
        private int _seed;

        public Ops Ops => context.Ops;

        public Tensor Random(params int[] dims) => Tensor.FromArray(Values(dims, x => (float)((x * 2) - 1)), new Shape(dims), context);

        public Tensor Positive(params int[] dims) => Tensor.FromArray(Values(dims, x => (float)(x + 0.1)), new Shape(dims), context);

        public Tensor Ints(params int[] values) => Tensor.FromArray(values, new Shape(values.Length), context);

        public Tensor Scalar(float value) => Tensor.FromArray([value], new Shape(1), context);

        public Tensor Labels(int n, int classes)
        {
            var rng = new Random(++_seed);
            return Tensor.FromArray(Enumerable.Range(0, n).Select(_ => rng.Next(classes)).ToArray(), new Shape(n), context);
        }

        public Tensor Bytes(params int[] dims)
        {
            var bytes = new byte[new Shape(dims).NumElements];
            new Random(++_seed).NextBytes(bytes);
            return Tensor.FromArray(bytes, new Shape(dims), context);
        }

        public Tensor Draws(int n) => Tensor.FromArray(Enumerable.Range(0, n).SelectMany(i => new[] { i - 1, 2 - i, i % 2 }).ToArray(), new Shape(n, 3), context);

        public Tensor Out(params int[] dims) => Tensor.Full(new Shape(dims), float.NaN, DType.Float32, context);

        public Tensor Out(DType dtype, params int[] dims) => Tensor.Full(new Shape(dims), -7, dtype, context);

        public Tensor OutLow(params int[] dims) => Tensor.Full(new Shape(dims), float.NaN, DType.BFloat16, context);

        /// <summary>x cast to bf16.</summary>
        public Tensor Low(Tensor x)
        {
            var low = Tensor.Empty(x.Shape, DType.BFloat16, context);
            Ops.Cast(x, low);
            return low;
        }

        private float[] Values(int[] dims, Func<double, float> map)
        {
            var rng = new Random(++_seed);
            return Enumerable.Range(0, (int)new Shape(dims).NumElements).Select(_ => map(rng.NextDouble())).ToArray();
        }
    }
}
