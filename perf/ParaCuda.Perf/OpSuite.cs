using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Perf;

/// <summary>
/// The ops a Transformer block runs, at a workload's shapes, on one context: the block's GEMMs (forward NT,
/// input-gradient NN, weight-gradient TN) against the GEMM ceiling, memory-bound ops against the copy ceiling,
/// attention, and a whole block forward + backward against the time of its own GEMMs. Inputs are random and
/// rotate among four sets so that no repeat reads what the last one left in cache. On a backend in bf16 mixed
/// precision the activations (GEMM operands, GELU's and attention's inputs and outputs) are bf16, weight gradients
/// float32, and the block runs under Autocast, as a model would there.
/// </summary>
public sealed class OpSuite(ComputeContext context, string suite, double budgetSeconds)
{
    private const int Sets = 4;
    private readonly List<Result> _results = [];
    private readonly DType _activations = context.Backend.MixedPrecision ? DType.BFloat16 : DType.Float32;

    private string Label => _activations == DType.BFloat16 ? "bf16" : "f32";

    public IReadOnlyList<Result> Run(Workload w, int batch, double gemmGflops, double copyGBps)
    {
        using var scope = TensorScope.Begin();
        var ops = context.Ops;
        var rows = batch * w.Tokens;
        var shape = $"{w.Name} B{batch}";
        foreach (var (what, m, n, k) in new[] { ("qkv", rows, 3 * w.Dim, w.Dim), ("proj", rows, w.Dim, w.Dim), ("fc1", rows, w.Mlp, w.Dim), ("fc2", rows, w.Dim, w.Mlp) })
        {
            foreach (var (ta, tb, label) in new[] { (false, true, "NT"), (false, false, "NN"), (true, false, "TN") })
            {
                Gemm(ops, what, m, n, k, ta, tb, label, gemmGflops);
            }
        }

        // The MLP's two forward layers and its backward from fc2 to fc1's product, cuBLAS (with the bias+GELU, dropout
        // and bias+GELU backward kernels) against the hand-written tensor-core kernels (TF32 or bf16; fc1 with bias and
        // GELU in its epilogue, fc2 with its bias, the backward with dropout and GELU's derivative in its epilogue).
        // fc2's output is float32, as it joins the residual stream.
        if (context.Backend is Backends.Cuda.CudaBackend { Precision: not Backends.Cuda.GemmPrecision.Fp32 } cuda)
        {
            foreach (var (label, handWritten) in new[] { ("cuBLAS", false), ("hand-written", true) })
            {
                cuda.LinearKernels = handWritten ? Backends.Cuda.LinearKernels.HandWritten : Backends.Cuda.LinearKernels.Library;
                Compute($"Linear+GELU fc1, {label}", $"{rows}×{w.Mlp}×{w.Dim}", 2.0 * rows * w.Mlp * w.Dim, gemmGflops, i =>
                {
                    var x = Activation(new Shape(rows, w.Dim), i);
                    var (weight, bias) = (Activation(new Shape(w.Mlp, w.Dim), i + 30), Random(new Shape(w.Mlp), i + 40));
                    var (product, y) = (Empty(new Shape(rows, w.Mlp)), Empty(new Shape(rows, w.Mlp)));
                    return () => ops.LinearGelu(x, weight, bias, product, y);
                });
                Compute($"Linear fc2, {label}", $"{rows}×{w.Dim}×{w.Mlp}", 2.0 * rows * w.Dim * w.Mlp, gemmGflops, i =>
                {
                    var x = Activation(new Shape(rows, w.Mlp), i);
                    var (weight, bias) = (Activation(new Shape(w.Dim, w.Mlp), i + 30), Random(new Shape(w.Dim), i + 40));
                    var y = Tensor.Empty(new Shape(rows, w.Dim), DType.Float32, context);
                    return () => ops.Gemm(x, weight, y, transB: true, bias: bias);
                });
                Compute($"MLP backward fc2→dropout→GELU, {label}", $"{rows}×{w.Mlp}×{w.Dim}", 2.0 * rows * w.Mlp * w.Dim, gemmGflops, i =>
                {
                    var (dy, weight, pre) = (Activation(new Shape(rows, w.Dim), i), Activation(new Shape(w.Dim, w.Mlp), i + 30), Activation(new Shape(rows, w.Mlp), i + 50));
                    var (bias, dbias, dpre) = (Random(new Shape(w.Mlp), i + 40), Tensor.Empty(new Shape(w.Mlp), DType.Float32, context), Empty(new Shape(rows, w.Mlp)));
                    return () => ops.LinearGeluBackward(dy, weight, pre, bias, 0.1f, 1, 2, null, dpre, dbias);
                });
            }

            cuda.LinearKernels = Backends.Cuda.LinearKernels.Library;
        }

        // fc2's weight and bias gradients in one pass (cuBLASLt's bias-gradient epilogue on a GPU) and unfused.
        foreach (var (label, fused) in new[] { ("fused", true), ("GEMM + column sums", false) })
        {
            Compute($"Weight+bias grad fc2, {label}", $"{w.Dim}×{w.Mlp}×{rows}", 2.0 * rows * w.Dim * w.Mlp, gemmGflops, i =>
            {
                var (dy, x) = (Random(new Shape(rows, w.Dim), i), Random(new Shape(rows, w.Mlp), i + 20));
                var (dw, db) = (Tensor.Empty(new Shape(w.Dim, w.Mlp), DType.Float32, context), Tensor.Empty(new Shape(w.Dim), DType.Float32, context));
                return fused ? () => ops.WeightGrad(dy, x, dw, db) : () =>
                {
                    ops.Gemm(dy, x, dw, transA: true);
                    ops.SumRows(dy, db);
                };
            }, float32: true);
        }

        Memory("LayerNorm fwd", $"{shape} [{rows}, {w.Dim}]", 2.0 * rows * w.Dim * 4, copyGBps, i =>
        {
            var x = Input(new Shape(rows, w.Dim), i);
            return () => ops.LayerNorm(x.T, x.Gamma, x.Beta, 1e-5f, x.Y, x.Mean, x.Rstd);
        }, float32: true);
        Memory("LayerNorm bwd", $"{shape} [{rows}, {w.Dim}]", 3.0 * rows * w.Dim * 4, copyGBps, i =>
        {
            var x = Input(new Shape(rows, w.Dim), i);
            ops.LayerNorm(x.T, x.Gamma, x.Beta, 1e-5f, x.Y, x.Mean, x.Rstd);
            return () => ops.LayerNormBackward(x.Y, x.T, x.Gamma, x.Mean, x.Rstd, x.Dx, new GradOut(x.Dg), new GradOut(x.Db));
        }, float32: true);
        var size = _activations.SizeInBytes();
        Memory("BiasGelu fwd", $"{shape} [{rows}, {w.Mlp}]", 2.0 * rows * w.Mlp * size, copyGBps, i =>
        {
            var (x, y) = (Activation(new Shape(rows, w.Mlp), i), Empty(new Shape(rows, w.Mlp)));
            var b = Random(new Shape(w.Mlp), i + 100);
            return () => ops.BiasGelu(x, b, y);
        });
        Memory("BiasGelu bwd", $"{shape} [{rows}, {w.Mlp}]", 3.0 * rows * w.Mlp * size, copyGBps, i =>
        {
            var (x, dy, dx) = (Activation(new Shape(rows, w.Mlp), i), Activation(new Shape(rows, w.Mlp), i + 50), Empty(new Shape(rows, w.Mlp)));
            var (b, db) = (Random(new Shape(w.Mlp), i + 100), Tensor.Empty(new Shape(w.Mlp), DType.Float32, context));
            return () => ops.BiasGeluBackward(x, b, dy, dx, new GradOut(db));
        });

        var headDim = w.Dim / w.Heads;
        var attentionFlops = 4.0 * batch * w.Heads * w.Tokens * w.Tokens * headDim;
        var attention = $"{shape} T{w.Tokens} H{w.Heads} Dh{headDim}";
        Compute("Attention fwd", attention, attentionFlops, gemmGflops, i =>
        {
            var (qkv, output, lse) = (Activation(new Shape(batch, w.Tokens, 3 * w.Dim), i), Empty(new Shape(batch, w.Tokens, w.Dim)), Tensor.Empty(new Shape(batch, w.Heads, w.Tokens), DType.Float32, context));
            return () => ops.Attention(qkv, w.Heads, output, lse);
        });
        Compute("Attention bwd", attention, 2.5 * attentionFlops, gemmGflops, i =>
        {
            var (qkv, output, lse) = (Activation(new Shape(batch, w.Tokens, 3 * w.Dim), i), Empty(new Shape(batch, w.Tokens, w.Dim)), Tensor.Empty(new Shape(batch, w.Heads, w.Tokens), DType.Float32, context));
            ops.Attention(qkv, w.Heads, output, lse);
            var (dout, dqkv) = (Activation(output.Shape, i + 7), qkv.EmptyLike());
            return () => ops.AttentionBackward(qkv, output, dout, lse, w.Heads, dqkv);
        });

        Block(ops, w, batch, gemmGflops);
        return _results;
    }

