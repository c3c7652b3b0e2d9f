namespace ParaCuda.Tensors;

/// <summary>
/// The random state of a model: a seed plus a counter of random streams handed out. Each dropout
/// call takes the next stream (offset) and the counter-based Philox RNG turns (seed, offset, element)
/// into a number, so a run is reproducible from these two integers alone, on any device.
/// </summary>
public sealed class Generator(ulong seed)
{
    public ulong Seed { get; set; } = seed;

    /// <summary>Streams handed out so far; the next call to <see cref="NextStream"/> returns this.</summary>
    public ulong Offset { get; set; }

    public ulong NextStream() => Offset++;
}
