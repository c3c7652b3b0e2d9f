namespace ParaCuda.Data;

/// <summary>
/// One batch of transformed images in host memory, lent by a <see cref="DataLoader"/>. Its buffers come
/// from a small pool: they stay valid until the consumer asks for the next batch or disposes this one,
/// and are then reused, so copy out what must outlive that. After that point this object refuses to hand
/// out the buffers; memory obtained earlier keeps pointing at them and will see later batches.
/// </summary>
public sealed class HostBatch : IDisposable
{
    private BatchBuffer? _buffer;
    private Action<BatchBuffer>? _release;

    internal HostBatch(int index, int count, BatchBuffer buffer, Action<BatchBuffer> release)
    {
        Index = index;
        Count = count;
        Channels = buffer.Channels;
        Size = buffer.Size;
        _buffer = buffer;
        _release = release;
    }

    /// <summary>Position of this batch in its epoch.</summary>
    public int Index { get; }

    /// <summary>Images in this batch; the last batch of an epoch may hold fewer than the batch size.</summary>
    public int Count { get; }

    public int Channels { get; }

    /// <summary>Height and width of every image.</summary>
    public int Size { get; }

    /// <summary>The images, NCHW: Count·Channels·Size·Size floats (a loader in raw mode has none).</summary>
    public ReadOnlyMemory<float> Images => Buffer.Images.AsMemory(0, Count * Buffer.ImageLength);

    /// <summary>Raw mode: the stored images, NCHW: Count·Channels·StoredHeight·StoredWidth bytes.</summary>
    public ReadOnlyMemory<byte> Pixels => Buffer.Pixels.AsMemory(0, Count * Buffer.StoredBytes);

    /// <summary>Raw mode: each image's random draws, (top, left, flip) in Count·3 ints.</summary>
    public ReadOnlyMemory<int> Draws => Buffer.Draws.AsMemory(0, Count * 3);

    /// <summary>Raw mode: the stored images' height and width.</summary>
    public (int Height, int Width) StoredSize => (Buffer.StoredHeight, Buffer.StoredWidth);

    /// <summary>The Count labels.</summary>
    public ReadOnlyMemory<int> Labels => Buffer.Labels.AsMemory(0, Count);

    private BatchBuffer Buffer => Volatile.Read(ref _buffer)
        ?? throw new ObjectDisposedException(nameof(HostBatch), $"batch {Index} went back to the loader's pool; copy its data before moving to the next batch");

    /// <summary>Gives the buffers back to the loader early; later calls do nothing.</summary>
    public void Dispose()
    {
        var release = Interlocked.Exchange(ref _release, null);
        if (release is not null)
        {
            var buffer = Interlocked.Exchange(ref _buffer, null)!;
            release(buffer);
        }
    }
}

/// <summary>The reusable storage behind <see cref="HostBatch"/>es: room for one full batch, as floats or (raw) as bytes and draws.</summary>
internal sealed class BatchBuffer
{
    public BatchBuffer(int capacity, int channels, int size, int storedHeight, int storedWidth)
    {
        Channels = channels;
        Size = size;
        StoredHeight = storedHeight;
        StoredWidth = storedWidth;
        var raw = storedHeight > 0;
        Images = raw ? [] : GC.AllocateUninitializedArray<float>(capacity * ImageLength);
        Pixels = raw ? GC.AllocateUninitializedArray<byte>(capacity * StoredBytes) : [];
        Draws = raw ? new int[capacity * 3] : [];
        Labels = new int[capacity];
    }

    public int StoredHeight { get; }

    public int StoredWidth { get; }

    /// <summary>Bytes per stored image.</summary>
    public int StoredBytes => Channels * StoredHeight * StoredWidth;

    public byte[] Pixels { get; }

    public int[] Draws { get; }

    public int Channels { get; }

    public int Size { get; }

    /// <summary>Floats per image.</summary>
    public int ImageLength => Channels * Size * Size;

    public float[] Images { get; }

    public int[] Labels { get; }
}
