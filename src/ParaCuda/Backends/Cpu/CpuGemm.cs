using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaCuda.Backends.Cpu;

/// <summary>
/// Single-precision GEMM for the CPU backend, blocked the BLIS way.
/// </summary>
/// <remarks>
/// C is cut into one rectangle per worker; each worker runs the classic five loops on its rectangle:
/// columns in NC blocks, depth in KC blocks (one packed KC×NC block of op(B), laid out as NR-wide
/// column panels, stays in L2/L3), rows in MC blocks (one packed MC×KC block of op(A), laid out as
/// MR-high row panels), and then MR×NR tiles. The micro-kernel keeps its whole MR×NR tile of C in
/// registers across the KC loop and touches C only once per KC block, so C traffic is amortised over
/// KC multiply-adds. Packing zero-pads the edge panels, so the kernel never branches on size; only
/// the final write of a ragged edge tile goes through a small scratch tile. Transposes are absorbed
/// by the packing routines: the kernel always sees the same layout.
/// </remarks>
internal static unsafe class CpuGemm
{
    /// <summary>Products below this many flops (2·m·n·k) run on the calling thread.</summary>
    public const double ParallelThreshold = 2_000_000;

    // Block sizes: a KC×NC panel of B (768 KB) sits in L2/L3, an MC×KC block of A (192 KB) in L2.
    private const int MaxKc = 256;
    private const int MaxMc = 192;
    private const int MaxNc = 768;

    // Rows of B prefetched ahead while packing: covers memory latency at one row per pack iteration.
    private const int PrefetchRows = 8;

    private static readonly bool s_avx512 = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
    private static readonly bool s_avx2 = Vector256.IsHardwareAccelerated && Fma.IsSupported;

    [ThreadStatic]
    private static Workspace? t_workspace;

    [ThreadStatic]
    private static ParallelJob? t_job;

    /// <summary>
    /// C[m,n] = alpha·op(A)·op(B) + beta·C + bias[n], all row-major. A is m×k with row stride lda, or
    /// stored k×m when <paramref name="transA"/>; B is k×n with row stride ldb, or stored n×k when
    /// <paramref name="transB"/>. With beta == 0 the previous contents of C are never read.
    /// </summary>
    public static void Multiply(int m, int n, int k,
        float* a, int lda, bool transA,
        float* b, int ldb, bool transB,
        float* c, int ldc,
        float alpha, float beta, float* bias)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (m == 0 || n == 0)
        {
            return;
        }

        var problem = new Problem(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta, bias);
        if (k == 0 || alpha == 0f)
        {
            ScaleAndBias(in problem);
            return;
        }

        var (mr, nr) = TileShape();
        var flops = 2.0 * m * n * k;
        var threads = flops < ParallelThreshold ? 1 : (int)Math.Min(Engine.Threads, flops / ParallelThreshold);
        var (rowParts, colParts) = ChooseGrid(m, n, mr, nr, threads);
        if (rowParts * colParts == 1)
        {
            RunRect(in problem, 0, m, 0, n);
            return;
        }

