namespace ParaCuda.Backends;

/// <summary>One image's random choices: where the crop window starts (relative to the unpadded image) and whether it is mirrored.</summary>
public readonly record struct ImageDraw(int Top, int Left, bool Flip);

/// <summary>
/// The arithmetic of turning stored bytes into model input, shared by the data loader's workers and the
/// <see cref="Ops.TransformImages"/> op on the CPU (kernels/transform_images.cu does the same, operation for
/// operation): bilinear resize of the C×H×W bytes to S×S (align_corners=false), a crop window offset by
/// (top, left) with black outside the image, an optional mirror, then pixel·scale[c] + black[c]. Each output
/// pixel comes straight from the source bytes; nothing intermediate is stored.
/// </summary>
public static class ImageTransform
{
    // Output sizes up to this keep the per-image resampling tables on the stack.
    private const int MaxStackSize = 1024;

    public static void Run(ReadOnlySpan<byte> image, int channels, int height, int width, int size, ImageDraw draw, ReadOnlySpan<float> scale, ReadOnlySpan<float> black, Span<float> destination)
    {
        Span<int> rowTaps = size <= MaxStackSize ? stackalloc int[2 * size] : new int[2 * size];
        Span<int> colTaps = size <= MaxStackSize ? stackalloc int[2 * size] : new int[2 * size];
        Span<float> rowWeights = size <= MaxStackSize ? stackalloc float[size] : new float[size];
        Span<float> colWeights = size <= MaxStackSize ? stackalloc float[size] : new float[size];
        var (rowStart, rowEnd) = Taps(height, size, draw.Top, mirror: false, rowTaps, rowWeights);
        var (colStart, colEnd) = Taps(width, size, draw.Left, draw.Flip, colTaps, colWeights);

        var plane = height * width;
        for (var c = 0; c < channels; c++)
        {
            var (s, b) = (scale[c], black[c]);
            var source = image.Slice(c * plane, plane);
            var output = destination.Slice(c * size * size, size * size);
            output[..(rowStart * size)].Fill(b);
            output[(rowEnd * size)..].Fill(b);
            for (var y = rowStart; y < rowEnd; y++)
            {
                var row = output.Slice(y * size, size);
                row[..colStart].Fill(b);
                row[colEnd..].Fill(b);
                var upper = source.Slice(rowTaps[2 * y] * width, width);
                var lower = source.Slice(rowTaps[(2 * y) + 1] * width, width);
                var wy = rowWeights[y];
                for (var x = colStart; x < colEnd; x++)
                {
                    var x0 = colTaps[2 * x];
                    var x1 = colTaps[(2 * x) + 1];
                    var wx = colWeights[x];
                    var top = upper[x0] + ((upper[x1] - upper[x0]) * wx);
                    var bottom = lower[x0] + ((lower[x1] - lower[x0]) * wx);
                    row[x] = ((top + ((bottom - top) * wy)) * s) + b;
                }
            }
        }
    }

    /// <summary>
    /// For each output position i along one axis: the output position maps (through the flip and the crop
    /// offset) to position p of the resized axis, and p to the two source taps and the weight of the
    /// second, with align_corners=false: source = (p + 0.5)·in/out − 0.5, clamped at 0. Returns the range
    /// of i whose p lies inside the image (the rest is padding); that range is contiguous either way.
    /// </summary>
    private static (int Start, int End) Taps(int input, int size, int offset, bool mirror, Span<int> taps, Span<float> weights)
    {
        var ratio = (float)input / size;
        var start = size;
        var end = 0;
        for (var i = 0; i < size; i++)
        {
            var p = (mirror ? size - 1 - i : i) + offset;
            if (p < 0 || p >= size)
            {
                continue;
            }

            start = Math.Min(start, i);
            end = i + 1;
            var source = Math.Max(((p + 0.5f) * ratio) - 0.5f, 0f);
            var i0 = Math.Min((int)source, input - 1);
            taps[2 * i] = i0;
            taps[(2 * i) + 1] = Math.Min(i0 + 1, input - 1);
            weights[i] = source - i0;
        }

        return start < end ? (start, end) : (0, 0);
    }
}
