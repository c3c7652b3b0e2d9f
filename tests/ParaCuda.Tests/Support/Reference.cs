using ParaCuda.Backends;

namespace ParaCuda.Tests.Support;

/// <summary>
/// Naive float64 versions of every op, written for clarity rather than speed: the ground truth that the
/// backends' forward outputs are compared with, and the functions finite differences are taken of.
/// </summary>
internal static class Reference
{
    /// <summary>alpha·op(A)·op(B) + beta·C + bias, row-major; A is m×k (k×m when transposed), B k×n (n×k).</summary>
    public static double[] Gemm(double[] a, double[] b, int m, int n, int k, bool transA = false, bool transB = false, double alpha = 1, double beta = 0, double[]? c = null, double[]? bias = null)
    {
        var result = new double[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var s = 0.0;
                for (var p = 0; p < k; p++)
                {
                    s += (transA ? a[(p * m) + i] : a[(i * k) + p]) * (transB ? b[(j * k) + p] : b[(p * n) + j]);
                }

                result[(i * n) + j] = (alpha * s) + (beta == 0 ? 0 : beta * c![(i * n) + j]) + (bias?[j] ?? 0);
            }
        }

        return result;
    }

    /// <summary>x [rows, in] · Wᵀ (W [out, in]) + b.</summary>
    public static double[] Linear(double[] x, double[] w, double[]? b, int rows, int inFeatures, int outFeatures) =>
        Gemm(x, w, rows, outFeatures, inFeatures, transB: true, bias: b);

    public static double[] LayerNorm(double[] x, double[] gamma, double[] beta, int rows, int cols, double eps = 1e-5)
    {
        var y = new double[x.Length];
        for (var r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * cols, cols);
            var mean = 0.0;
            foreach (var v in row)
            {
                mean += v;
            }

            mean /= cols;
            var variance = 0.0;
            foreach (var v in row)
            {
                variance += (v - mean) * (v - mean);
            }

            variance /= cols;
            for (var j = 0; j < cols; j++)
            {
                y[(r * cols) + j] = ((row[j] - mean) / Math.Sqrt(variance + eps) * gamma[j]) + beta[j];
            }
        }

        return y;
    }

    /// <summary>erf by its Taylor series below 2.5 and the continued fraction of erfc above; ~1e-14 accurate.</summary>
    public static double Erf(double x)
    {
        var z = Math.Abs(x);
        double result;
        if (z < 2.5)
        {
            double sum = 0, term = z;
            for (var n = 0; n < 200 && Math.Abs(term) > 1e-18; n++)
            {
                sum += term / ((2 * n) + 1);
                term *= -z * z / (n + 1);
            }

            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            var f = z;
            for (var k = 60; k >= 1; k--)
            {
                f = z + (k / 2.0 / f);
            }

            result = 1 - (Math.Exp(-z * z) / (Math.Sqrt(Math.PI) * f));
        }

        return Math.CopySign(result, x);
    }

    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>Per (batch, head): softmax(q·kᵀ/√Dh)·v on packed qkv [B, T, 3·H·Dh]; also returns lse [B, H, T].</summary>
    public static (double[] Output, double[] Lse) Attention(double[] qkv, int batch, int tokens, int heads, int headDim)
    {
        var d = heads * headDim;
        var output = new double[batch * tokens * d];
        var lse = new double[batch * heads * tokens];
        double At(int b, int t, int which, int h, int e) => qkv[(((b * tokens) + t) * 3 * d) + (which * d) + (h * headDim) + e];
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var i = 0; i < tokens; i++)
                {
                    var scores = new double[tokens];
                    for (var j = 0; j < tokens; j++)
                    {
                        for (var e = 0; e < headDim; e++)
                        {
                            scores[j] += At(b, i, 0, h, e) * At(b, j, 1, h, e);
                        }

                        scores[j] /= Math.Sqrt(headDim);
                    }

                    var max = scores.Max();
                    var sum = scores.Sum(s => Math.Exp(s - max));
                    lse[(((b * heads) + h) * tokens) + i] = max + Math.Log(sum);
                    for (var e = 0; e < headDim; e++)
                    {
                        var acc = 0.0;
                        for (var j = 0; j < tokens; j++)
                        {
                            acc += Math.Exp(scores[j] - max) / sum * At(b, j, 2, h, e);
                        }

                        output[(((b * tokens) + i) * d) + (h * headDim) + e] = acc;
                    }
                }
            }
        }

        return (output, lse);
    }

    /// <summary>Per-row losses logsumexp(row) − row[label].</summary>
    public static double[] CrossEntropy(double[] logits, int[] labels, int classes)
    {
        var losses = new double[labels.Length];
        for (var r = 0; r < labels.Length; r++)
        {
            var row = logits.AsSpan(r * classes, classes);
            var max = double.NegativeInfinity;
            foreach (var v in row)
            {
                max = Math.Max(max, v);
            }

            var sum = 0.0;
            foreach (var v in row)
            {
                sum += Math.Exp(v - max);
            }

            losses[r] = max + Math.Log(sum) - row[labels[r]];
        }

        return losses;
    }

    /// <summary>images [B, C, H, W] → [B, (H/p)(W/p), p·p·C] in the (p1, p2, c) feature order.</summary>
    public static double[] Patchify(double[] images, int batch, int channels, int height, int width, int patch)
    {
        var (rows, cols) = (height / patch, width / patch);
        var features = patch * patch * channels;
        var result = new double[batch * rows * cols * features];
        for (var b = 0; b < batch; b++)
        {
            for (var c = 0; c < channels; c++)
            {
                for (var y = 0; y < height; y++)
                {
                    for (var x = 0; x < width; x++)
                    {
                        var n = (y / patch * cols) + (x / patch);
                        var f = ((((y % patch) * patch) + (x % patch)) * channels) + c;
                        result[(((b * rows * cols) + n) * features) + f] = images[(((b * channels) + c) * height * width) + (y * width) + x];
                    }
                }
            }
        }

        return result;
    }

    public static double[] AssembleTokens(double[] patchEmbeddings, double[] cls, double[] positions, int batch, int patches, int dim)
    {
        var tokens = new double[batch * (patches + 1) * dim];
        for (var b = 0; b < batch; b++)
        {
            for (var t = 0; t <= patches; t++)
            {
                for (var j = 0; j < dim; j++)
                {
                    var source = t == 0 ? cls[j] : patchEmbeddings[(((b * patches) + t - 1) * dim) + j];
                    tokens[(((b * (patches + 1)) + t) * dim) + j] = source + positions[(t * dim) + j];
                }
            }
        }

        return tokens;
    }

    public static double[] PoolTokens(double[] x, int batch, int tokens, int dim, Pooling mode)
    {
        var result = new double[batch * dim];
        for (var b = 0; b < batch; b++)
        {
            for (var j = 0; j < dim; j++)
            {
                if (mode == Pooling.Cls)
                {
                    result[(b * dim) + j] = x[(b * tokens * dim) + j];
                    continue;
                }

                var s = 0.0;
                for (var t = 0; t < tokens; t++)
                {
                    s += x[(((b * tokens) + t) * dim) + j];
                }

                result[(b * dim) + j] = s / tokens;
            }
        }

        return result;
    }
}