        var job = t_job ??= new ParallelJob();
        job.Run(in problem, rowParts, colParts, mr, nr);
    }

    private static (int Mr, int Nr) TileShape() =>
        s_avx512 ? (V512.Rows, 2 * V512.Width)
        : s_avx2 ? (V256.Rows, 2 * V256.Width)
        : (ScalarLanes.Rows, 2 * ScalarLanes.Width);

    /// <summary>
    /// Splits C into rowParts×colParts rectangles. Every worker packs the slices of A and B it needs, so a
    /// split along n repacks A once more and a split along m repacks B: pick the split whose per-worker
    /// kernel work plus packing is smallest.
    /// </summary>
    private static (int RowParts, int ColParts) ChooseGrid(int m, int n, int mr, int nr, int threads)
    {
        var rowTiles = (m + mr - 1) / mr;
        var colTiles = (n + nr - 1) / nr;
        var best = (1, 1);
        var bestCost = double.MaxValue;
        for (var rowParts = 1; rowParts <= threads; rowParts++)
        {
            if (threads % rowParts != 0)
            {
                continue;
            }

            var colParts = threads / rowParts;
            if (rowParts > rowTiles || colParts > colTiles)
            {
                continue;
            }

            double rows = (rowTiles + rowParts - 1) / rowParts * mr;
            double cols = (colTiles + colParts - 1) / colParts * nr;
            var cost = (rows * cols / 32) + rows + cols;
            if (cost < bestCost)
            {
                bestCost = cost;
                best = (rowParts, colParts);
            }
        }

        return best;
    }

    private static void RunRect(in Problem p, int i0, int i1, int j0, int j1)
    {
        var ws = t_workspace ??= new Workspace();
        if (s_avx512)
        {
            RunRect<V512, Vector512<float>>(in p, i0, i1, j0, j1, ws);
        }
        else if (s_avx2)
        {
            RunRect<V256, Vector256<float>>(in p, i0, i1, j0, j1, ws);
        }
        else
        {
            RunRect<ScalarLanes, float>(in p, i0, i1, j0, j1, ws);
        }
    }

    private static void RunRect<TOps, TV>(in Problem p, int i0, int i1, int j0, int j1, Workspace ws)
        where TOps : struct, IVectorOps<TV>
        where TV : struct
    {
        var mr = TOps.Rows;
        var nr = 2 * TOps.Width;
        var kBlocks = (p.K + MaxKc - 1) / MaxKc;
        var kcStep = (p.K + kBlocks - 1) / kBlocks;
        for (var jc = j0; jc < j1; jc += MaxNc)
        {
            var nc = Math.Min(MaxNc, j1 - jc);
            for (var pc = 0; pc < p.K; pc += kcStep)
            {
                var kc = Math.Min(kcStep, p.K - pc);
                var first = pc == 0;
                var beta = first ? p.Beta : 1f;
                var bias = first && p.Bias != null ? p.Bias + jc : null;
                PackB(in p, jc, nc, pc, kc, nr, ws.PackedB);
                for (var ic = i0; ic < i1; ic += MaxMc)
                {
                    var mc = Math.Min(MaxMc, i1 - ic);
                    PackA(in p, ic, mc, pc, kc, mr, ws.PackedA);

                    for (var jr = 0; jr < nc; jr += nr)
                    {
                        var cols = Math.Min(nr, nc - jr);
                        var pb = ws.PackedB + ((long)jr * kc);
                        var tileBias = bias == null ? null : bias + jr;
                        for (var ir = 0; ir < mc; ir += mr)
                        {
                            var rows = Math.Min(mr, mc - ir);
                            var pa = ws.PackedA + ((long)ir * kc);
                            var ct = p.C + ((long)(ic + ir) * p.Ldc) + jc + jr;
                            Kernel<TOps, TV>(kc, pa, pb, ct, p.Ldc, rows, cols, p.Alpha, beta, tileBias);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// The MR×(2·W) register tile. Rows beyond TOps.Rows are dead code the JIT drops when it specialises,
    /// which lets one body serve every vector width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<TOps, TV>(int kc, float* pa, float* pb, float* c, int ldc, int rows, int cols, float alpha, float beta, float* bias)
        where TOps : struct, IVectorOps<TV>
        where TV : struct
    {
        var w = TOps.Width;
        var mr = TOps.Rows;
        TV c00 = TOps.Zero, c01 = TOps.Zero, c10 = TOps.Zero, c11 = TOps.Zero;
        TV c20 = TOps.Zero, c21 = TOps.Zero, c30 = TOps.Zero, c31 = TOps.Zero;
        TV c40 = TOps.Zero, c41 = TOps.Zero, c50 = TOps.Zero, c51 = TOps.Zero;
        TV c60 = TOps.Zero, c61 = TOps.Zero, c70 = TOps.Zero, c71 = TOps.Zero;
        TV c80 = TOps.Zero, c81 = TOps.Zero, c90 = TOps.Zero, c91 = TOps.Zero;
        TV ca0 = TOps.Zero, ca1 = TOps.Zero, cb0 = TOps.Zero, cb1 = TOps.Zero;
        TV cc0 = TOps.Zero, cc1 = TOps.Zero, cd0 = TOps.Zero, cd1 = TOps.Zero;
        for (var p = 0; p < kc; p++)
        {
            var b0 = TOps.Load(pb);
            var b1 = TOps.Load(pb + w);
            var x = TOps.Broadcast(pa);
            c00 = TOps.MultiplyAdd(x, b0, c00);
            c01 = TOps.MultiplyAdd(x, b1, c01);
            x = TOps.Broadcast(pa + 1);
            c10 = TOps.MultiplyAdd(x, b0, c10);
            c11 = TOps.MultiplyAdd(x, b1, c11);
            x = TOps.Broadcast(pa + 2);
            c20 = TOps.MultiplyAdd(x, b0, c20);
            c21 = TOps.MultiplyAdd(x, b1, c21);
            x = TOps.Broadcast(pa + 3);
            c30 = TOps.MultiplyAdd(x, b0, c30);
            c31 = TOps.MultiplyAdd(x, b1, c31);
            if (mr > 4)
            {
                x = TOps.Broadcast(pa + 4);
                c40 = TOps.MultiplyAdd(x, b0, c40);
                c41 = TOps.MultiplyAdd(x, b1, c41);
                x = TOps.Broadcast(pa + 5);
                c50 = TOps.MultiplyAdd(x, b0, c50);
                c51 = TOps.MultiplyAdd(x, b1, c51);
            }

            if (mr > 6)
            {
                x = TOps.Broadcast(pa + 6);
                c60 = TOps.MultiplyAdd(x, b0, c60);
                c61 = TOps.MultiplyAdd(x, b1, c61);
                x = TOps.Broadcast(pa + 7);
                c70 = TOps.MultiplyAdd(x, b0, c70);
                c71 = TOps.MultiplyAdd(x, b1, c71);
            }

            if (mr > 8)
            {
                x = TOps.Broadcast(pa + 8);
                c80 = TOps.MultiplyAdd(x, b0, c80);
                c81 = TOps.MultiplyAdd(x, b1, c81);
                x = TOps.Broadcast(pa + 9);
                c90 = TOps.MultiplyAdd(x, b0, c90);
                c91 = TOps.MultiplyAdd(x, b1, c91);
            }

            if (mr > 10)
            {
                x = TOps.Broadcast(pa + 10);
                ca0 = TOps.MultiplyAdd(x, b0, ca0);
                ca1 = TOps.MultiplyAdd(x, b1, ca1);
                x = TOps.Broadcast(pa + 11);
                cb0 = TOps.MultiplyAdd(x, b0, cb0);
                cb1 = TOps.MultiplyAdd(x, b1, cb1);
            }

            if (mr > 12)
            {
                x = TOps.Broadcast(pa + 12);
                cc0 = TOps.MultiplyAdd(x, b0, cc0);
                cc1 = TOps.MultiplyAdd(x, b1, cc1);
                x = TOps.Broadcast(pa + 13);
                cd0 = TOps.MultiplyAdd(x, b0, cd0);
                cd1 = TOps.MultiplyAdd(x, b1, cd1);
            }

            pa += mr;
            pb += 2 * w;
        }

        var e = new Epilogue<TOps, TV>(alpha, beta, bias, cols);
        e.Row(c, c00, c01);
        if (rows > 1)
        {
            e.Row(c + ldc, c10, c11);
        }

        if (rows > 2)
        {
            e.Row(c + (2 * ldc), c20, c21);
        }

        if (rows > 3)
        {
            e.Row(c + (3 * ldc), c30, c31);
        }

        if (mr > 4 && rows > 4)
        {
            e.Row(c + (4 * ldc), c40, c41);
        }

        if (mr > 5 && rows > 5)
        {
            e.Row(c + (5 * ldc), c50, c51);
        }

        if (mr > 6 && rows > 6)
        {
            e.Row(c + (6 * ldc), c60, c61);
        }

        if (mr > 7 && rows > 7)
        {
            e.Row(c + (7 * ldc), c70, c71);
        }

        if (mr > 8 && rows > 8)
        {
            e.Row(c + (8 * ldc), c80, c81);
        }

        if (mr > 9 && rows > 9)
        {
            e.Row(c + (9 * ldc), c90, c91);
        }

        if (mr > 10 && rows > 10)
        {
            e.Row(c + (10 * ldc), ca0, ca1);
        }

        if (mr > 11 && rows > 11)
        {
            e.Row(c + (11 * ldc), cb0, cb1);
        }

        if (mr > 12 && rows > 12)
        {
            e.Row(c + (12 * ldc), cc0, cc1);
        }

        if (mr > 13 && rows > 13)
        {
            e.Row(c + (13 * ldc), cd0, cd1);
        }
    }

    /// <summary>
    /// Writes one accumulator row into C: alpha·acc + bias, plus beta·C unless beta is zero (then C is never
    /// read, so it may hold NaN). Ragged right edges use masked loads and stores, which cannot fault on the
    /// lanes they skip, so edge tiles need no scratch copy.
    /// </summary>
    private readonly struct Epilogue<TOps, TV>
        where TOps : struct, IVectorOps<TV>
        where TV : struct
    {
        private readonly TV _alpha, _beta, _bias0, _bias1, _mask0, _mask1;
        private readonly bool _readC, _full;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Epilogue(float alpha, float beta, float* bias, int cols)
        {
            var w = TOps.Width;
            _alpha = TOps.Splat(alpha);
            _beta = TOps.Splat(beta);
            _readC = beta != 0f;
            _full = cols == 2 * w;
            _mask0 = TOps.PrefixMask(cols);
            _mask1 = TOps.PrefixMask(cols - w);
            _bias0 = bias == null ? TOps.Zero : TOps.LoadMasked(bias, _mask0);
            _bias1 = bias == null ? TOps.Zero : TOps.LoadMasked(bias + w, _mask1);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Row(float* c, TV acc0, TV acc1)
        {
            var w = TOps.Width;
            var r0 = TOps.MultiplyAdd(acc0, _alpha, _bias0);
            var r1 = TOps.MultiplyAdd(acc1, _alpha, _bias1);
            if (_full)
            {
                if (_readC)
                {
                    r0 = TOps.MultiplyAdd(TOps.Load(c), _beta, r0);
                    r1 = TOps.MultiplyAdd(TOps.Load(c + w), _beta, r1);
                }

                TOps.Store(c, r0);
                TOps.Store(c + w, r1);
            }
            else
            {
                if (_readC)
                {
                    r0 = TOps.MultiplyAdd(TOps.LoadMasked(c, _mask0), _beta, r0);
                    r1 = TOps.MultiplyAdd(TOps.LoadMasked(c + w, _mask1), _beta, r1);
                }

                TOps.StoreMasked(c, _mask0, r0);
                TOps.StoreMasked(c + w, _mask1, r1);
            }
        }
    }

    /// <summary>Packs op(A)[ic..ic+mc, pc..pc+kc] as MR-high panels: panel element (p, r) at p·MR + r.</summary>
    private static void PackA(in Problem p, int ic, int mc, int pc, int kc, int mr, float* dst)
    {
        if (p.TransA)
        {
            PackDirect(p.A + ((long)pc * p.Lda) + ic, p.Lda, mc, kc, dst, mr);
            return;
        }

        for (var ir = 0; ir < mc; ir += mr)
        {
            PackTransposed(p.A + ((long)(ic + ir) * p.Lda) + pc, p.Lda, Math.Min(mr, mc - ir), kc, dst + ((long)ir * kc), mr);
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc] as NR-wide panels: panel element (p, j) at p·NR + j.</summary>
    private static void PackB(in Problem p, int jc, int nc, int pc, int kc, int nr, float* dst)
    {
        if (!p.TransB)
        {
            PackDirect(p.B + ((long)pc * p.Ldb) + jc, p.Ldb, nc, kc, dst, nr);
            return;
        }

        for (var jr = 0; jr < nc; jr += nr)
        {
            PackTransposed(p.B + ((long)(jc + jr) * p.Ldb) + pc, p.Ldb, Math.Min(nr, nc - jr), kc, dst + ((long)jr * kc), nr);
        }
    }

    /// <summary>
    /// Splits each of the kc source rows (count floats long) across count/width panels: panel j0 gets
    /// dst[j0·kc + q·width + j] = src[q·ld + j0 + j], zero-padded to width. Reading whole rows, rather
    /// than one panel at a time down the rows, keeps the reads sequential for the prefetchers and the TLB.
    /// </summary>
    private static void PackDirect(float* src, int ld, int count, int kc, float* dst, int width)
    {
        for (var q = 0; q < kc; q++)
        {
            var s = src + ((long)q * ld);
            if (Sse.IsSupported && q + PrefetchRows < kc)
            {
                var ahead = s + ((long)PrefetchRows * ld);
                for (var j = 0; j < count; j += 16)
                {
                    Sse.Prefetch0(ahead + j);
                }

                Sse.Prefetch0(ahead + count - 1);
            }

            for (var j0 = 0; j0 < count; j0 += width)
            {
                var n = Math.Min(width, count - j0);
                var sp = s + j0;
                var d = dst + ((long)j0 * kc) + ((long)q * width);
                var j = 0;
                for (; j + 8 <= n; j += 8)
                {
                    Vector256.Store(Vector256.Load(sp + j), d + j);
                }

                if (j + 4 <= n)
                {
                    Vector128.Store(Vector128.Load(sp + j), d + j);
                    j += 4;
                }

                for (; j < n; j++)
                {
                    d[j] = sp[j];
                }

                for (; j < width; j++)
                {
                    d[j] = 0f;
                }
            }
        }
    }

    /// <summary>
    /// dst[q·width + r] = src[r·ld + q] for r &lt; count, zero for count ≤ r &lt; width. Rows go through 8×8 and
    /// 4×8 register transposes, since a scalar gather here costs as much as the kernel on thin products.
    /// </summary>
    private static void PackTransposed(float* src, int ld, int count, int kc, float* dst, int width)
    {
        var r = 0;
        if (Avx.IsSupported)
        {
            var kc8 = kc & ~7;
            for (; r + 8 <= count; r += 8)
            {
                var s = src + ((long)r * ld);
                for (var q = 0; q < kc8; q += 8)
                {
                    Transpose8x8(s + q, ld, dst + ((long)q * width) + r, width);
                }

                TransposeScalar(s, ld, 8, kc8, kc, dst + r, width);
            }

            if (r + 4 <= count)
            {
                var s = src + ((long)r * ld);
                for (var q = 0; q < kc8; q += 8)
                {
                    Transpose4x8(s + q, ld, dst + ((long)q * width) + r, width);
                }

                TransposeScalar(s, ld, 4, kc8, kc, dst + r, width);
                r += 4;
            }
        }

        TransposeScalar(src + ((long)r * ld), ld, count - r, 0, kc, dst + r, width);
        for (var q = 0; q < kc; q++)
        {
            var d = dst + ((long)q * width);
            for (var j = count; j < width; j++)
            {
                d[j] = 0f;
            }
        }
    }

    private static void TransposeScalar(float* src, int ld, int rows, int q0, int q1, float* dst, int width)
    {
        for (var r = 0; r < rows; r++)
        {
            var s = src + ((long)r * ld);
            for (var q = q0; q < q1; q++)
            {
                dst[((long)q * width) + r] = s[q];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, int ld, float* d, int width)
    {
        var r0 = Avx.LoadVector256(s);
        var r1 = Avx.LoadVector256(s + ld);
        var r2 = Avx.LoadVector256(s + (2L * ld));
        var r3 = Avx.LoadVector256(s + (3L * ld));
        var r4 = Avx.LoadVector256(s + (4L * ld));
        var r5 = Avx.LoadVector256(s + (5L * ld));
        var r6 = Avx.LoadVector256(s + (6L * ld));
        var r7 = Avx.LoadVector256(s + (7L * ld));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + width, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + (2 * width), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + (3 * width), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + (4 * width), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + (5 * width), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + (6 * width), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + (7 * width), Avx.Permute2x128(u3, u7, 0x31));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4x8(float* s, int ld, float* d, int width)
    {
        var r0 = Avx.LoadVector256(s);
        var r1 = Avx.LoadVector256(s + ld);
        var r2 = Avx.LoadVector256(s + (2L * ld));
        var r3 = Avx.LoadVector256(s + (3L * ld));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        Sse.Store(d, u0.GetLower());
        Sse.Store(d + width, u1.GetLower());
        Sse.Store(d + (2 * width), u2.GetLower());
        Sse.Store(d + (3 * width), u3.GetLower());
        Sse.Store(d + (4 * width), u0.GetUpper());
        Sse.Store(d + (5 * width), u1.GetUpper());
        Sse.Store(d + (6 * width), u2.GetUpper());
        Sse.Store(d + (7 * width), u3.GetUpper());
    }

    /// <summary>C = beta·C + bias, for products that contribute nothing (k == 0 or alpha == 0).</summary>
    private static void ScaleAndBias(in Problem p)
    {
        for (var i = 0; i < p.M; i++)
        {
            var ci = p.C + ((long)i * p.Ldc);
            for (var j = 0; j < p.N; j++)
            {
                var v = p.Bias == null ? 0f : p.Bias[j];
                ci[j] = p.Beta == 0f ? v : v + (p.Beta * ci[j]);
            }
        }
    }

    private readonly struct Problem(int m, int n, int k,
        float* a, int lda, bool transA,
        float* b, int ldb, bool transB,
        float* c, int ldc,
        float alpha, float beta, float* bias)
    {
        public readonly int M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc;
        public readonly float* A = a, B = b, C = c, Bias = bias;
        public readonly bool TransA = transA, TransB = transB;
        public readonly float Alpha = alpha, Beta = beta;
    }

    /// <summary>Per-thread packing buffers, kept for the life of the thread so steady-state calls never allocate.</summary>
    private sealed class Workspace
    {
        private const int MaxRows = 16;
        private const int MaxCols = 32;

        // Pinned, so the raw pointers below stay valid; over-allocated so they can be cache-line aligned.
        private readonly float[] _memory;

        public Workspace()
        {
            int aFloats = (MaxMc + MaxRows) * MaxKc;
            int bFloats = (MaxNc + MaxCols) * MaxKc;
            _memory = GC.AllocateUninitializedArray<float>(aFloats + bFloats + 16, pinned: true);
            var start = (float*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_memory)) + 63) & ~(nint)63);
            PackedA = start;
            PackedB = start + aFloats;
        }

        public float* PackedA { get; }

        public float* PackedB { get; }
    }

    /// <summary>
    /// Hands the worker rectangles to the thread pool. Cheaper than Parallel.For (a queued item starts in a
    /// couple of microseconds on a warm pool) and allocation-free: one instance per calling thread, queued
    /// once per extra worker. Parts are claimed from a shared counter, so the caller works through any part
    /// no pool thread has picked up yet instead of waiting for one; a pool thread that turns up late finds
    /// nothing left and returns.
    /// </summary>
    private sealed class ParallelJob : IThreadPoolWorkItem
    {
        private Problem _problem;
        private int _rowParts, _colParts, _mr, _nr, _parts;
        private int _next;
        private int _remaining;

        public void Run(in Problem problem, int rowParts, int colParts, int mr, int nr)
        {
            (_problem, _rowParts, _colParts, _mr, _nr) = (problem, rowParts, colParts, mr, nr);
            _parts = rowParts * colParts;
            _remaining = _parts;
            Volatile.Write(ref _next, 0);
            for (var i = 1; i < _parts; i++)
            {
                ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            }

            Execute();
            var spin = default(SpinWait);
            while (Volatile.Read(ref _remaining) != 0)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }

        public void Execute()
        {
            int part;
            while ((part = Interlocked.Increment(ref _next) - 1) < _parts)
            {
                var (rp, cp) = Math.DivRem(part, _colParts);
                var (i0, i1) = Split(_problem.M, _mr, _rowParts, rp);
                var (j0, j1) = Split(_problem.N, _nr, _colParts, cp);
                RunRect(in _problem, i0, i1, j0, j1);
                Interlocked.Decrement(ref _remaining);
            }
        }

        // Part boundaries fall on whole tiles so that only the last part has a ragged edge.
        private static (int Start, int End) Split(int size, int tile, int parts, int index)
        {
            var tiles = (size + tile - 1) / tile;
            var start = (int)((long)tiles * index / parts) * tile;
            var end = (int)((long)tiles * (index + 1) / parts) * tile;
            return (Math.Min(start, size), Math.Min(end, size));
        }
    }
}
