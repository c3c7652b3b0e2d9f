using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace ParaCuda.Native;

/// <summary>What a cuBLASLt GEMM does after the product.</summary>
public enum LtEpilogue
{
    /// <summary>D = α·op(A)·op(B) + β·C + bias, the bias (one value per row of D) broadcast over D's columns.</summary>
    Bias = 4,

    /// <summary>D = α·op(A)·op(B) + β·C, and the vector gets Σ over k of op(B)[k, n], one value per column of D.</summary>
    BiasGradientB = 512,
}

/// <summary>
/// cuBLASLt, as much as ParaCuda uses: strided-batched float32/TF32 GEMMs with a bias or bias-gradient
/// epilogue (column-major, as cuBLAS has them). The algorithm for each shape comes from cuBLASLt's heuristic
/// once and is cached; a shape it has no algorithm for is reported, not run, so the caller can fall back.
/// </summary>
public static unsafe partial class CublasLt
{
    private const int Success = 0;
    private const int NotSupported = 15; // CUBLAS_STATUS_NOT_SUPPORTED
    private const int Float32 = 0; // CUDA_R_32F
    private const int DescTransA = 3;
    private const int DescTransB = 4;
    private const int DescEpilogue = 7;
    private const int DescBiasPointer = 8;
    private const int DescBiasBatchStride = 10;
    private const int LayoutBatchCount = 5;
    private const int LayoutBatchStride = 6;
    private const int PreferenceMaxWorkspace = 1;
    private const int PreferenceMinAlignmentA = 5; // then B, C and D: 6, 7, 8

    private static readonly Lazy<string?> s_unavailableReason = new(() =>
        NativeLibraries.TryLoad(NativeLibraries.CublasLt, out var tried) == IntPtr.Zero ? $"no cuBLASLt: none of {tried} could be loaded" : null);

    private static readonly ConcurrentDictionary<PlanKey, Plan?> s_plans = new();

    static CublasLt() => NativeLibraries.EnsureResolver();

    public static bool IsAvailable => s_unavailableReason.Value is null;

    public static IntPtr Create()
    {
        Check(cublasLtCreate(out var handle), "cublasLtCreate()");
        return handle;
    }

    public static void Destroy(IntPtr handle) => Check(cublasLtDestroy(handle), "cublasLtDestroy()");

    /// <summary>
    /// D[i] = C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] with <paramref name="epilogue"/> on <paramref name="vector"/>
    /// (batch i at vector + i·<paramref name="vectorStride"/> elements), in the workspace given, on
    /// <paramref name="stream"/>. False, having run nothing, when cuBLASLt has no algorithm for it.
    /// </summary>
    public static bool Matmul(
        IntPtr handle, bool transA, bool transB, int m, int n, int k, float alpha,
        ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float beta,
        ulong c, int ldc, long strideC, int batch, BlasCompute compute,
        LtEpilogue epilogue, ulong vector, long vectorStride, ulong workspace, long workspaceBytes, IntPtr stream)
    {
        // The heuristic's choice depends on the pointers' alignment as well as on the shapes: the largest power of
        // two up to 16 that divides them all (this runs for every GEMM with an epilogue, so no allocation).
        var any = a | b | c | vector | 16UL;
        var alignment = (int)(any & (~any + 1));
        var key = new PlanKey(handle, transA, transB, m, n, k, lda, strideA, ldb, strideB, ldc, strideC, batch, compute, epilogue, vectorStride, alignment, workspaceBytes);
        var plan = s_plans.GetOrAdd(key, _ => Plan.Find(key, vector));
        if (plan is null)
        {
            return false;
        }

        if (plan.Run(handle, alpha, a, b, beta, c, vector, workspace, workspaceBytes, stream))
        {
            return true;
        }

        // An algorithm the heuristic offered but the call refused: this shape goes the unfused way from now on.
        s_plans[key] = null;
        return false;
    }

    private static void Check(int status, string call)
    {
        if (status != Success)
        {
            var name = Marshal.PtrToStringAnsi(cublasLtGetStatusName(status)) ?? $"cuBLAS status {status}";
            throw new CudaException($"{name} in {call}", status);
        }
    }

    private readonly record struct PlanKey(
        IntPtr Handle, bool TransA, bool TransB, int M, int N, int K, int Lda, long StrideA, int Ldb, long StrideB, int Ldc, long StrideC,
        int Batch, BlasCompute Compute, LtEpilogue Epilogue, long VectorStride, int Alignment, long WorkspaceBytes);

    /// <summary>The descriptors of one shape and the algorithm the heuristic chose for it (kept for the process's life).</summary>
    private sealed class Plan
    {
        private IntPtr _desc;
        private IntPtr _layoutA;
        private IntPtr _layoutB;
        private IntPtr _layoutC;
        private Algo _algo;

