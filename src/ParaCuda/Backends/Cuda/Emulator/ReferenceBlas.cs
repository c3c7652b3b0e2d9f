using ParaCuda.Native;
using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cuda.Emulator;

/// <summary>
/// cuBLAS's strided-batched GEMM computed on the CPU with double accumulation, in cuBLAS's terms (column-major,
/// transposes, leading dimensions, batch strides, alpha/beta with C not read when beta is 0), so the
/// backend's mapping of row-major tensors onto cuBLAS is what gets checked. In TF32 or bf16 compute the inputs are
/// first rounded to TF32 (10 mantissa bits) or bf16 (7), as the tensor cores read them. Operands stored in bf16 are
/// read exactly; a bf16 product is rounded once, to nearest even.
/// </summary>
internal static unsafe class ReferenceBlas
{
    /// <summary>What cuBLAS would refuse with CUBLAS_STATUS_INVALID_VALUE, or null.</summary>
    public static string? Problem(in GemmCall c)
    {
        if (c.M < 0 || c.N < 0 || c.K < 0 || c.Batch < 0)
        {
            return "negative size";
        }

        if (c.Lda < Math.Max(1, c.TransA ? c.K : c.M))
        {
            return $"lda {c.Lda} < {Math.Max(1, c.TransA ? c.K : c.M)}";
        }

        if (c.Ldb < Math.Max(1, c.TransB ? c.N : c.K))
        {
            return $"ldb {c.Ldb} < {Math.Max(1, c.TransB ? c.N : c.K)}";
        }

        return c.Ldc < Math.Max(1, c.M) ? $"ldc {c.Ldc} < {Math.Max(1, c.M)}" : null;
    }

    /// <summary>Bytes from the first element of operand A, B or C that the call reads or writes (0 when it touches none).</summary>
    public static long Extent(in GemmCall c, char operand)
    {
        if (c.Batch == 0 || c.M == 0 || c.N == 0)
        {
            return 0;
        }

        var (rows, cols, ld, stride) = operand switch
        {
            'A' => (c.TransA ? c.K : c.M, c.TransA ? c.M : c.K, c.Lda, c.StrideA),
            'B' => (c.TransB ? c.N : c.K, c.TransB ? c.K : c.N, c.Ldb, c.StrideB),
            _ => (c.M, c.N, c.Ldc, c.StrideC),
        };
        var size = (operand == 'C' ? c.Output : c.Operands) == BlasType.BFloat16 ? sizeof(ushort) : sizeof(float);
        return rows == 0 || cols == 0 ? 0 : ((((c.Batch - 1) * stride) + ((long)(cols - 1) * ld) + rows) * size);
    }

    /// <summary>Floats of the epilogue's vector the call reads or writes: M per batch for a bias, N for a bias gradient.</summary>
    public static long VectorExtent(in GemmCall c, LtEpilogue epilogue, long stride) =>
        c.Batch == 0 ? 0 : ((c.Batch - 1) * stride) + (epilogue == LtEpilogue.Bias ? c.M : c.N);

    /// <summary>
    /// The GEMM, and cuBLASLt's <paramref name="epilogue"/> on <paramref name="vector"/> if given: a bias added to
    /// every column of each result (one rounding, after α·AB + β·C), or the bias gradient Σ over k of op(B) (from
    /// the operand as stored, not its TF32 rounding).
    /// </summary>
    public static void Run(GemmCall c, LtEpilogue? epilogue = null, ulong vector = 0, long vectorStride = 0)
    {
        for (var b = 0; b < c.Batch; b++)
        {
            var a = new Operand(c.A, c.Operands, b * c.StrideA);
            var bm = new Operand(c.B, c.Operands, b * c.StrideB);
            var cm = new Operand(c.C, c.Output, b * c.StrideC);
            var v = (float*)vector + (b * vectorStride);
            var bias = epilogue == LtEpilogue.Bias ? v : null;
            if (epilogue == LtEpilogue.BiasGradientB)
            {
                for (var j = 0; j < c.N; j++)
                {
                    var sum = 0.0;
                    for (var l = 0; l < c.K; l++)
                    {
                        sum += c.TransB ? bm[j + ((long)l * c.Ldb)] : bm[l + ((long)j * c.Ldb)];
                    }

                    v[j] = (float)sum;
                }
            }

            // op(A) by rows and op(B) by columns, so every dot product runs over contiguous memory.
            var opA = new double[(long)c.M * c.K];
            var opB = new double[(long)c.N * c.K];
            for (var i = 0; i < c.M; i++)
            {
                for (var l = 0; l < c.K; l++)
                {
                    opA[((long)i * c.K) + l] = Input(c.TransA ? a[l + ((long)i * c.Lda)] : a[i + ((long)l * c.Lda)], c.Compute);
                }
            }

            for (var j = 0; j < c.N; j++)
            {
                for (var l = 0; l < c.K; l++)
                {
                    opB[((long)j * c.K) + l] = Input(c.TransB ? bm[j + ((long)l * c.Ldb)] : bm[l + ((long)j * c.Ldb)], c.Compute);
                }
            }

            var call = c;
            var work = (double)c.M * c.N * c.K;
            Parallel.For(0, c.N, new ParallelOptions { MaxDegreeOfParallelism = work > 1e6 ? Environment.ProcessorCount : 1 }, j =>
            {
                var column = new ReadOnlySpan<double>(opB, j * call.K, call.K);
                for (var i = 0; i < call.M; i++)
                {
                    var row = new ReadOnlySpan<double>(opA, i * call.K, call.K);
                    var sum = 0.0;
                    for (var l = 0; l < row.Length; l++)
                    {
                        sum += row[l] * column[l];
                    }

                    var target = i + ((long)j * call.Ldc);
                    cm[target] = (float)((call.Alpha * sum) + (call.Beta == 0f ? 0.0 : call.Beta * (double)cm[target]) + (bias is null ? 0.0 : bias[i]));
                }
            });
        }
    }

    /// <summary>A matrix in emulated memory, float32 or bf16, read and written as float32 (a bf16 write rounds to nearest even).</summary>
    private readonly struct Operand(ulong address, BlasType type, long offset)
    {
        public float this[long i]
        {
            get => type == BlasType.BFloat16 ? BFloat16.ToSingle(((ushort*)address)[offset + i]) : ((float*)address)[offset + i];
            set
            {
                if (type == BlasType.BFloat16)
                {
                    ((ushort*)address)[offset + i] = BFloat16.FromSingle(value);
                }
                else
                {
                    ((float*)address)[offset + i] = value;
                }
            }
        }
    }

    /// <summary>x as the GEMM reads it: unchanged, rounded to TF32 (to nearest, ties away from zero) or to bf16 (to nearest even).</summary>
    private static double Input(float x, BlasCompute compute)
    {
        if (compute == BlasCompute.Fp32 || !float.IsFinite(x))
        {
            return x;
        }

        var bits = BitConverter.SingleToUInt32Bits(x);
        return compute == BlasCompute.Tf32
            ? BitConverter.UInt32BitsToSingle((bits + 0x1000u) & 0xFFFFE000u)
            : BitConverter.UInt32BitsToSingle((bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u);
    }
}
