using ParaCuda.Models;

namespace ParaCuda.Perf;

/// <summary>
/// A model shape the harness measures. S1: 28 px images, patch 4 (50 tokens), dim 192, 3 heads, MLP 768,
/// 6 branches × 1 block, batch 256. S2: the paper preset, 224 px, patch 16 (197 tokens), 8 branches × 2 blocks,
/// batch 500. Tiny: small enough for the emulated device and CI. PyTorch's side (perf/reference/bench.py)
/// defines the same three. <paramref name="SmallBatch"/>: a second batch the training step is also timed at
/// (S1 at 32, where the issue compares streams with serial; tiny at 4, so that CI runs that path).
/// </summary>
public sealed record Workload(string Name, int ImageSize, int Channels, int Patch, int Dim, int Heads, int Mlp, int Branches, int BranchDepth, int Batch, int? SmallBatch = null)
{
    public static Workload S1 { get; } = new("S1", 28, 1, 4, 192, 3, 768, 6, 1, 256, SmallBatch: 32);

    public static Workload S2 { get; } = new("S2", 224, 3, 16, 192, 3, 768, 8, 2, 500);

    public static Workload Tiny { get; } = new("tiny", 28, 1, 7, 32, 2, 64, 2, 1, 8, SmallBatch: 4);

    public int Tokens => (ImageSize / Patch * (ImageSize / Patch)) + 1;

    public ModelConfig Model => new()
    {
        ImageSize = ImageSize,
        Channels = Channels,
        Patch = Patch,
        Classes = 10,
        Dim = Dim,
        Heads = Heads,
        MlpDim = Mlp,
        Branches = Branches,
        BranchDepth = BranchDepth,
        Depth = Branches * BranchDepth,
    };

    /// <summary>
    /// FLOPs and bytes of one training step (forward, backward, Adam) or one forward at <paramref name="batch"/>: the
    /// GEMMs and attention of every block, and at least the parameters (read, gradient, two moments) plus each
    /// block's activations (written forward, read backward) moved once. They give the two floors of a workload:
    /// FLOPs over the measured GEMM rate, bytes over the measured copy bandwidth.
    /// </summary>
    public (double Flops, double Bytes) Work(int batch, bool training)
    {
        var rows = (double)batch * Tokens;
        var headDim = Dim / Heads;
        var gemm = 2 * rows * ((3.0 * Dim * Dim) + (Dim * Dim) + (2.0 * Dim * Mlp));
        var attention = 4.0 * batch * Heads * Tokens * Tokens * headDim;
        var blocks = Branches * BranchDepth;
        var flops = blocks * (training ? (3 * gemm) + (3.5 * attention) : gemm + attention);
        var parameters = (double)Model.ParameterCount();
        var activations = blocks * rows * ((6.0 * Dim) + (4.0 * Dim) + (2.0 * Mlp));
        var bytes = 4 * (training ? (parameters * 8) + (activations * 3) : parameters + activations);
        return (flops, bytes);
    }

    public override string ToString() => Name;
}