        public static Plan? Find(PlanKey key, ulong vector)
        {
            var plan = new Plan();
            Check(cublasLtMatmulDescCreate(out plan._desc, (int)key.Compute, Float32), "cublasLtMatmulDescCreate()");
            int transA = key.TransA ? 1 : 0, transB = key.TransB ? 1 : 0;
            var epilogue = (uint)key.Epilogue;
            var stride = key.VectorStride;
            Set(plan._desc, DescTransA, &transA, sizeof(int));
            Set(plan._desc, DescTransB, &transB, sizeof(int));
            Set(plan._desc, DescEpilogue, &epilogue, sizeof(uint));
            Set(plan._desc, DescBiasPointer, &vector, sizeof(ulong));
            if (key.Batch > 1)
            {
                Set(plan._desc, DescBiasBatchStride, &stride, sizeof(long));
            }

            var (rowsA, colsA) = key.TransA ? (key.K, key.M) : (key.M, key.K);
            var (rowsB, colsB) = key.TransB ? (key.N, key.K) : (key.K, key.N);
            plan._layoutA = Layout(rowsA, colsA, key.Lda, key.StrideA, key.Batch);
            plan._layoutB = Layout(rowsB, colsB, key.Ldb, key.StrideB, key.Batch);
            plan._layoutC = Layout(key.M, key.N, key.Ldc, key.StrideC, key.Batch);
            Check(cublasLtMatmulPreferenceCreate(out var preference), "cublasLtMatmulPreferenceCreate()");
            try
            {
                var bytes = (ulong)key.WorkspaceBytes;
                Check(cublasLtMatmulPreferenceSetAttribute(preference, PreferenceMaxWorkspace, &bytes, sizeof(ulong)), "cublasLtMatmulPreferenceSetAttribute()");
                // The heuristic assumes 16-byte aligned operands unless told; views of a tensor may be less aligned.
                var alignment = (uint)key.Alignment;
                for (var operand = 0; operand < 4; operand++)
                {
                    Check(cublasLtMatmulPreferenceSetAttribute(preference, PreferenceMinAlignmentA + operand, &alignment, sizeof(uint)), "cublasLtMatmulPreferenceSetAttribute(alignment)");
                }

                HeuristicResult result;
                var found = 0;
                var status = cublasLtMatmulAlgoGetHeuristic(key.Handle, plan._desc, plan._layoutA, plan._layoutB, plan._layoutC, plan._layoutC, preference, 1, &result, &found);
                if (status != Success || found == 0 || result.State != Success)
                {
                    plan.Release();
                    return null;
                }

                plan._algo = result.Algo;
                return plan;
            }
            finally
            {
                Check(cublasLtMatmulPreferenceDestroy(preference), "cublasLtMatmulPreferenceDestroy()");
            }
        }

        /// <summary>Issues the GEMM; false, having issued nothing, when cuBLASLt refuses it as unsupported.</summary>
        public bool Run(IntPtr handle, float alpha, ulong a, ulong b, float beta, ulong c, ulong vector, ulong workspace, long workspaceBytes, IntPtr stream)
        {
            lock (this)
            {
                // The bias pointer lives in the descriptor: set per call, under the lock that keeps the descriptor to one caller.
                Set(_desc, DescBiasPointer, &vector, sizeof(ulong));
                var algo = _algo;
                var status = cublasLtMatmul(handle, _desc, &alpha, a, _layoutA, b, _layoutB, &beta, c, _layoutC, c, _layoutC, &algo, workspace, (nuint)workspaceBytes, stream);
                if (status == NotSupported)
                {
                    return false;
                }

                Check(status, "cublasLtMatmul()");
                return true;
            }
        }

        private static void Set(IntPtr desc, int attribute, void* value, int size) =>
            Check(cublasLtMatmulDescSetAttribute(desc, attribute, value, (nuint)size), $"cublasLtMatmulDescSetAttribute({attribute})");

        private static IntPtr Layout(int rows, int cols, int ld, long stride, int batch)
        {
            Check(cublasLtMatrixLayoutCreate(out var layout, Float32, (ulong)rows, (ulong)cols, ld), "cublasLtMatrixLayoutCreate()");
            if (batch > 1)
            {
                Check(cublasLtMatrixLayoutSetAttribute(layout, LayoutBatchCount, &batch, sizeof(int)), "cublasLtMatrixLayoutSetAttribute(batch count)");
                Check(cublasLtMatrixLayoutSetAttribute(layout, LayoutBatchStride, &stride, sizeof(long)), "cublasLtMatrixLayoutSetAttribute(batch stride)");
            }

            return layout;
        }

        private void Release()
        {
            foreach (var layout in new[] { _layoutA, _layoutB, _layoutC }.Where(l => l != IntPtr.Zero))
            {
                Check(cublasLtMatrixLayoutDestroy(layout), "cublasLtMatrixLayoutDestroy()");
            }

            Check(cublasLtMatmulDescDestroy(_desc), "cublasLtMatmulDescDestroy()");
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Algo
    {
        public fixed ulong Data[8];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct HeuristicResult
    {
        public Algo Algo;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtCreate(out IntPtr handle);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtDestroy(IntPtr handle);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial IntPtr cublasLtGetStatusName(int status);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulDescCreate(out IntPtr desc, int computeType, int scaleType);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulDescDestroy(IntPtr desc);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulDescSetAttribute(IntPtr desc, int attribute, void* value, nuint size);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatrixLayoutCreate(out IntPtr layout, int type, ulong rows, ulong cols, long ld);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatrixLayoutDestroy(IntPtr layout);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatrixLayoutSetAttribute(IntPtr layout, int attribute, void* value, nuint size);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulPreferenceCreate(out IntPtr preference);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulPreferenceDestroy(IntPtr preference);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulPreferenceSetAttribute(IntPtr preference, int attribute, void* value, nuint size);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmulAlgoGetHeuristic(
        IntPtr handle, IntPtr desc, IntPtr layoutA, IntPtr layoutB, IntPtr layoutC, IntPtr layoutD, IntPtr preference,
        int requested, HeuristicResult* results, int* found);

    [LibraryImport(NativeLibraries.CublasLt)]
    private static partial int cublasLtMatmul(
        IntPtr handle, IntPtr desc, float* alpha, ulong a, IntPtr layoutA, ulong b, IntPtr layoutB, float* beta,
        ulong c, IntPtr layoutC, ulong d, IntPtr layoutD, Algo* algo, ulong workspace, nuint workspaceBytes, IntPtr stream);
}
