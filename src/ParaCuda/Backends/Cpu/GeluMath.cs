using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ParaCuda.Backends.Cpu;

/// <summary>
/// The exact (erf) GELU that PyTorch uses by default: gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2)),
/// gelu'(x) = Φ(x) + x·φ(x) with φ(x) = exp(-x²/2)/√(2π).
/// erf comes from erfc(z) = t·exp(-z² + P(t)), t = 1/(1 + z/2), z = |x|, a Chebyshev fit with relative
/// error below 1.2e-7 everywhere (Numerical Recipes §6.2), i.e. float32 rounding level; it needs only
/// exp, so it vectorizes.
/// </summary>
internal static class GeluMath
{
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float InvSqrt2Pi = 0.39894228040143268f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x)
    {
        var z = MathF.Abs(x);
        var t = 1f / (1f + (0.5f * z));
        var erfc = t * MathF.Exp((-z * z) + Poly(t));
        return MathF.CopySign(1f - erfc, x);
    }

    public static Vector256<float> Erf(Vector256<float> x)
    {
        var z = Vector256.Abs(x);
        var t = Vector256<float>.One / (Vector256<float>.One + (Vector256.Create(0.5f) * z));
        var erfc = t * Vector256.Exp(Poly(t) - (z * z));
        return Vector256.CopySign(Vector256<float>.One - erfc, x);
    }

    public static float Gelu(float x) => 0.5f * x * (1f + Erf(x * InvSqrt2));

    public static float GeluGrad(float x) => (0.5f * (1f + Erf(x * InvSqrt2))) + (x * InvSqrt2Pi * MathF.Exp(-0.5f * x * x));

    /// <summary>y[i] = gelu(x[i] + bias[i]) over one row (bias may be empty).</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, Span<float> y)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var half = Vector256.Create(0.5f);
            var invSqrt2 = Vector256.Create(InvSqrt2);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(x.Slice(i, Vector256<float>.Count));
                if (!bias.IsEmpty)
                {
                    v += Vector256.Create(bias.Slice(i, Vector256<float>.Count));
                }

                (half * v * (Vector256<float>.One + Erf(v * invSqrt2))).CopyTo(y.Slice(i));
            }
        }

        for (; i < x.Length; i++)
        {
            y[i] = Gelu(x[i] + (bias.IsEmpty ? 0f : bias[i]));
        }
    }

    /// <summary>dx[i] = dy[i]·gelu'(x[i] + bias[i]) over one row (bias may be empty).</summary>
    public static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, ReadOnlySpan<float> dy, Span<float> dx)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var half = Vector256.Create(0.5f);
            var invSqrt2 = Vector256.Create(InvSqrt2);
            var invSqrt2Pi = Vector256.Create(InvSqrt2Pi);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(x.Slice(i, Vector256<float>.Count));
                if (!bias.IsEmpty)
                {
                    v += Vector256.Create(bias.Slice(i, Vector256<float>.Count));
                }

                var cdf = half * (Vector256<float>.One + Erf(v * invSqrt2));
                var pdf = invSqrt2Pi * Vector256.Exp(-half * v * v);
                (Vector256.Create(dy.Slice(i, Vector256<float>.Count)) * (cdf + (v * pdf))).CopyTo(dx.Slice(i));
            }
        }

        for (; i < x.Length; i++)
        {
            dx[i] = dy[i] * GeluGrad(x[i] + (bias.IsEmpty ? 0f : bias[i]));
        }
    }

    // P(t) coefficients, highest power first.
    private static ReadOnlySpan<float> Coefficients =>
        [0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Poly(float t)
    {
        var c = Coefficients;
        var p = c[0];
        for (var i = 1; i < c.Length; i++)
        {
            p = MathF.FusedMultiplyAdd(p, t, c[i]);
        }

        return p;
    }

    private static Vector256<float> Poly(Vector256<float> t)
    {
        var c = Coefficients;
        var p = Vector256.Create(c[0]);
        for (var i = 1; i < c.Length; i++)
        {
            p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(c[i]));
        }

        return p;
    }
}
