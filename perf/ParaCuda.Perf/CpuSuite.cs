using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Perf;

/// <summary>
/// The CPU backend at the shapes a ParaFormer batch makes (S1: 28×28 images, patch 4 → 50 tokens,
/// width 192, 3 heads, MLP 768): GEMMs against the FMA ceiling, memory-bound ops against the copy
/// ceiling, and a whole Transformer block against the time of its own GEMMs.
/// </summary>
public sealed class CpuSuite(double budgetSeconds)
{
    private const int Sets = 4;
    private const int Dim = 192, Heads = 3, Tokens = 50, Mlp = 768;
    private readonly List<Result> _results = [];

    public IReadOnlyList<Result> Run(double fmaGflops, double copyGBps)
    {
        using var scope = TensorScope.Begin();
        var ops = CpuBackend.Instance.DefaultContext.Ops;

        // The two shapes (m×n×k: 256 images, and 256 images × 50 tokens) in forward (NT), input-gradient (NN)
        // and weight-gradient (TN) form, plus the block's qkv projection.
        foreach (var (m, n, k) in new[] { (256, 768, 192), (256, 192, 768), (12800, 768, 192), (12800, 192, 768), (3200, 576, 192) })
        {
            foreach (var (ta, tb, label) in new[] { (false, true, "NT"), (false, false, "NN"), (true, false, "TN") })
            {
                Gemm(ops, m, n, k, ta, tb, label, fmaGflops);
            }
        }

        const int batch = 64, rows = batch * Tokens;
        Memory("LayerNorm fwd", $"[{rows}, {Dim}]", 2.0 * rows * Dim * 4, copyGBps, i =>
        {
            var x = Input(new Shape(rows, Dim), i);
            return () => ops.LayerNorm(x.T, x.Gamma, x.Beta, 1e-5f, x.Y, x.Mean, x.Rstd);
        });
        Memory("LayerNorm bwd", $"[{rows}, {Dim}]", 3.0 * rows * Dim * 4, copyGBps, i =>
        {
            var x = Input(new Shape(rows, Dim), i);
            ops.LayerNorm(x.T, x.Gamma, x.Beta, 1e-5f, x.Y, x.Mean, x.Rstd);
            return () => ops.LayerNormBackward(x.Y, x.T, x.Gamma, x.Mean, x.Rstd, x.Dx, new GradOut(x.Dg), new GradOut(x.Db));
        });
        Memory("BiasGelu fwd", $"[{rows}, {Mlp}]", 2.0 * rows * Mlp * 4, copyGBps, i =>
        {
            var (x, y) = (Random(new Shape(rows, Mlp), i), Tensor.Empty(new Shape(rows, Mlp)));
            var b = Random(new Shape(Mlp), i + 100);
            return () => ops.BiasGelu(x, b, y);
        });
        Memory("BiasGelu bwd", $"[{rows}, {Mlp}]", 3.0 * rows * Mlp * 4, copyGBps, i =>
        {
            var (x, dy, dx) = (Random(new Shape(rows, Mlp), i), Random(new Shape(rows, Mlp), i + 50), Tensor.Empty(new Shape(rows, Mlp)));
            var (b, db) = (Random(new Shape(Mlp), i + 100), Tensor.Empty(new Shape(Mlp)));
            return () => ops.BiasGeluBackward(x, b, dy, dx, new GradOut(db));
        });

        var attentionFlops = 4.0 * batch * Heads * Tokens * Tokens * (Dim / Heads);
        Compute("Attention fwd", $"B{batch} T{Tokens} H{Heads} Dh{Dim / Heads}", attentionFlops, fmaGflops, i =>
        {
            var (qkv, output, lse) = (Random(new Shape(batch, Tokens, 3 * Dim), i), Tensor.Empty(new Shape(batch, Tokens, Dim)), Tensor.Empty(new Shape(batch, Heads, Tokens)));
            return () => ops.Attention(qkv, Heads, output, lse);
        });
        Compute("Attention bwd", $"B{batch} T{Tokens} H{Heads} Dh{Dim / Heads}", 2.5 * attentionFlops, fmaGflops, i =>
        {
            var (qkv, output, lse) = (Random(new Shape(batch, Tokens, 3 * Dim), i), Tensor.Empty(new Shape(batch, Tokens, Dim)), Tensor.Empty(new Shape(batch, Heads, Tokens)));
            ops.Attention(qkv, Heads, output, lse);
            var (dout, dqkv) = (Random(output.Shape, i + 7), qkv.EmptyLike());
            return () => ops.AttentionBackward(qkv, output, dout, lse, Heads, dqkv);
        });

        Block(ops, batch, fmaGflops);
        return _results;
    }

