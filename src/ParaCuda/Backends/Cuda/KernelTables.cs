using System.Runtime.InteropServices;

namespace ParaCuda.Backends.Cuda;

/// <summary>
/// Host mirrors of the structs that multi-tensor kernels read (one launch over many tensors): field order,
/// sizes and padding match <c>TensorSlice</c> in kernels/reductions.cu and <c>AdamSlice</c> in
/// kernels/adam.cu on every 64-bit CUDA host.
/// </summary>
internal static class KernelTables
{
    /// <summary>Elements each block of a multi-tensor launch covers (256 threads, 16 elements each).</summary>
    public const long ElementsPerBlock = 4096;

    /// <summary>Blocks for <paramref name="count"/> elements, and so the next tensor's first block.</summary>
    public static int Blocks(long count) => (int)Math.Max((count + ElementsPerBlock - 1) / ElementsPerBlock, 1);
}

[StructLayout(LayoutKind.Sequential)]
internal struct TensorSlice
{
    public ulong Data;
    public long Count;
    public int FirstBlock;
    public int Pad;
    public ulong Out;
}

[StructLayout(LayoutKind.Sequential)]
internal struct AdamSlice
{
    public ulong Param;
    public ulong Grad;
    public ulong M;
    public ulong V;
    public ulong Step;
    public long Count;
    public int FirstBlock;
    public int Pad;
}
