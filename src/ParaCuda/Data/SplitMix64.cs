namespace ParaCuda.Data;

/// <summary>
/// A tiny, fast random stream (Steele, Lea and Flood's SplitMix64). Cheap to create, so every sample
/// gets its own stream seeded from (seed, epoch, position): augmentation then does not depend on
/// which thread builds the sample or in which order.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private const ulong Gamma = 0x9E3779B97F4A7C15;

    private ulong _state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        _state += Gamma;
        return Mix(_state);
    }

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    public int Next(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);

        // Multiply-shift instead of modulo: no division, and the bias (below 2^-32) is irrelevant here.
        return (int)(((NextUInt64() >> 32) * (ulong)maxExclusive) >> 32);
    }

    /// <summary>True or false with probability 1/2 each.</summary>
    public bool NextBool() => (NextUInt64() >> 63) != 0;

    /// <summary>A uniform double in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>A standard normal sample (Box-Muller).</summary>
    public double NextGaussian()
    {
        var u = 1.0 - NextDouble();
        var v = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u)) * Math.Cos(2.0 * Math.PI * v);
    }

    /// <summary>
    /// The stream for one purpose, seed and pair of coordinates (epoch and position, say). Each input is
    /// mixed in turn, so nearby coordinates give unrelated streams and different purposes never share one.
    /// </summary>
    internal static SplitMix64 For(RandomPurpose purpose, int seed, long a = 0, long b = 0)
    {
        var h = Mix((ulong)purpose + Gamma);
        h = Mix(h ^ (uint)seed);
        h = Mix(h ^ (ulong)a);
        h = Mix(h ^ (ulong)b);
        return new SplitMix64(h);
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}

/// <summary>What a derived random stream is for; keeps the streams of different uses apart.</summary>
internal enum RandomPurpose : ulong
{
    Shuffle = 1,
    Augment,
    Split,
    SyntheticPattern,
    SyntheticImage,
}