    private void Gemm(Ops ops, string what, int m, int n, int k, bool transA, bool transB, string label, double gemmGflops)
    {
        var a = Enumerable.Range(0, Sets).Select(i => Activation(transA ? new Shape(k, m) : new Shape(m, k), i)).ToArray();
        var b = Enumerable.Range(0, Sets).Select(i => Activation(transB ? new Shape(n, k) : new Shape(k, n), i + 10)).ToArray();
        // A weight gradient (TN) is float32 whatever the activations.
        var c = transA ? Tensor.Empty(new Shape(m, n), DType.Float32, context) : Empty(new Shape(m, n));
        var stats = Timing.Measure(context, i => ops.Gemm(a[i % Sets], b[i % Sets], c, transA, transB), budgetSeconds);
        var flops = 2.0 * m * n * k;
        var rate = flops / (stats.MedianMs * 1e6);
        _results.Add(new Result(suite, $"GEMM {what} {label}", $"{m}×{n}×{k}", Label, stats, flops, "GFLOP/s", rate, rate / gemmGflops));
    }

    /// <summary>A memory-bound op; <paramref name="float32"/> when its tensors are float32 whatever the activations.</summary>
    private void Memory(string name, string shape, double bytes, double copyGBps, Func<int, Action> setup, bool float32 = false) =>
        Add(name, shape, bytes, "GB/s", copyGBps, setup, float32);

