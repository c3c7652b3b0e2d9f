using ParaCuda.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void TransformImagesCore(Tensor pixels, Tensor draws, IReadOnlyList<float> scale, IReadOnlyList<float> black, Tensor images)
    {
        var (batch, channels, height, width) = (pixels.Shape[0], pixels.Shape[1], pixels.Shape[2], pixels.Shape[3]);
        var size = images.Shape[2];
        var source = (byte*)((CpuStorage)pixels.Storage).Pointer + pixels.Offset;
        var pd = I(draws);
        var po = F(images);
        var (s, b) = (scale.ToArray(), black.ToArray());
        var (inLength, outLength) = (channels * height * width, channels * size * size);
        CpuParallel.For(batch, outLength * 4, (i0, i1) =>
        {
            for (var i = i0; i < i1; i++)
            {
                var draw = new ImageDraw(pd[3 * i], pd[(3 * i) + 1], pd[(3 * i) + 2] != 0);
                ImageTransform.Run(new ReadOnlySpan<byte>(source + ((long)i * inLength), inLength), channels, height, width, size, draw, s, b, new Span<float>(po + ((long)i * outLength), outLength));
            }
        });
    }

    protected override void PatchifyCore(Tensor images, int patch, Tensor patches)
    {
        var (batch, channels, height, width) = (images.Shape[0], images.Shape[1], images.Shape[2], images.Shape[3]);
        var (rows, cols) = (height / patch, width / patch);
        var features = patch * patch * channels;
        float* src = F(images), dst = F(patches);
        CpuParallel.For(batch * rows, cols * features, (w0, w1) =>
        {
            for (var w = w0; w < w1; w++)
            {
                var (b, pr) = Math.DivRem(w, rows);
                for (var pc = 0; pc < cols; pc++)
                {
                    var outRow = dst + ((((long)b * rows * cols) + (pr * cols) + pc) * features);
                    for (var p1 = 0; p1 < patch; p1++)
                    {
                        for (var p2 = 0; p2 < patch; p2++)
                        {
                            for (var c = 0; c < channels; c++)
                            {
                                var y = (pr * patch) + p1;
                                var x = (pc * patch) + p2;
                                outRow[(((p1 * patch) + p2) * channels) + c] = src[((((long)b * channels) + c) * height * width) + ((long)y * width) + x];
                            }
                        }
                    }
                }
            }
        });
    }

    protected override void AssembleTokensCore(Tensor patchEmbeddings, Tensor cls, Tensor positions, Tensor tokens)
    {
        var (batch, n, d) = (patchEmbeddings.Shape[0], patchEmbeddings.Shape[1], patchEmbeddings.Shape[2]);
        float* pe = F(patchEmbeddings), pc = F(cls), pp = F(positions), pt = F(tokens);
        CpuParallel.For(batch, (n + 1) * d, (b0, b1) =>
        {
            for (var b = b0; b < b1; b++)
            {
                var tok = pt + ((long)b * (n + 1) * d);
                TensorPrimitives.Add(new ReadOnlySpan<float>(pc, d), new ReadOnlySpan<float>(pp, d), new Span<float>(tok, d));
                TensorPrimitives.Add(new ReadOnlySpan<float>(pe + ((long)b * n * d), n * d), new ReadOnlySpan<float>(pp + d, n * d), new Span<float>(tok + d, n * d));
            }
        });
    }

    protected override void AssembleTokensBackwardCore(Tensor dTokens, GradOut dPatchEmbeddings, GradOut dCls, GradOut dPositions)
    {
        var (batch, t, d) = (dTokens.Shape[0], dTokens.Shape[1], dTokens.Shape[2]);
        var pdt = F(dTokens);
        if (dPatchEmbeddings.Tensor is { } dpe)
        {
            var pde = F(dpe);
            var accumulate = dPatchEmbeddings.Accumulate;
            CpuParallel.For(batch, t * d, (b0, b1) =>
            {
                for (var b = b0; b < b1; b++)
                {
                    var src = new ReadOnlySpan<float>(pdt + ((((long)b * t) + 1) * d), (t - 1) * d);
                    var dst = new Span<float>(pde + ((long)b * (t - 1) * d), (t - 1) * d);
                    if (accumulate)
                    {
                        TensorPrimitives.Add(dst, src, dst);
                    }
                    else
                    {
                        src.CopyTo(dst);
                    }
                }
            });
        }

        // Both parameter gradients are sums over the batch: of every token (pos) and of token 0 (cls).
        SumOverBatch(dPositions, t * d);
        SumOverBatch(dCls, d);

        void SumOverBatch(GradOut target, int length)
        {
            if (target.Tensor is not { } g)
            {
                return;
            }

            var sum = new Span<float>(F(g), length);
            if (!target.Accumulate)
            {
                sum.Clear();
            }

            for (var b = 0; b < batch; b++)
            {
                TensorPrimitives.Add(sum, new ReadOnlySpan<float>(pdt + ((long)b * t * d), length), sum);
            }
        }
    }

    protected override void PoolTokensCore(Tensor x, Pooling mode, Tensor output)
    {
        var (batch, t, d) = (x.Shape[0], x.Shape[1], x.Shape[2]);
        float* px = F(x), po = F(output);
        CpuParallel.For(batch, t * d, (b0, b1) =>
        {
            for (var b = b0; b < b1; b++)
            {
                var dst = new Span<float>(po + ((long)b * d), d);
                new ReadOnlySpan<float>(px + ((long)b * t * d), d).CopyTo(dst);
                if (mode == Pooling.Mean)
                {
                    for (var i = 1; i < t; i++)
                    {
                        TensorPrimitives.Add(dst, new ReadOnlySpan<float>(px + ((((long)b * t) + i) * d), d), dst);
                    }

                    TensorPrimitives.Multiply(dst, 1f / t, dst);
                }
            }
        });
    }

    protected override void PoolTokensBackwardCore(Tensor dOutput, Pooling mode, GradOut dx)
    {
        var target = dx.Tensor!;
        var accumulate = dx.Accumulate;
        var (batch, t, d) = (target.Shape[0], target.Shape[1], target.Shape[2]);
        float* pdo = F(dOutput), pdx = F(target);
        CpuParallel.For(batch, t * d, (b0, b1) =>
        {
            for (var b = b0; b < b1; b++)
            {
                var g = new ReadOnlySpan<float>(pdo + ((long)b * d), d);
                for (var i = 0; i < t; i++)
                {
                    var dst = new Span<float>(pdx + ((((long)b * t) + i) * d), d);
                    var weight = mode == Pooling.Mean ? 1f / t : i == 0 ? 1f : 0f;
                    if (accumulate)
                    {
                        if (weight != 0f)
                        {
                            TensorPrimitives.MultiplyAdd(g, weight, dst, dst);
                        }
                    }
                    else
                    {
                        TensorPrimitives.Multiply(g, weight, dst);
                    }
                }
            }
        });
    }
}
