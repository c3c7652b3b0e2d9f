namespace ParaCuda.Tests.Support;

/// <summary>Comparisons by relative error ‖actual − expected‖ / ‖expected‖ (NaN never passes).</summary>
internal static class Close
{
    public static double RelativeError(IReadOnlyList<double> actual, IReadOnlyList<double> expected)
    {
        Assert.That(actual, Has.Count.EqualTo(expected.Count), "length");
        double num = 0, den = 0;
        for (var i = 0; i < actual.Count; i++)
        {
            if (!double.IsFinite(actual[i]))
            {
                return double.PositiveInfinity;
            }

            num += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            den += expected[i] * expected[i];
        }

        return den == 0 ? Math.Sqrt(num) : Math.Sqrt(num / den);
    }

    public static void Check(IReadOnlyList<double> actual, IReadOnlyList<double> expected, double tolerance, string what)
    {
        var error = RelativeError(actual, expected);
        if (error <= tolerance)
        {
            return;
        }

        var worst = 0;
        for (var i = 1; i < actual.Count; i++)
        {
            if (!double.IsFinite(actual[i]) || Math.Abs(actual[i] - expected[i]) > Math.Abs(actual[worst] - expected[worst]))
            {
                worst = i;
                if (!double.IsFinite(actual[i]))
                {
                    break;
                }
            }
        }

        Assert.Fail($"{what}: relative error {error:E2} > {tolerance:E1}; worst element [{worst}] = {actual[worst]:G9}, expected {expected[worst]:G9}");
    }

    public static void Check(float[] actual, IReadOnlyList<double> expected, double tolerance, string what) =>
        Check(actual.Select(v => (double)v).ToArray(), expected, tolerance, what);
}