    private void Compute(string name, string shape, double flops, double gemmGflops, Func<int, Action> setup, bool float32 = false) =>
        Add(name, shape, flops, "GFLOP/s", gemmGflops, setup, float32);

    private void Add(string name, string shape, double work, string unit, double ceiling, Func<int, Action> setup, bool float32)
    {
        var bodies = Enumerable.Range(0, Sets).Select(setup).ToArray();
        var stats = Timing.Measure(context, i => bodies[i % Sets](), budgetSeconds);
        var rate = work / (stats.MedianMs * 1e6);
        _results.Add(new Result(suite, name, shape, float32 ? "f32" : Label, stats, work, unit, rate, rate / ceiling));
    }

    /// <summary>One forward + backward of a training-mode block, against the same block's twelve GEMMs alone.</summary>
    private void Block(Ops ops, Workload w, int batch, double gemmGflops)
    {
        var rows = batch * w.Tokens;
        using var block = new TransformerBlock(new BlockConfig(w.Dim, w.Heads, w.Mlp, Dropout: 0.1f), ModuleInit.Create(1, context));
        var inputs = Enumerable.Range(0, Sets).Select(i => Random(new Shape(batch, w.Tokens, w.Dim), i)).ToArray();
        var grads = Enumerable.Range(0, Sets).Select(i => Random(new Shape(batch, w.Tokens, w.Dim), i + 20)).ToArray();
        var stats = Timing.Measure(
            context,
            i =>
            {
                using var step = TensorScope.Begin();
                using var precision = Autocast.Bf16(context.Backend.MixedPrecision);
                block.ZeroGrad();
                block.Forward(inputs[i % Sets]).Backward(grads[i % Sets]);
            },
            budgetSeconds);

        // (m, n, k) of the forward GEMMs: qkv, proj, fc1, fc2; each has an NN and a TN GEMM in backward.
        var shapes = new[] { (rows, 3 * w.Dim, w.Dim), (rows, w.Dim, w.Dim), (rows, w.Mlp, w.Dim), (rows, w.Dim, w.Mlp) };
        var flops = shapes.Sum(s => 6.0 * s.Item1 * s.Item2 * s.Item3) + (3.5 * 4.0 * batch * w.Heads * w.Tokens * w.Tokens * (w.Dim / w.Heads));
        var operands = shapes.Select(s => (X: Activation(new Shape(s.Item1, s.Item3), 1), W: Activation(new Shape(s.Item2, s.Item3), 2), Y: Activation(new Shape(s.Item1, s.Item2), 3), Dw: Random(new Shape(s.Item2, s.Item3), 4))).ToArray();
        var gemmStats = Timing.Measure(
            context,
            _ =>
            {
                foreach (var (x, weight, y, dw) in operands)
                {
                    ops.Gemm(x, weight, y, transB: true);
                    ops.Gemm(y, weight, x);
                    ops.Gemm(y, x, dw, transA: true);
                }
            },
            budgetSeconds);
        var rate = flops / (stats.MedianMs * 1e6);
        _results.Add(new Result(suite, "Transformer block fwd+bwd", $"{w.Name} B{batch} T{w.Tokens} D{w.Dim} H{w.Heads} M{w.Mlp}", Label, stats, flops, "GFLOP/s", rate, rate / gemmGflops, "time over its 12 GEMMs alone", stats.MedianMs / gemmStats.MedianMs));
    }

