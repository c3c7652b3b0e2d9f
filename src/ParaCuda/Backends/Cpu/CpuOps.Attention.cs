using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    // Each (batch, head) pair is independent: its q, k, v are strided column blocks of qkv, read in
    // place by small GEMMs, and its slice of the output (or of dqkv) is written by nobody else.
    protected override void AttentionCore(Tensor qkv, int heads, Tensor output, Tensor? lse)
    {
        if (OnFloat32([qkv, output], [1], t => AttentionCore(t[0]!, heads, t[1]!, lse)))
        {
            return;
        }

        var (batch, t, d) = (qkv.Shape[0], qkv.Shape[1], qkv.Shape[2] / 3);
        var dh = d / heads;
        var scale = 1f / MathF.Sqrt(dh);
        float* pqkv = F(qkv), po = F(output), plse = OrNull(lse);
        CpuParallel.For(batch * heads, 4.0 * t * t * dh, (w0, w1) =>
        {
            var scores = new float[t * t];
            fixed (float* s = scores)
            {
                for (var w = w0; w < w1; w++)
                {
                    var (b, h) = Math.DivRem(w, heads);
                    var q = pqkv + ((long)b * t * 3 * d) + (h * dh);
                    CpuGemm.Multiply(t, t, dh, q, 3 * d, false, q + d, 3 * d, true, s, t, scale, 0f, null);
                    for (var i = 0; i < t; i++)
                    {
                        var logSum = SoftmaxRow(new Span<float>(s + ((long)i * t), t));
                        if (plse != null)
                        {
                            plse[(((long)b * heads) + h) * t + i] = logSum;
                        }
                    }

                    CpuGemm.Multiply(t, dh, t, s, t, false, q + (2 * d), 3 * d, false, po + ((long)b * t * d) + (h * dh), d, 1f, 0f, null);
                }
            }
        });
    }

    protected override void AttentionBackwardCore(Tensor qkv, Tensor output, Tensor dOutput, Tensor? lse, int heads, Tensor dQkv)
    {
        if (OnFloat32([qkv, output, dOutput, dQkv], [3], t => AttentionBackwardCore(t[0]!, t[1]!, t[2]!, lse, heads, t[3]!)))
        {
            return;
        }

        var (batch, t, d) = (qkv.Shape[0], qkv.Shape[1], qkv.Shape[2] / 3);
        var dh = d / heads;
        var scale = 1f / MathF.Sqrt(dh);
        float* pqkv = F(qkv), po = F(output), pdo = F(dOutput), plse = OrNull(lse), pdqkv = F(dQkv);
        CpuParallel.For(batch * heads, 10.0 * t * t * dh, (w0, w1) =>
        {
            var probs = new float[t * t];
            var dprobs = new float[t * t];
            fixed (float* p = probs, dp = dprobs)
            {
                for (var w = w0; w < w1; w++)
                {
                    var (b, h) = Math.DivRem(w, heads);
                    var q = pqkv + ((long)b * t * 3 * d) + (h * dh);
                    var k = q + d;
                    var v = q + (2 * d);
                    var o = po + ((long)b * t * d) + (h * dh);
                    var dout = pdo + ((long)b * t * d) + (h * dh);
                    var dq = pdqkv + ((long)b * t * 3 * d) + (h * dh);

                    // Rebuild P = exp(S - lse) from the saved log-sum-exp (or from scratch without it).
                    CpuGemm.Multiply(t, t, dh, q, 3 * d, false, k, 3 * d, true, p, t, scale, 0f, null);
                    for (var i = 0; i < t; i++)
                    {
                        var row = new Span<float>(p + ((long)i * t), t);
                        if (plse == null)
                        {
                            SoftmaxRow(row);
                        }
                        else
                        {
                            TensorPrimitives.Subtract(row, plse[(((long)b * heads) + h) * t + i], row);
                            TensorPrimitives.Exp(row, row);
                        }
                    }

                    // dP = dO·vᵀ, then dS = P ∘ (dP - rowsum(dO ∘ O)) in place of dP.
                    CpuGemm.Multiply(t, t, dh, dout, d, false, v, 3 * d, true, dp, t, 1f, 0f, null);
                    for (var i = 0; i < t; i++)
                    {
                        var delta = TensorPrimitives.Dot(new ReadOnlySpan<float>(dout + ((long)i * d), dh), new ReadOnlySpan<float>(o + ((long)i * d), dh));
                        var dsRow = new Span<float>(dp + ((long)i * t), t);
                        TensorPrimitives.Subtract(dsRow, delta, dsRow);
                        TensorPrimitives.Multiply(dsRow, new ReadOnlySpan<float>(p + ((long)i * t), t), dsRow);
                    }

                    CpuGemm.Multiply(t, dh, t, dp, t, false, k, 3 * d, false, dq, 3 * d, scale, 0f, null);
                    CpuGemm.Multiply(t, dh, t, dp, t, true, q, 3 * d, false, dq + d, 3 * d, scale, 0f, null);
                    CpuGemm.Multiply(t, dh, t, p, t, true, dout, d, false, dq + (2 * d), 3 * d, 1f, 0f, null);
                }
            }
        });
    }

    /// <summary>Replaces a row of scores by its softmax and returns log Σ exp(scores).</summary>
    private static float SoftmaxRow(Span<float> row)
    {
        var max = TensorPrimitives.Max(row);
        TensorPrimitives.Subtract(row, max, row);
        TensorPrimitives.Exp(row, row);
        var sum = TensorPrimitives.Sum(row);
        TensorPrimitives.Multiply(row, 1f / sum, row);
        return max + MathF.Log(sum);
    }
}
