using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void FillCore(Tensor dst, float value)
    {
        var n = Count(dst);
        switch (dst.DType)
        {
            case DType.Float32:
                var f = F(dst);
                Elementwise(n, (i0, i1) => new Span<float>(f + i0, i1 - i0).Fill(value));
                break;
            case DType.BFloat16:
                var h = H(dst);
                var bits = BFloat16.FromSingle(value);
                Elementwise(n, (i0, i1) => new Span<ushort>(h + i0, i1 - i0).Fill(bits));
                break;
            case DType.Int32:
                var p = I(dst);
                var iv = checked((int)value);
                Elementwise(n, (i0, i1) => new Span<int>(p + i0, i1 - i0).Fill(iv));
                break;
            default:
                throw Unsupported(nameof(Fill), dst);
        }
    }

    protected override void CopyCore(Tensor src, Tensor dst)
    {
        var size = src.DType.SizeInBytes();
        var from = (byte*)((CpuStorage)src.Storage).Pointer + (src.Offset * size);
        var to = (byte*)((CpuStorage)dst.Storage).Pointer + (dst.Offset * size);
        if (src.IsContiguous)
        {
            var bytes = src.ByteLength;
            Buffer.MemoryCopy(from, to, bytes, bytes);
            return;
        }

        // Walk src in row-major order with an odometer over its strides; dst is contiguous.
        var rank = src.Rank;
        var dims = src.Shape.AsSpan();
        var strides = src.Strides;
        Span<int> index = stackalloc int[rank];
        var n = src.NumElements;
        long srcOffset = 0;
        for (long i = 0; i < n; i++)
        {
            Buffer.MemoryCopy(from + (srcOffset * size), to + (i * size), size, size);
            for (var axis = rank - 1; axis >= 0; axis--)
            {
                srcOffset += strides[axis];
                if (++index[axis] < dims[axis])
                {
                    break;
                }

                srcOffset -= strides[axis] * dims[axis];
                index[axis] = 0;
            }
        }
    }

    protected override void CopyAcrossCore(Tensor src, Tensor dst)
    {
        if (src.Device == Device)
        {
            CopyCore(src, dst);
            return;
        }

        using var contiguous = src.Contiguous();
        src.Context.Ops.CopyToHost(contiguous, new Span<byte>((byte*)((CpuStorage)dst.Storage).Pointer + (dst.Offset * dst.DType.SizeInBytes()), checked((int)dst.ByteLength)));
    }

    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, Tensor dst) =>
        src.CopyTo(new Span<byte>((byte*)((CpuStorage)dst.Storage).Pointer + (dst.Offset * dst.DType.SizeInBytes()), src.Length));

    protected override void CopyToHostCore(Tensor src, Span<byte> dst) =>
        new ReadOnlySpan<byte>((byte*)((CpuStorage)src.Storage).Pointer + (src.Offset * src.DType.SizeInBytes()), dst.Length).CopyTo(dst);

    protected override void CastCore(Tensor src, Tensor dst)
    {
        if (src.DType == DType.Float32)
        {
            float* from = F(src);
            var to = H(dst);
            Elementwise(Count(src), (i0, i1) =>
            {
                for (var i = i0; i < i1; i++)
                {
                    to[i] = BFloat16.FromSingle(from[i]);
                }
            });
        }
        else
        {
            var from = H(src);
            float* to = F(dst);
            Elementwise(Count(src), (i0, i1) =>
            {
                for (var i = i0; i < i1; i++)
                {
                    to[i] = BFloat16.ToSingle(from[i]);
                }
            });
        }
    }

    protected override void AddCore(Tensor a, Tensor b, Tensor output)
    {
        if (OnFloat32([a, b, output], [2], t => AddCore(t[0]!, t[1]!, t[2]!)))
        {
            return;
        }

        float* pa = F(a), pb = F(b), po = F(output);
        Elementwise(Count(a), (i0, i1) =>
            TensorPrimitives.Add(new ReadOnlySpan<float>(pa + i0, i1 - i0), new ReadOnlySpan<float>(pb + i0, i1 - i0), new Span<float>(po + i0, i1 - i0)));
    }

    protected override void ScaleCore(Tensor x, float alpha, Tensor output)
    {
        if (OnFloat32([x, output], [1], t => ScaleCore(t[0]!, alpha, t[1]!)))
        {
            return;
        }

        float* px = F(x), po = F(output);
        Elementwise(Count(x), (i0, i1) =>
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(px + i0, i1 - i0), alpha, new Span<float>(po + i0, i1 - i0)));
    }

    protected override void SumManyCore(IReadOnlyList<Tensor> xs, Tensor output)
    {
        var po = F(output);
        var inputs = new IntPtr[xs.Count];
        for (var j = 0; j < xs.Count; j++)
        {
            inputs[j] = (IntPtr)F(xs[j]);
        }

        // One pass per chunk over all inputs keeps the partial sum in cache.
        CpuParallel.For(Count(output), xs.Count, (i0, i1) =>
        {
            var dst = new Span<float>(po + i0, i1 - i0);
            new ReadOnlySpan<float>((float*)inputs[0] + i0, i1 - i0).CopyTo(dst);
            for (var j = 1; j < inputs.Length; j++)
            {
                TensorPrimitives.Add(dst, new ReadOnlySpan<float>((float*)inputs[j] + i0, i1 - i0), dst);
            }
        });
    }

    protected override void BiasGeluCore(Tensor x, Tensor? bias, Tensor y)
    {
        if (OnFloat32([x, y], [1], t => BiasGeluCore(t[0]!, bias, t[1]!)))
        {
            return;
        }

        float* px = F(x), py = F(y), pb = OrNull(bias);
        var cols = LastDim(x);
        var groupRows = Rows(x) / (bias is null ? 1 : Groups(bias));
        CpuParallel.For(Rows(x), cols * 20, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                var offset = (long)r * cols;
                var b = new ReadOnlySpan<float>(pb == null ? null : pb + ((long)(r / groupRows) * cols), pb == null ? 0 : cols);
                GeluMath.Forward(new ReadOnlySpan<float>(px + offset, cols), b, new Span<float>(py + offset, cols));
            }
        });
    }

    protected override void BiasGeluBackwardCore(Tensor x, Tensor? bias, Tensor dy, Tensor dx, GradOut dbias)
    {
        // The bias gradient sums dx as stored (rounded to bf16), as the CUDA kernels do.
        if (OnFloat32([x, dy, dx], [2], t => BiasGeluBackwardCore(t[0]!, bias, t[1]!, t[2]!, GradOut.None)))
        {
            if (dbias.Tensor is not null)
            {
                SumRowsCore(dx, dbias);
            }

            return;
        }

        float* px = F(x), pdy = F(dy), pdx = F(dx), pb = OrNull(bias);
        var cols = LastDim(x);
        var rows = Rows(x);
        var groups = bias is null ? 1 : Groups(bias);
        var groupRows = rows / groups;
        CpuParallel.For(rows, cols * 30, (r0, r1) =>
        {
            for (var r = r0; r < r1; r++)
            {
                var offset = (long)r * cols;
                var b = new ReadOnlySpan<float>(pb == null ? null : pb + ((long)(r / groupRows) * cols), pb == null ? 0 : cols);
                GeluMath.Backward(new ReadOnlySpan<float>(px + offset, cols), b, new ReadOnlySpan<float>(pdy + offset, cols), new Span<float>(pdx + offset, cols));
            }
        });
        if (dbias.Tensor is { } db)
        {
            GroupColumnSums(pdx, groups, groupRows, cols, F(db), dbias.Accumulate);
        }
    }

    protected override void DropoutCore(Tensor x, Tensor y, float p, ulong seed, ulong offset, Tensor? offsetBase)
    {
        if (OnFloat32([x, y], [1], t => DropoutCore(t[0]!, t[1]!, p, seed, offset, offsetBase)))
        {
            return;
        }

        if (offsetBase is not null)
        {
            var words = I(offsetBase);
            offset += (uint)words[0] | ((ulong)(uint)words[1] << 32);
        }

        float* px = F(x), py = F(y);
        var scale = 1f / (1f - p);
        var n = Count(x);
        var blocks = (n + 3) / 4;
        CpuParallel.For(blocks, 40, (b0, b1) =>
        {
            for (var blk = b0; blk < b1; blk++)
            {
                var (w0, w1, w2, w3) = Philox.Block(seed, offset, (ulong)blk);
                var i = blk * 4;
                Keep(i, w0);
                Keep(i + 1, w1);
                Keep(i + 2, w2);
                Keep(i + 3, w3);
            }
        });

        void Keep(int i, uint word)
        {
            if (i < n)
            {
                py[i] = Philox.ToUniform(word) >= p ? px[i] * scale : 0f;
            }
        }
    }
}
