using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Tensors;

namespace ParaCuda.Training;

/// <summary>
/// How host batches reach a model's device. On the CPU: the loader's transformed floats, as they are. On a
/// GPU: the stored bytes, each image's random draws and the labels, copied on the backend's upload stream
/// through its pinned staging ring (so the copy of the next batch overlaps the steps on this one, and the host
/// never waits), then resized, cropped, flipped and normalised on the model's stream by
/// <see cref="Ops.TransformImages"/>, bit for bit as the CPU would.
/// </summary>
public sealed class BatchInput
{
    private readonly VisionModel _model;
    private readonly Transform _transform;
    private readonly float[] _scale;
    private readonly float[] _black;

    public BatchInput(VisionModel model, Transform transform)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(transform);
        _model = model;
        _transform = transform;
        (_scale, _black) = transform.Normalization();
    }

    /// <summary>Whether batches travel as stored bytes (a GPU) or as transformed floats (the CPU).</summary>
    public bool Raw => _model.Context.Device.Kind == DeviceKind.Cuda;

    /// <summary>A loader that serves batches in the form this input expects.</summary>
    public DataLoader Loader(ImageDataset data, int batchSize, bool shuffle, int seed, int workers = 0) =>
        new(data, batchSize, _transform, shuffle, seed, workers, raw: Raw);

    /// <summary>The batch as images [N, C, S, S] and labels [N] on the model's context.</summary>
    public (Tensor Images, Tensor Labels) ToDevice(HostBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var main = _model.Context;
        var (n, c, s) = (batch.Count, batch.Channels, batch.Size);
        if (!Raw)
        {
            return (Tensor.FromArray(batch.Images.Span, new Shape(n, c, s, s), main), Tensor.FromArray(batch.Labels.Span, new Shape(n), main));
        }

        var upload = main.Backend.UploadContext;
        var (height, width) = batch.StoredSize;
        var pixels = Tensor.FromArray(batch.Pixels.Span, new Shape(n, c, height, width), upload);
        var draws = Tensor.FromArray(batch.Draws.Span, new Shape(n, 3), upload);
        var labels = Tensor.FromArray(batch.Labels.Span, new Shape(n), upload);
        var images = Tensor.Empty(new Shape(n, c, s, s), DType.Float32, main);
        main.Ops.TransformImages(F.Transfer(pixels, main), F.Transfer(draws, main), _scale, _black, images);
        return (images, F.Transfer(labels, main));
    }
}
