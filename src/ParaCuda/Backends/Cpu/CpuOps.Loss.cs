using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void CrossEntropyCore(Tensor logits, Tensor labels, Tensor losses)
    {
        var (n, classes) = (logits.Shape[0], logits.Shape[1]);
        float* pl = F(logits), ploss = F(losses);
        var py = CheckedLabels(nameof(CrossEntropy), labels, classes);
        CpuParallel.For(n, classes * 4, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                var row = new ReadOnlySpan<float>(pl + ((long)r * classes), classes);
                ploss[r] = LogSumExp(row) - row[py[r]];
            }
        });
    }

    protected override void CrossEntropyBackwardCore(Tensor logits, Tensor labels, Tensor dLoss, float scale, Tensor dLogits)
    {
        var (n, classes) = (logits.Shape[0], logits.Shape[1]);
        float* pl = F(logits), pd = F(dLogits);
        var py = CheckedLabels(nameof(CrossEntropyBackward), labels, classes);
        var g = F(dLoss)[0] * scale;
        CpuParallel.For(n, classes * 4, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                var row = new ReadOnlySpan<float>(pl + ((long)r * classes), classes);
                var drow = new Span<float>(pd + ((long)r * classes), classes);
                TensorPrimitives.Subtract(row, LogSumExp(row), drow);
                TensorPrimitives.Exp(drow, drow);
                drow[py[r]] -= 1f;
                TensorPrimitives.Multiply(drow, g, drow);
            }
        });
    }

    protected override void SumAllCore(Tensor x, Tensor output, float scale, bool squareRoot)
    {
        var sum = Sum(F(x), x.NumElements, squares: false);
        F(output)[0] = (float)(squareRoot ? Math.Sqrt(sum) : sum * scale);
    }

    protected override void ArgmaxRowsCore(Tensor x, Tensor indices)
    {
        var (n, classes) = (x.Shape[0], x.Shape[1]);
        float* px = F(x);
        var pi = I(indices);
        CpuParallel.For(n, classes, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                pi[r] = Argmax(new ReadOnlySpan<float>(px + ((long)r * classes), classes));
            }
        });
    }

    protected override void CountCorrectCore(Tensor logits, Tensor labels, Tensor count)
    {
        var (n, classes) = (logits.Shape[0], logits.Shape[1]);
        var pl = F(logits);
        var py = I(labels);
        var correct = 0;
        for (var r = 0; r < n; r++)
        {
            if (Argmax(new ReadOnlySpan<float>(pl + ((long)r * classes), classes)) == py[r])
            {
                correct++;
            }
        }

        I(count)[0] = correct;
    }

    /// <summary>The first index of the maximum (NaN never wins, so a NaN row reports its first finite maximum).</summary>
    private static int Argmax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var j = 1; j < row.Length; j++)
        {
            if (row[j] > row[best] || float.IsNaN(row[best]))
            {
                best = j;
            }
        }

        return best;
    }

    private static float LogSumExp(ReadOnlySpan<float> row)
    {
        var max = TensorPrimitives.Max(row);
        var sum = 0f;
        foreach (var v in row)
        {
            sum += MathF.Exp(v - max);
        }

        return max + MathF.Log(sum);
    }

    /// <summary>The labels' pointer, after checking every label is a valid class index.</summary>
    private static int* CheckedLabels(string op, Tensor labels, int classes)
    {
        var py = I(labels);
        var n = Count(labels);
        for (var r = 0; r < n; r++)
        {
            if ((uint)py[r] >= (uint)classes)
            {
                throw new TensorOpException(op, $"labels[{r}] = {py[r]} is not a class index in [0, {classes})");
            }
        }

        return py;
    }
}
