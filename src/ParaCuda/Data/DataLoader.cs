namespace ParaCuda.Data;

/// <summary>
/// Serves a dataset in transformed batches of host memory, one epoch at a time. Background workers
/// build batches up to <c>prefetch</c> ahead of the consumer into pooled buffers. The result depends
/// only on the arguments: the order comes from (seed, epoch) and each sample's augmentation from
/// (seed, epoch, position in the epoch), never from the number of workers or their timing. With
/// <c>raw</c>, batches hold the stored bytes and each image's random draws instead of floats, for a device
/// that runs the transform itself (<see cref="Backends.Ops.TransformImages"/>): the same images, less to copy.
/// </summary>
public sealed class DataLoader : IDisposable
{
    private readonly Transform _transform;
    private readonly bool _shuffle;
    private readonly int _seed;
    private readonly int _prefetch;
    private readonly Stack<BatchBuffer> _pool = new();
    private readonly CancellationTokenSource _stop = new();

    /// <param name="data">The images to serve.</param>
    /// <param name="batchSize">Images per batch; the last batch of an epoch keeps the remainder (drop_last=False).</param>
    /// <param name="transform">Augmentation and normalisation; its mean and std must have one entry per channel.</param>
    /// <param name="shuffle">Whether each epoch visits the images in a fresh random order.</param>
    /// <param name="seed">Seeds the order and the augmentation.</param>
    /// <param name="workers">Threads building batches; 0 means one per processor.</param>
    /// <param name="prefetch">Batches built ahead of the one the consumer holds.</param>
    /// <param name="raw">Serve stored bytes and draws (<see cref="HostBatch.Pixels"/>, <see cref="HostBatch.Draws"/>) instead of transformed floats.</param>
    public DataLoader(ImageDataset data, int batchSize, Transform transform, bool shuffle, int seed, int workers = 0, int prefetch = 4, bool raw = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(transform);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(prefetch);
        transform.CheckChannels(data.Channels);
        Data = data;
        BatchSize = batchSize;
        _transform = transform;
        _shuffle = shuffle;
        _seed = seed;
        Workers = workers == 0 ? Engine.Threads : workers;
        _prefetch = prefetch;
        Raw = raw;
    }

    public ImageDataset Data { get; }

    /// <summary>Whether batches hold stored bytes and draws rather than transformed floats.</summary>
    public bool Raw { get; }

    public int BatchSize { get; }

    /// <summary>Threads that build batches.</summary>
    public int Workers { get; }

    /// <summary>Batches in one epoch, the last one possibly partial.</summary>
    public int BatchesPerEpoch => (Data.Count + BatchSize - 1) / BatchSize;

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/> from <paramref name="startBatch"/> on, exactly as a
    /// run from batch 0 would have seen them. Each batch is valid until the next one is requested. A
    /// worker's exception is rethrown here; ending the enumeration early stops the workers.
    /// </summary>
    public IEnumerable<HostBatch> Epoch(int epoch, int startBatch = 0, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        ArgumentOutOfRangeException.ThrowIfNegative(startBatch);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(startBatch, BatchesPerEpoch);
        return Batches(epoch, startBatch, ct);
    }

    /// <summary>Stops the workers of every epoch still running; their consumers get an <see cref="OperationCanceledException"/>.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }

    /// <summary>The order in which epoch <paramref name="epoch"/> visits the images.</summary>
    private int[] Order(int epoch) => _shuffle
        ? ImageDataset.Permutation(Data.Count, SplitMix64.For(RandomPurpose.Shuffle, _seed, epoch))
        : Enumerable.Range(0, Data.Count).ToArray();

    private IEnumerable<HostBatch> Batches(int epoch, int startBatch, CancellationToken ct)
    {
        using var run = new EpochRun(this, epoch, startBatch, ct);
        for (var b = startBatch; b < BatchesPerEpoch; b++)
        {
            using var batch = run.Take(b);
            yield return batch;
        }
    }

    private BatchBuffer Rent()
    {
        lock (_pool)
        {
            if (_pool.TryPop(out var buffer))
            {
                return buffer;
            }
        }

        return new BatchBuffer(BatchSize, Data.Channels, _transform.OutputSize, Raw ? Data.Height : 0, Raw ? Data.Width : 0);
    }

    private void Return(BatchBuffer buffer)
    {
        lock (_pool)
        {
            _pool.Push(buffer);
        }
    }

