using ParaCuda.Tensors;

namespace ParaCuda.Tests.Support;

/// <summary>Random test inputs: uniform, never (near) zero, and exactly representable in float32.</summary>
internal static class Rand
{
    public static double[] Values(long n, int seed, double scale = 1.0)
    {
        var rng = new Random(seed);
        var values = new double[n];
        for (var i = 0; i < n; i++)
        {
            double v;
            do
            {
                v = ((rng.NextDouble() * 2) - 1) * scale;
            }
            while (Math.Abs(v) < 1e-3 * scale);

            values[i] = (float)v;
        }

        return values;
    }

    public static int[] Labels(int n, int classes, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(classes)).ToArray();
    }

    public static Tensor Tensor(double[] values, Shape shape, bool requiresGrad = false)
    {
        var t = ParaCuda.Tensors.Tensor.FromArray(values.Select(v => (float)v).ToArray(), shape);
        t.RequiresGrad = requiresGrad;
        return t;
    }

    public static Tensor Tensor(Shape shape, int seed, bool requiresGrad = false, double scale = 1.0) =>
        Tensor(Values(shape.NumElements, seed, scale), shape, requiresGrad);

    /// <summary>An output buffer filled with NaN, so an element the op forgets to write fails the comparison.</summary>
    public static Tensor Poisoned(Shape shape) => ParaCuda.Tensors.Tensor.Full(shape, float.NaN);

    public static double[] ToDoubles(this Tensor t) => t.ToArray<float>().Select(v => (double)v).ToArray();
}
