namespace ParaCuda.Tests.Support;

/// <summary>Central finite differences in float64, the ground truth for every backward.</summary>
internal static class FiniteDifference
{
    /// <summary>∂loss/∂x[i] for every i, by (loss(x + h·eᵢ) − loss(x − h·eᵢ)) / 2h.</summary>
    public static double[] Gradient(Func<double[], double> loss, double[] x, double h = 1e-6)
    {
        var grad = new double[x.Length];
        var probe = (double[])x.Clone();
        for (var i = 0; i < x.Length; i++)
        {
            probe[i] = x[i] + h;
            var up = loss(probe);
            probe[i] = x[i] - h;
            var down = loss(probe);
            probe[i] = x[i];
            grad[i] = (up - down) / (2 * h);
        }

        return grad;
    }

    /// <summary>Σ weights · values: turns a vector-valued function into the scalar a gradient check needs.</summary>
    public static double Dot(double[] weights, double[] values)
    {
        var s = 0.0;
        for (var i = 0; i < values.Length; i++)
        {
            s += weights[i] * values[i];
        }

        return s;
    }
}
