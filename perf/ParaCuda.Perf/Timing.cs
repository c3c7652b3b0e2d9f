using System.Diagnostics;
using ParaCuda.Backends;

namespace ParaCuda.Perf;

/// <summary>Median and spread of repeated timings, in milliseconds.</summary>
public sealed record Stats(double MedianMs, double P10Ms, double P90Ms, int Repeats);

public static class Timing
{
    /// <summary>
    /// Runs <paramref name="body"/> (given the repeat index, so callers can rotate inputs) until it is warm,
    /// then times it repeatedly for about <paramref name="budgetSeconds"/> (at least <paramref name="minRepeats"/> times),
    /// each repeat as <paramref name="context"/> times its work (CUDA events on a GPU).
    /// </summary>
    public static Stats Measure(ComputeContext context, Action<int> body, double budgetSeconds = 1.0, int minRepeats = 5, int warmup = 3)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(body);
        for (var i = 0; i < warmup; i++)
        {
            body(i);
        }

        context.Synchronize();
        var samples = new List<double>();
        var total = Stopwatch.StartNew();
        for (var i = 0; samples.Count < minRepeats || total.Elapsed.TotalSeconds < budgetSeconds; i++)
        {
            var repeat = i;
            samples.Add(context.Time(() => body(repeat)));
            if (samples.Count >= 10_000)
            {
                break;
            }
        }

        samples.Sort();
        return new Stats(Percentile(samples, 0.5), Percentile(samples, 0.1), Percentile(samples, 0.9), samples.Count);
    }

    private static double Percentile(List<double> sorted, double q)
    {
        var position = q * (sorted.Count - 1);
        var lo = (int)Math.Floor(position);
        var hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (position - lo));
    }
}
