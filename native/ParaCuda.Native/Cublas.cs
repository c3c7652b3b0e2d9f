using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>How a float32 GEMM's products run (cublasComputeType_t); accumulation is float32 in each.</summary>
public enum BlasCompute
{
    /// <summary>CUBLAS_COMPUTE_32F: strict float32.</summary>
    Fp32 = 68,

    /// <summary>CUBLAS_COMPUTE_32F_FAST_16BF: operands rounded to bf16 for the tensor cores.</summary>
    Bf16 = 75,

    /// <summary>CUBLAS_COMPUTE_32F_FAST_TF32: operands rounded to TF32 for the tensor cores.</summary>
    Tf32 = 77,
}

/// <summary>A GEMM matrix's element type (cudaDataType_t).</summary>
public enum BlasType
{
    /// <summary>CUDA_R_32F.</summary>
    Float32 = 0,

    /// <summary>CUDA_R_16BF.</summary>
    BFloat16 = 14,
}

/// <summary>
/// cuBLAS, as much as ParaCuda uses: handles bound to a stream, a private workspace per handle (so results
/// do not depend on which stream ran first), and the strided-batched GEMM in float32, TF32 or bf16 compute, on float32 operands or bf16 ones (a float32 or bf16 product). Matrices are
/// column-major, as cuBLAS has them. Errors name the status and the call.
/// </summary>
public static unsafe partial class Cublas
{
    private const int Success = 0;
    private const int GemmDefault = -1; // CUBLAS_GEMM_DEFAULT

    private static readonly Lazy<string?> s_unavailableReason = new(() =>
        NativeLibraries.TryLoad(NativeLibraries.Cublas, out var tried) == IntPtr.Zero ? $"no cuBLAS: none of {tried} could be loaded" : null);

    static Cublas() => NativeLibraries.EnsureResolver();

    public static bool IsAvailable => s_unavailableReason.Value is null;

    public static string? UnavailableReason => s_unavailableReason.Value;

    /// <summary>cuBLAS's version as major.minor.patch, from a handle.</summary>
    public static string Version(IntPtr handle)
    {
        Check(cublasGetVersion_v2(handle, out var version), "cublasGetVersion()");
        return $"{version / 10000}.{version / 100 % 100}.{version % 100}";
    }

    /// <summary>A handle whose work goes on <paramref name="stream"/>, using <paramref name="workspaceBytes"/> bytes at <paramref name="workspace"/>.</summary>
    public static IntPtr Create(IntPtr stream, ulong workspace, long workspaceBytes)
    {
        Check(cublasCreate_v2(out var handle), "cublasCreate()");
        Check(cublasSetStream_v2(handle, stream), "cublasSetStream()");
        Check(cublasSetWorkspace_v2(handle, workspace, (nuint)workspaceBytes), $"cublasSetWorkspace({workspaceBytes} bytes)");
        return handle;
    }

    public static void Destroy(IntPtr handle) => Check(cublasDestroy_v2(handle), "cublasDestroy()");

    /// <summary>
    /// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i &lt; batch (column-major, cuBLAS's contract), A and B of
    /// type <paramref name="operands"/>, C of type <paramref name="output"/>; <paramref name="compute"/> says how the
    /// products run (accumulation is float32 in each).
    /// </summary>
    public static void GemmStridedBatched(
        IntPtr handle, bool transA, bool transB, int m, int n, int k, float alpha,
        ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float beta,
        ulong c, int ldc, long strideC, int batch, BlasCompute compute, BlasType operands, BlasType output) =>
        Check(
            cublasGemmStridedBatchedEx(handle, transA ? 1 : 0, transB ? 1 : 0, m, n, k, &alpha, a, (int)operands, lda, strideA, b, (int)operands, ldb, strideB, &beta, c, (int)output, ldc, strideC, batch, (int)compute, GemmDefault),
            $"cublasGemmStridedBatchedEx({(transA ? "T" : "N")}{(transB ? "T" : "N")}, m {m}, n {n}, k {k}, lda {lda}, ldb {ldb}, ldc {ldc}, batch {batch}, {compute}, {operands} → {output})");

    private static void Check(int status, string call)
    {
        if (status != Success)
        {
            var name = Marshal.PtrToStringAnsi(cublasGetStatusName(status)) ?? $"cuBLAS status {status}";
            throw new CudaException($"{name} in {call}", status);
        }
    }

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasCreate_v2(out IntPtr handle);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasDestroy_v2(IntPtr handle);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasSetStream_v2(IntPtr handle, IntPtr stream);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasSetWorkspace_v2(IntPtr handle, ulong workspace, nuint bytes);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasGetVersion_v2(IntPtr handle, out int version);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial IntPtr cublasGetStatusName(int status);

    [LibraryImport(NativeLibraries.Cublas)]
    private static partial int cublasGemmStridedBatchedEx(
        IntPtr handle, int transA, int transB, int m, int n, int k, float* alpha,
        ulong a, int aType, int lda, long strideA, ulong b, int bType, int ldb, long strideB, float* beta,
        ulong c, int cType, int ldc, long strideC, int batch, int computeType, int algorithm);
}
