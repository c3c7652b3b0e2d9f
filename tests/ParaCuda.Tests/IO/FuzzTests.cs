using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.IO;

/// <summary>
/// The readers against mutated files: every one of 10,000 mutated safetensors files and 10,000 mutated IDX
/// files is either loaded or refused with the format's own exception, within a memory budget and a time limit
/// each, whatever sizes its header claims. The seed is fixed, so a failure names a case that can be replayed.
/// </summary>
public class FuzzTests
{
    private const int Cases = 10_000;
    private const long MemoryBudget = 64L << 20;
    private static readonly TimeSpan s_timeLimit = TimeSpan.FromSeconds(2);

    [Test]
    public void Mutated_safetensors_files_load_or_are_refused_within_bounds()
    {
        var path = Path.Combine(Path.GetTempPath(), $"paracuda-fuzz-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Write(path, new Dictionary<string, Tensor>
            {
                ["weight"] = Tensor.FromArray(Enumerable.Range(0, 60).Select(i => i * 0.5f).ToArray(), new Shape(6, 10)),
                ["bias"] = Tensor.FromArray([1f, 2f, 3f], new Shape(3)),
                ["steps"] = Tensor.FromArray([7, 8], new Shape(2)),
            }, new Dictionary<string, string> { ["paracuda.config"] = "{\"branches\":4,\"dim\":64}" });
            var written = File.ReadAllBytes(path);
            // The same file without ParaCuda's checksum, as another writer makes it: only the structure guards it.
            var unchecked_ = Unchecksummed(written);
            var random = new Random(20261126);
            var loaded = 0;
            for (var i = 0; i < Cases; i++)
            {
                var bytes = Mutate(i % 2 == 0 ? written : unchecked_, random, HeaderEnd(written));
                loaded += Within(i, () =>
                {
                    using var file = SafeTensors.Read(new MemoryStream(bytes), $"case {i}");
                }, typeof(CheckpointFormatException)) ? 1 : 0;
            }

            Assert.That(loaded, Is.GreaterThan(0), "some mutations leave a loadable file (a changed tensor value without a checksum)");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Mutated_idx_files_load_or_are_refused_within_bounds()
    {
        var images = Idx(0x803, [20, 28, 28], Enumerable.Range(0, 20 * 28 * 28).Select(i => (byte)(i * 7)).ToArray());
        var labels = Idx(0x801, [20], Enumerable.Range(0, 20).Select(i => (byte)(i % 10)).ToArray());
        var random = new Random(20261127);
        var loaded = 0;
        for (var i = 0; i < Cases; i++)
        {
            var isImages = i % 2 == 0;
            var source = isImages ? images : labels;
            var bytes = Mutate(i % 4 < 2 ? source : Gzip(source), random, i % 4 < 2 ? (isImages ? 16 : 8) : 24);
            loaded += Within(i, () =>
            {
                var stream = ParaCuda.Data.Idx.Decompressed(new MemoryStream(bytes));
                if (isImages)
                {
                    ParaCuda.Data.Idx.ReadImages(stream, $"case {i}");
                }
                else
                {
                    ParaCuda.Data.Idx.ReadLabels(stream, $"case {i}");
                }
            }, typeof(DataFormatException)) ? 1 : 0;
        }

        Assert.That(loaded, Is.GreaterThan(0), "some mutations leave a readable file (a changed pixel)");
    }

    /// <summary>Runs one case: true if it loaded, false if it was refused with <paramref name="refusal"/>; anything else, or too much memory or time, fails.</summary>
    private static bool Within(int i, Action read, Type refusal)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        bool loaded;
        try
        {
            read();
            loaded = true;
        }
        catch (Exception e) when (e.GetType() == refusal)
        {
            loaded = false;
        }
        catch (Exception e)
        {
            Assert.Fail($"case {i}: {e.GetType().Name} instead of {refusal.Name}: {e.Message}");
            throw;
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.LessThan(MemoryBudget), $"case {i}: allocated {allocated} bytes");
        Assert.That(clock.Elapsed, Is.LessThan(s_timeLimit), $"case {i}: took {clock.Elapsed}");
        return loaded;
    }

    /// <summary>One random mutation, mostly in the first <paramref name="header"/> bytes, where sizes are claimed.</summary>
    private static byte[] Mutate(byte[] original, Random random, int header)
    {
        var bytes = original.ToArray();
        switch (random.Next(6))
        {
            case 0: // a few flipped bits in the header
                for (var k = random.Next(1, 5); k > 0; k--)
                {
                    bytes[random.Next(Math.Min(header, bytes.Length))] ^= (byte)(1 << random.Next(8));
                }

                return bytes;
            case 1: // a size field (or the length prefix) set to an extreme value
                var at = random.Next(Math.Max(1, Math.Min(header, bytes.Length) - 4));
                BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at), random.Next(3) switch { 0 => uint.MaxValue, 1 => 0x7FFFFFFF, _ => (uint)random.Next() });
                return bytes;
            case 2: // a digit of the JSON (a shape, an offset) replaced by a long run of nines
                var digits = Enumerable.Range(0, Math.Min(header, bytes.Length)).Where(j => bytes[j] is >= (byte)'0' and <= (byte)'9').ToList();
                if (digits.Count == 0)
                {
                    return bytes;
                }

                var d = digits[random.Next(digits.Count)];
                return [.. bytes[..d], .. Encoding.ASCII.GetBytes(new string('9', random.Next(1, 20))), .. bytes[(d + 1)..]];
            case 3: // truncated anywhere
                return bytes[..random.Next(bytes.Length)];
            case 4: // garbage appended
                var tail = new byte[random.Next(1, 64)];
                random.NextBytes(tail);
                return [.. bytes, .. tail];
            default: // a byte anywhere changed
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                return bytes;
        }
    }

    private static int HeaderEnd(byte[] safetensors) => 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(safetensors);

    /// <summary>A safetensors file rebuilt without ParaCuda's checksum entry.</summary>
    private static byte[] Unchecksummed(byte[] file)
    {
        var json = Encoding.UTF8.GetString(file, 8, HeaderEnd(file) - 8).TrimEnd();
        var key = $"\"{SafeTensors.ChecksumMetadataKey}\":\"";
        var at = json.IndexOf(key, StringComparison.Ordinal);
        var end = json.IndexOf('"', at + key.Length) + 1;
        var without = json.Remove(at, end - at).Replace(",,", ",", StringComparison.Ordinal).Replace("{,", "{", StringComparison.Ordinal).Replace(",}", "}", StringComparison.Ordinal);
        var header = Encoding.UTF8.GetBytes(without.PadRight((without.Length + 7) / 8 * 8));
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
        return [.. prefix, .. header, .. file[HeaderEnd(file)..]];
    }

    private static byte[] Idx(int magic, int[] dims, byte[] payload)
    {
        var bytes = new byte[4 + (4 * dims.Length) + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + (4 * i)), dims[i]);
        }

        payload.CopyTo(bytes, 4 + (4 * dims.Length));
        return bytes;
    }

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var zip = new GZipStream(output, CompressionLevel.Fastest))
        {
            zip.Write(bytes);
        }

        return output.ToArray();
    }
}
