using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Inference;

/// <summary>
/// Logits for any number of images in one call. Images go through the model in batches, each batch's
/// intermediates are freed before the next, and the logits collect on the device and are read once at the
/// end, so memory is bounded by the batch size, not by the number of images.
/// </summary>
public static class Prediction
{
    /// <summary>Images per batch unless a call says otherwise.</summary>
    public const int DefaultBatchSize = 256;

    /// <summary>
    /// Predicts stored images: <paramref name="pixels"/> holds <paramref name="count"/> images of
    /// C×<paramref name="height"/>×<paramref name="width"/> bytes, channel planes one after another (NCHW, C the
    /// model's channels). They are resized to the model's input size and normalised as in evaluation.
    /// </summary>
    /// <param name="model">The model; it is switched to inference mode for the call and back afterwards.</param>
    /// <param name="pixels">The images' bytes.</param>
    /// <param name="count">Number of images.</param>
    /// <param name="height">Stored image height in pixels.</param>
    /// <param name="width">Stored image width in pixels.</param>
    /// <param name="prefix">Branches to use (the first k); 0 means all.</param>
    /// <param name="batchSize">Images per batch: memory grows with it, speed up to a point.</param>
    /// <param name="ct">Stops between batches.</param>
    /// <param name="graphs">
    /// On a CUDA device, capture the model's forward for a full batch once and replay it for every full batch (one
    /// launch's host cost instead of one per kernel); needs every branch on the model's stream (<c>--branch-exec
    /// serial</c> or <c>batched</c>). Ignored where the context cannot capture (the CPU).
    /// </param>
    /// <exception cref="ArgumentException">The sizes do not match the pixels or the model, or the prefix or batch size is out of range.</exception>
    public static Predictions Predict(this VisionModel model, ReadOnlyMemory<byte> pixels, int count, int height, int width, int prefix = 0, int batchSize = DefaultBatchSize, bool graphs = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var channels = model.Config.Channels;
        if (height <= 0 || width <= 0 || pixels.Length != (long)count * channels * height * width)
        {
            throw new ArgumentException($"{count} images of {channels}×{height}×{width} bytes need {(long)count * channels * Math.Max(height, 0) * Math.Max(width, 0)} bytes, got {pixels.Length}", nameof(pixels));
        }

        return model.Predict(new ImageDataset("images", channels, height, width, model.Config.Classes, pixels, new int[count]), prefix, batchSize, graphs, ct);
    }

    /// <summary>Predicts the images of a dataset (its labels are not used), transformed as in evaluation.</summary>
    /// <inheritdoc cref="Predict(VisionModel, ReadOnlyMemory{byte}, int, int, int, int, int, bool, CancellationToken)"/>
    public static Predictions Predict(this VisionModel model, ImageDataset images, int prefix = 0, int batchSize = DefaultBatchSize, bool graphs = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        var k = CheckRequest(model, prefix, batchSize);
        if (images.Channels != model.Config.Channels)
        {
            throw new ArgumentException($"images have {images.Channels} channels but the model takes {model.Config.Channels}", nameof(images));
        }

        var input = new BatchInput(model, Transform.Reference(images.Channels, model.Config.ImageSize, train: false));
        using var loader = input.Loader(images, batchSize, shuffle: false, seed: 0);
        return Collect(model, images.Count, k, batchSize, graphs, logits =>
        {
            foreach (var batch in loader.Epoch(0, ct: ct))
            {
                using var scope = TensorScope.Begin();
                var (pixelsOnDevice, _) = input.ToDevice(batch);
                logits(batch.Index * batchSize, pixelsOnDevice);
            }
        });
    }

