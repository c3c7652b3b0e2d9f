using System.Globalization;
using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Models;

namespace ParaCuda.Training;

/// <summary>
/// Checks a request for memory (a model, a batch, an expansion) against what the devices have before anything
/// is allocated, so that an absurd request is one clear error rather than an exhausted machine. The estimates
/// are lower bounds (what is certainly needed: parameters, gradients and Adam's moments, and the activations a
/// step keeps for its backward), so a refused request could not have fit; one that passes may still not fit.
/// </summary>
public static class MemoryBudget
{
    /// <summary>Bytes the placement's devices can still give: the host's available memory beyond what this process uses, or each GPU's free memory plus what its allocator holds unused.</summary>
    public static long Available(Placement placement)
    {
        ArgumentNullException.ThrowIfNull(placement);
        long total = 0;
        foreach (var backend in placement.Backends)
        {
            total += backend is CudaBackend cuda
                ? cuda.Gpu.MemoryInfo().Free + (cuda.Memory.Reserved - cuda.Memory.Allocated)
                : Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - Environment.WorkingSet);
        }

        return total;
    }

    /// <summary>
    /// At least what training a model of <paramref name="config"/> on batches of <paramref name="batch"/> takes:
    /// 16 bytes a parameter (value, gradient, two moments) and, per image and block, the activations kept for the
    /// backward (the block's input and its LayerNorm, q, k, v and the attention output, the MLP's hidden layer
    /// before and after GELU, and the block's output).
    /// </summary>
    public static double ForTraining(ModelConfig config, long batch) =>
        (16.0 * config.ParameterCount()) + (batch * 4.0 * Blocks(config) * config.Tokens * ((6.0 * config.Dim) + (4.0 * Inner(config)) + (2.0 * config.MlpDim)));

    /// <summary>At least what inference on batches of <paramref name="batch"/> takes: the parameters, and one block's widest activation per image.</summary>
    public static double ForInference(ModelConfig config, long batch) =>
        (4.0 * config.ParameterCount()) + (batch * 4.0 * config.Tokens * Math.Max(3.0 * Inner(config), config.MlpDim));

    /// <summary>Throws <see cref="InsufficientMemoryException"/> naming the numbers when <paramref name="needed"/> bytes cannot fit.</summary>
    public static void Check(string what, double needed, Placement placement)
    {
        var available = Available(placement);
        if (needed > available)
        {
            throw new InsufficientMemoryException(string.Create(
                CultureInfo.InvariantCulture,
                $"{what} needs at least {Gib(needed)} GiB but {Describe(placement)} {(placement.Backends.Count > 1 ? "have" : "has")} {Gib(available)} GiB available"));
        }
    }

    private static long Blocks(ModelConfig c) => c.Kind == ModelKind.ParaFormer ? (long)c.Branches * c.BranchDepth : c.Depth;

    private static long Inner(ModelConfig c) => (long)c.Heads * (c.HeadDim == 0 ? c.Dim / Math.Max(c.Heads, 1) : c.HeadDim);

    private static string Gib(double bytes) => (bytes / (1L << 30)).ToString(bytes < 10L << 30 ? "F2" : "N0", CultureInfo.InvariantCulture);

    private static string Describe(Placement placement) => string.Join(" and ", placement.Backends.Select(b => b.Device.ToString()));
}