    private void Gemm(Backends.Ops ops, int m, int n, int k, bool transA, bool transB, string label, double fmaGflops)
    {
        var a = Enumerable.Range(0, Sets).Select(i => Random(transA ? new Shape(k, m) : new Shape(m, k), i)).ToArray();
        var b = Enumerable.Range(0, Sets).Select(i => Random(transB ? new Shape(n, k) : new Shape(k, n), i + 10)).ToArray();
        var c = Tensor.Empty(new Shape(m, n));
        var stats = Timing.Measure(i => ops.Gemm(a[i % Sets], b[i % Sets], c, transA, transB), budgetSeconds);
        var flops = 2.0 * m * n * k;
        var rate = flops / (stats.MedianMs * 1e6);
        _results.Add(new Result("cpu", $"GEMM {label}", $"{m}×{n}×{k}", "f32", stats, flops, "GFLOP/s", rate, rate / fmaGflops));
    }

    private void Memory(string name, string shape, double bytes, double copyGBps, Func<int, Action> setup) =>
        Add(name, shape, bytes, "GB/s", copyGBps, setup);

    private void Compute(string name, string shape, double flops, double fmaGflops, Func<int, Action> setup) =>
        Add(name, shape, flops, "GFLOP/s", fmaGflops, setup);

    private void Add(string name, string shape, double work, string unit, double ceiling, Func<int, Action> setup)
    {
        var bodies = Enumerable.Range(0, Sets).Select(setup).ToArray();
        var stats = Timing.Measure(i => bodies[i % Sets](), budgetSeconds);
        var rate = work / (stats.MedianMs * 1e6);
        _results.Add(new Result("cpu", name, shape, "f32", stats, work, unit, rate, rate / ceiling));
    }

    /// <summary>One forward + backward of a training-mode block, against the same block's twelve GEMMs alone.</summary>
    private void Block(Backends.Ops ops, int batch, double fmaGflops)
    {
        var rows = batch * Tokens;
        using var block = new TransformerBlock(new BlockConfig(Dim, Heads, Mlp, Dropout: 0.1f), ModuleInit.Create(1));
        var inputs = Enumerable.Range(0, Sets).Select(i => Random(new Shape(batch, Tokens, Dim), i)).ToArray();
        var grads = Enumerable.Range(0, Sets).Select(i => Random(new Shape(batch, Tokens, Dim), i + 20)).ToArray();
        var stats = Timing.Measure(
            i =>
            {
                using var step = TensorScope.Begin();
                block.ZeroGrad();
                block.Forward(inputs[i % Sets]).Backward(grads[i % Sets]);
            },
            budgetSeconds);

        // (m, n, k) of the forward GEMMs: qkv, proj, fc1, fc2; each has an NN and a TN GEMM in backward.
        var shapes = new[] { (rows, 3 * Dim, Dim), (rows, Dim, Dim), (rows, Mlp, Dim), (rows, Dim, Mlp) };
        var flops = shapes.Sum(s => 6.0 * s.Item1 * s.Item2 * s.Item3) + (3.5 * 4.0 * batch * Heads * Tokens * Tokens * (Dim / Heads));
        var operands = shapes.Select(s => (X: Random(new Shape(s.Item1, s.Item3), 1), W: Random(new Shape(s.Item2, s.Item3), 2), Y: Random(new Shape(s.Item1, s.Item2), 3))).ToArray();
        var gemmStats = Timing.Measure(
            _ =>
            {
                foreach (var (x, w, y) in operands)
                {
                    ops.Gemm(x, w, y, transB: true);
                    ops.Gemm(y, w, x);
                    ops.Gemm(y, x, w, transA: true);
                }
            },
            budgetSeconds);
        var rate = flops / (stats.MedianMs * 1e6);
        _results.Add(new Result("cpu", "Transformer block fwd+bwd", $"B{batch} T{Tokens} D{Dim} H{Heads} M{Mlp}", "f32", stats, flops, "GFLOP/s", rate, rate / fmaGflops, "its 12 GEMMs alone", stats.MedianMs / gemmStats.MedianMs));
    }

    private static Tensor Random(Shape shape, int seed)
    {
        var rng = new Random(seed);
        var values = new float[shape.NumElements];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return Tensor.FromArray(values, shape);
    }

    private static NormInputs Input(Shape shape, int seed) => new(
        Random(shape, seed), Random(new Shape(shape[-1]), seed + 1), Random(new Shape(shape[-1]), seed + 2),
        Tensor.Empty(shape), Tensor.Empty(new Shape(shape[0])), Tensor.Empty(new Shape(shape[0])),
        Tensor.Empty(shape), Tensor.Empty(new Shape(shape[-1])), Tensor.Empty(new Shape(shape[-1])));

    private sealed record NormInputs(Tensor T, Tensor Gamma, Tensor Beta, Tensor Y, Tensor Mean, Tensor Rstd, Tensor Dx, Tensor Dg, Tensor Db);
}