    private Tensor Random(Shape shape, int seed) => Tensors.Random(shape, seed, context);

    /// <summary>A random activation, in the dtype activations have on this backend.</summary>
    private Tensor Activation(Shape shape, int seed)
    {
        var x = Random(shape, seed);
        if (_activations == DType.Float32)
        {
            return x;
        }

        var low = Empty(shape);
        context.Ops.Cast(x, low);
        x.Dispose();
        return low;
    }

    private Tensor Empty(Shape shape) => Tensor.Empty(shape, _activations, context);

    private NormInputs Input(Shape shape, int seed) => new(
        Random(shape, seed), Random(new Shape(shape[-1]), seed + 1), Random(new Shape(shape[-1]), seed + 2),
        Tensor.Empty(shape, DType.Float32, context), Tensor.Empty(new Shape(shape[0]), DType.Float32, context), Tensor.Empty(new Shape(shape[0]), DType.Float32, context),
        Tensor.Empty(shape, DType.Float32, context), Tensor.Empty(new Shape(shape[-1]), DType.Float32, context), Tensor.Empty(new Shape(shape[-1]), DType.Float32, context));

    private sealed record NormInputs(Tensor T, Tensor Gamma, Tensor Beta, Tensor Y, Tensor Mean, Tensor Rstd, Tensor Dx, Tensor Dg, Tensor Db);
}

/// <summary>Random inputs: benchmarks never time zeros (a GPU's power and a CPU's denormals both notice).</summary>
public static class Tensors
{
    public static Tensor Random(Shape shape, int seed, ComputeContext context)
    {
        var rng = new Random(seed);
        var values = new float[shape.NumElements];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return Tensor.FromArray(values, shape, context);
    }
}
