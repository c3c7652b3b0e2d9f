using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.Support;

/// <summary>
/// The ops that take per-group parameters (a ParaFormer's branches batched: x [G, …, n] with γ, β or a bias [G, n]),
/// run once over all groups, and run group by group with plain [n] parameters on views; a backend must give
/// the same numbers both ways. Groups of 300 rows span several partial-sum blocks without filling the last.
/// </summary>
internal static class GroupedCase
{
    public const int Groups = 3, Rows = 300, Cols = 40, M = 13, N = 24, K = 19;

    public sealed record Inputs(Tensor X, Tensor Gamma, Tensor Beta, Tensor Dy, Tensor Bias, Tensor A, Tensor B, Tensor GemmBias);

    public sealed record Outputs(Tensor Y, Tensor Mean, Tensor Rstd, Tensor Dx, Tensor Dgamma, Tensor Dbeta, Tensor Gelu, Tensor GeluDx, Tensor Dbias, Tensor Sums, Tensor Gemm);

    public static Inputs Create() => new(
        Rand.Tensor(new Shape(Groups, Rows, Cols), 1, scale: 3),
        Rand.Tensor(new Shape(Groups, Cols), 2),
        Rand.Tensor(new Shape(Groups, Cols), 3),
        Rand.Tensor(new Shape(Groups, Rows, Cols), 4),
        Rand.Tensor(new Shape(Groups, Cols), 5),
        Rand.Tensor(new Shape(Groups, M, K), 6),
        Rand.Tensor(new Shape(Groups, N, K), 7),
        Rand.Tensor(new Shape(Groups, N), 8));

    /// <summary>Every op once over all groups, on <paramref name="context"/>.</summary>
    public static Outputs Grouped(ComputeContext context, Inputs input)
    {
        var i = On(context, input);
        var ops = context.Ops;
        var o = Allocate(context);
        ops.LayerNorm(i.X, i.Gamma, i.Beta, 1e-5f, o.Y, o.Mean, o.Rstd);
        ops.LayerNormBackward(i.Dy, i.X, i.Gamma, o.Mean, o.Rstd, o.Dx, o.Dgamma, o.Dbeta);
        ops.BiasGelu(i.X, i.Bias, o.Gelu);
        ops.BiasGeluBackward(i.X, i.Bias, i.Dy, o.GeluDx, o.Dbias);
        ops.SumRows(i.Dy, o.Sums);
        ops.BatchedGemm(i.A, i.B, o.Gemm, transB: true, bias: i.GemmBias);
        return o;
    }

    /// <summary>The same, one group at a time with plain parameters.</summary>
    public static Outputs PerGroup(ComputeContext context, Inputs input)
    {
        var i = On(context, input);
        var ops = context.Ops;
        var o = Allocate(context);
        for (var g = 0; g < Groups; g++)
        {
            Tensor Rows2(Tensor t) => t.NarrowView(g, 1).View(Rows, Cols);
            Tensor Row(Tensor t) => t.NarrowView(g, 1).View(t.Shape[1]);
            Tensor Stats(Tensor t) => t.NarrowView(g * Rows, Rows);
            ops.LayerNorm(Rows2(i.X), Row(i.Gamma), Row(i.Beta), 1e-5f, Rows2(o.Y), Stats(o.Mean), Stats(o.Rstd));
            ops.LayerNormBackward(Rows2(i.Dy), Rows2(i.X), Row(i.Gamma), Stats(o.Mean), Stats(o.Rstd), Rows2(o.Dx), Row(o.Dgamma), Row(o.Dbeta));
            ops.BiasGelu(Rows2(i.X), Row(i.Bias), Rows2(o.Gelu));
            ops.BiasGeluBackward(Rows2(i.X), Row(i.Bias), Rows2(i.Dy), Rows2(o.GeluDx), Row(o.Dbias));
            ops.SumRows(Rows2(i.Dy), Row(o.Sums));
            ops.Gemm(i.A.NarrowView(g, 1).View(M, K), i.B.NarrowView(g, 1).View(N, K), o.Gemm.NarrowView(g, 1).View(M, N), transB: true, bias: Row(i.GemmBias));
        }

        return o;
    }

    public static IEnumerable<(string Name, Tensor Tensor)> Named(Outputs o) =>
    [
        ("LayerNorm y", o.Y), ("mean", o.Mean), ("rstd", o.Rstd), ("LayerNorm dx", o.Dx), ("dgamma", o.Dgamma), ("dbeta", o.Dbeta),
        ("bias+GELU", o.Gelu), ("bias+GELU dx", o.GeluDx), ("dbias", o.Dbias), ("row sums", o.Sums), ("batched GEMM with bias", o.Gemm),
    ];

    private static Inputs On(ComputeContext context, Inputs i)
    {
        Tensor Up(Tensor t) => Tensor.FromArray(t.ToArray<float>(), t.Shape, context);
        return new(Up(i.X), Up(i.Gamma), Up(i.Beta), Up(i.Dy), Up(i.Bias), Up(i.A), Up(i.B), Up(i.GemmBias));
    }

    private static Outputs Allocate(ComputeContext context)
    {
        Tensor Nan(params int[] dims) => Tensor.Full(new Shape(dims), float.NaN, DType.Float32, context);
        return new(
            Nan(Groups, Rows, Cols), Nan(Groups * Rows), Nan(Groups * Rows), Nan(Groups, Rows, Cols), Nan(Groups, Cols), Nan(Groups, Cols),
            Nan(Groups, Rows, Cols), Nan(Groups, Rows, Cols), Nan(Groups, Cols), Nan(Groups, Cols), Nan(Groups, M, N));
    }
}