    /// <summary>
    /// Predicts model input as it is: <paramref name="images"/> [N, C, S, S] float32, already normalised (what a
    /// PyTorch model of the same weights would be given), on any device.
    /// </summary>
    /// <inheritdoc cref="Predict(VisionModel, ReadOnlyMemory{byte}, int, int, int, int, int, bool, CancellationToken)"/>
    public static Predictions Predict(this VisionModel model, Tensor images, int prefix = 0, int batchSize = DefaultBatchSize, bool graphs = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        var k = CheckRequest(model, prefix, batchSize);
        var size = model.Config.ImageSize;
        if (images.Rank != 4 || images.DType != DType.Float32 || images.Shape[1] != model.Config.Channels || images.Shape[2] != size || images.Shape[3] != size)
        {
            throw new ArgumentException($"images {images.Shape} {images.DType} do not fit the model, which takes float32 [N, {model.Config.Channels}, {size}, {size}]", nameof(images));
        }

        var count = images.Shape[0];
        return Collect(model, count, k, batchSize, graphs, logits =>
        {
            for (var start = 0; start < count; start += batchSize)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = TensorScope.Begin();
                var chunk = images.NarrowView(start, Math.Min(batchSize, count - start));
                logits(start, chunk.Context == model.Context ? chunk : F.Transfer(chunk, model.Context));
            }
        });
    }

    private static int CheckRequest(VisionModel model, int prefix, int batchSize)
    {
        if (prefix < 0 || prefix > model.Prefixes)
        {
            throw new ArgumentOutOfRangeException(nameof(prefix), $"prefix {prefix} is outside 1..{model.Prefixes} (0 for all branches)");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        return prefix == 0 ? model.Prefixes : prefix;
    }

    /// <summary>
    /// Runs <paramref name="feed"/>, which hands each batch (its first row, its images) to the model; the logits
    /// gather on the device and are read once. With graphs, full batches replay one captured forward.
    /// </summary>
    private static Predictions Collect(VisionModel model, int count, int prefix, int batchSize, bool graphs, Action<Action<int, Tensor>> feed)
    {
        var classes = model.Config.Classes;
        var context = model.Context;
        var capture = graphs && context.CanCapture;
        if (capture && model.Parameters().Any(p => p.Context != context))
        {
            throw new ArgumentException($"graphs capture one stream, but this model's branches run on streams of their own: build it with --branch-exec serial or batched", nameof(graphs));
        }

        using var unscoped = TensorScope.Unscoped();
        using var all = Tensor.Empty(new Shape(Math.Max(count, 1), classes), DType.Float32, context);
        using var replay = capture ? new ForwardGraph(model, prefix) : null;
        using (model.InferenceMode())
        {
            feed((start, images) =>
            {
                var logits = replay is not null && images.Shape[0] == batchSize ? replay.Run(images) : model.Forward(images, prefix);
                context.Ops.CopyAcross(logits, all.NarrowView(start, images.Shape[0]));
            });
        }

        var host = new float[count * classes];
        if (count > 0)
        {
            all.CopyTo<float>(host);
        }

        return new Predictions(host, count, classes, prefix);
    }

    /// <summary>The model's forward for one input shape, captured once and replayed: a static input it copies each batch into, and the static output the replays write.</summary>
    private sealed class ForwardGraph(VisionModel model, int prefix) : IDisposable
    {
        private Tensor? _input;
        private Tensor? _output;
        private ContextGraph? _graph;

        public Tensor Run(Tensor images)
        {
            var context = model.Context;
            if (_graph is null)
            {
                using (TensorScope.Unscoped())
                {
                    _input = Tensor.Empty(images.Shape, DType.Float32, context);
                }

                context.Ops.Copy(images, _input);
                // Once eagerly first: kernels load and cuBLAS starts outside the capture.
                using (TensorScope.Begin())
                {
                    model.Forward(_input, prefix);
                }

                using (TensorScope.Unscoped())
                {
                    _graph = context.Capture(() =>
                    {
                        using var scope = TensorScope.Begin();
                        _output = scope.Keep(model.Forward(_input, prefix));
                    });
                }
            }
            else
            {
                context.Ops.Copy(images, _input!);
            }

            _graph.Replay();
            return _output!;
        }

        public void Dispose()
        {
            _graph?.Dispose();
            _output?.Dispose();
            _input?.Dispose();
        }
    }
}
