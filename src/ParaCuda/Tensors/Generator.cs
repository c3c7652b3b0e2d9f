namespace ParaCuda.Tensors;

/// <summary>
/// The random state of a model: a seed plus a counter of random streams handed out. Each dropout
/// call takes the next stream (offset) and the counter-based Philox RNG turns (seed, offset, element)
/// into a number, so a run is reproducible from these two integers alone, on any device.
/// </summary>
public sealed class Generator(ulong seed)
{
    private (Tensor Base, ulong Start)? _relative;

    public ulong Seed { get; set; } = seed;

    /// <summary>Streams handed out so far; the next call to <see cref="NextStream"/> returns this.</summary>
    public ulong Offset { get; set; }

    public ulong NextStream() => Offset++;

    /// <summary>
    /// The next stream as a kernel takes it: an offset, and the device tensor (null outside
    /// <see cref="OffsetsFrom"/>) whose value the kernel adds to it when it runs.
    /// </summary>
    public (ulong Offset, Tensor? Base) NextOnDevice()
    {
        var offset = NextStream();
        return _relative is { } r ? (offset - r.Start, r.Base) : (offset, null);
    }

    /// <summary>
    /// Until disposed, streams are handed out relative to the count now, with <paramref name="offsetBase"/> (Int32
    /// [2] on the device, low and high words) to be added when the kernels run: work captured meanwhile draws the
    /// streams base, base + 1, … on each replay, so setting the base to <see cref="Offset"/> before a replay gives
    /// the masks the same calls would draw issued one by one.
    /// </summary>
    public IDisposable OffsetsFrom(Tensor offsetBase)
    {
        ArgumentNullException.ThrowIfNull(offsetBase);
        if (_relative is not null)
        {
            throw new InvalidOperationException("this generator already hands out streams relative to a device base");
        }

        _relative = (offsetBase, Offset);
        return new Restore(this);
    }

    private sealed class Restore(Generator generator) : IDisposable
    {
        public void Dispose() => generator._relative = null;
    }
}
