using System.Runtime.CompilerServices;

namespace ParaCuda.Backends;

/// <summary>
/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
/// generator, so element i of a dropout mask depends only on (seed, offset, i) and any backend, thread
/// or GPU block can produce it independently. Element i uses word i % 4 of the block for counter
/// (i / 4, offset); kernels/dropout.cu implements the same function.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9;
    private const uint W1 = 0xBB67AE85;

    /// <summary>The four 32-bit words for counter block <paramref name="block"/> of stream <paramref name="offset"/>.</summary>
    public static (uint X, uint Y, uint Z, uint W) Block(ulong seed, ulong offset, ulong block)
    {
        uint c0 = (uint)block, c1 = (uint)(block >> 32), c2 = (uint)offset, c3 = (uint)(offset >> 32);
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        for (var round = 0; round < 10; round++)
        {
            var p0 = (ulong)M0 * c0;
            var p1 = (ulong)M1 * c2;
            var n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            var n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint)p1;
            c3 = (uint)p0;
            c0 = n0;
            c2 = n2;
            k0 += W0;
            k1 += W1;
        }

        return (c0, c1, c2, c3);
    }

    /// <summary>Maps a 32-bit word to [0, 1) with 24 bits of resolution (exact in float32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToUniform(uint word) => (word >> 8) * (1f / 16777216f);

    /// <summary>Uniform [0, 1) value of element <paramref name="index"/>.</summary>
    public static float Uniform(ulong seed, ulong offset, ulong index)
    {
        var (x, y, z, w) = Block(seed, offset, index >> 2);
        return ToUniform((index & 3) switch { 0 => x, 1 => y, 2 => z, _ => w });
    }
}