    /// <summary>Transforms the images of batch <paramref name="index"/> into <paramref name="buffer"/>; returns how many.</summary>
    private int Fill(BatchBuffer buffer, int index, int epoch, int[] order, CancellationToken ct)
    {
        var first = index * BatchSize;
        var count = Math.Min(BatchSize, Data.Count - first);
        var pixels = Data.Pixels.Span;
        var labels = Data.Labels.Span;
        var (channels, height, width, imageBytes) = (Data.Channels, Data.Height, Data.Width, Data.ImageBytes);
        var imageLength = buffer.ImageLength;
        for (var i = 0; i < count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var position = first + i;
            var sample = order[position];
            var random = SplitMix64.For(RandomPurpose.Augment, _seed, epoch, position);
            var image = pixels.Slice(sample * imageBytes, imageBytes);
            if (Raw)
            {
                image.CopyTo(buffer.Pixels.AsSpan(i * imageBytes, imageBytes));
                var (top, left, flip) = _transform.Draw(ref random);
                (buffer.Draws[3 * i], buffer.Draws[(3 * i) + 1], buffer.Draws[(3 * i) + 2]) = (top, left, flip ? 1 : 0);
            }
            else
            {
                _transform.Apply(image, channels, height, width, buffer.Images.AsSpan(i * imageLength, imageLength), ref random);
            }

            buffer.Labels[i] = labels[sample];
        }

        return count;
    }

    /// <summary>
    /// The workers and hand-over of one epoch. A semaphore of prefetch + 1 slots bounds the batches out
    /// of the pool (the one the consumer holds plus those built ahead). Workers claim batch numbers in
    /// order after taking a slot, so the batch the consumer waits for is always being built or done:
    /// no deadlock, and a worker's failure lands on its own batch, which the consumer reaches in turn.
    /// </summary>
    private sealed class EpochRun : IDisposable
    {
        private readonly DataLoader _loader;
        private readonly int _epoch;
        private readonly int _start;
        private readonly int[] _order;
        private readonly SemaphoreSlim _slots;
        private readonly CancellationTokenSource _cancel;
        private readonly TaskCompletionSource<HostBatch>[] _results;
        private readonly Action<BatchBuffer> _release;
        private readonly Task[] _workers;
        private int _next;
        private int _taken;

        public EpochRun(DataLoader loader, int epoch, int start, CancellationToken ct)
        {
            _loader = loader;
            _epoch = epoch;
            _start = start;
            _next = start;
            _taken = start;
            _order = loader.Order(epoch);
            _slots = new SemaphoreSlim(loader._prefetch + 1);
            _cancel = CancellationTokenSource.CreateLinkedTokenSource(loader._stop.Token, ct);
            _results = new TaskCompletionSource<HostBatch>[loader.BatchesPerEpoch - start];
            for (var i = 0; i < _results.Length; i++)
            {
                _results[i] = new TaskCompletionSource<HostBatch>(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            _release = Release;
            // More workers than slots would only wait.
            _workers = new Task[Math.Min(Math.Min(loader.Workers, loader._prefetch + 1), _results.Length)];
            for (var w = 0; w < _workers.Length; w++)
            {
                _workers[w] = Task.Run(WorkAsync, CancellationToken.None);
            }
        }

        /// <summary>Waits for batch <paramref name="index"/>; rethrows the exception that stopped its worker.</summary>
        public HostBatch Take(int index)
        {
            var batch = _results[index - _start].Task.WaitAsync(_cancel.Token).GetAwaiter().GetResult();
            _taken = index + 1;
            return batch;
        }

        public void Dispose()
        {
            _cancel.Cancel();
            Task.WaitAll(_workers);

            // Batches built ahead that the consumer never took go straight back to the pool.
            for (var i = _taken - _start; i < _results.Length; i++)
            {
                if (_results[i].Task.IsCompletedSuccessfully)
                {
                    _results[i].Task.Result.Dispose();
                }
            }

            _cancel.Dispose();
            _slots.Dispose();
        }

        private void Release(BatchBuffer buffer)
        {
            _loader.Return(buffer);
            _slots.Release();
        }

        private async Task WorkAsync()
        {
            var token = _cancel.Token;
            while (true)
            {
                try
                {
                    await _slots.WaitAsync(token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var index = Interlocked.Increment(ref _next) - 1;
                if (index >= _start + _results.Length)
                {
                    return;
                }

                var buffer = _loader.Rent();
                int count;
                try
                {
                    count = _loader.Fill(buffer, index, _epoch, _order, token);
                }
                catch (Exception e)
                {
                    // Whatever went wrong belongs to the consumer, who meets it at this batch.
                    _loader.Return(buffer);
                    _results[index - _start].SetException(e);
                    return;
                }

                _results[index - _start].SetResult(new HostBatch(index, count, buffer, _release));
            }
        }
    }
}
