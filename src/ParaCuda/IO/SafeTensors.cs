using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.IO;

/// <summary>
/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
/// little-endian header length, a JSON header, then every tensor's raw little-endian bytes back to back.
/// Files interoperate with the Python library; tensor data is streamed through a small buffer both ways.
/// </summary>
public static class SafeTensors
{
    /// <summary>
    /// Metadata key under which <see cref="Write"/> records the SHA-256 (lowercase hex) of the whole file as it
    /// would be with this value replaced by zeros: header and data, so a change to either (a model config, a
    /// training state, a tensor's bytes) is found. <see cref="Read(string, ComputeContext?)"/> and <see cref="Verify"/> check it. Other
    /// tools ignore it.
    /// </summary>
    public const string ChecksumMetadataKey = "paracuda.sha256.file";

    /// <summary>Files written before <see cref="ChecksumMetadataKey"/> record the SHA-256 of the data section alone under this key; still verified.</summary>
    public const string DataChecksumMetadataKey = "paracuda.sha256";

    /// <summary>Host staging buffer per copy: large enough to amortise the per-chunk overhead, small next to a checkpoint.</summary>
    private const int ChunkBytes = 4 << 20;

    private const int Sha256HexLength = 64;

    private static readonly JsonWriterOptions s_json = new()
    {
        // Like the reference writer: only what JSON requires is escaped, so names stay readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// Writes <paramref name="tensors"/> (any device, any layout: views are written by their logical contents)
    /// and <paramref name="metadata"/> to <paramref name="path"/>, atomically: the file is built under a temporary
    /// name in the same directory, flushed to disk and renamed over <paramref name="path"/>, so a crash or error
    /// never leaves a partial file there. Identical inputs give byte-identical files.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor name is empty, duplicated or <c>__metadata__</c>, a tensor or a metadata value is null.</exception>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = Plan(tensors);

        // Sorted so that the header, and so the file, depends only on the contents.
        var header = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
        {
            header[key] = value ?? throw new ArgumentException($"metadata value of '{key}' is null", nameof(metadata));
        }

        // The header is hashed with a placeholder of the digest's length in place of the digest, then the data
        // as it is written; the placeholder keeps every offset fixed until the header is rewritten with the value.
        header[ChecksumMetadataKey] = new string('0', Sha256HexLength);

        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath) ?? throw new ArgumentException($"'{path}' is not a file path", nameof(path));
        var temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        var committed = false;
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                hash.AppendData(WriteHeader(stream, entries, header));
                WriteData(stream, entries, hash);
                header[ChecksumMetadataKey] = Convert.ToHexStringLower(hash.GetHashAndReset());
                stream.Position = 0;
                WriteHeader(stream, entries, header);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, fullPath, overwrite: true);
            committed = true;
        }
        finally
        {
            if (!committed)
            {
                DeleteQuietly(temp);
            }
        }
    }

    /// <summary>
    /// Loads every tensor of a safetensors file onto <paramref name="context"/> (the default context if null).
    /// The whole header is validated before any tensor is allocated; the checksum recorded by
    /// <see cref="Write"/>, when present, is verified after the data has been streamed in.
    /// The tensors belong to the returned file, not to any <see cref="TensorScope"/>.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is malformed, truncated or corrupted.</exception>
    public static SafeTensorsFile Read(string path, ComputeContext? context = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = OpenRead(path);
        return Read(stream, path, context);
    }

    /// <summary><see cref="Read(string, ComputeContext?)"/> from a seekable stream; <paramref name="path"/> names it in errors.</summary>
    internal static SafeTensorsFile Read(Stream stream, string path, ComputeContext? context = null)
    {
        var header = SafeTensorsHeader.Read(stream, path);
        var (hash, recorded) = StartChecksum(header, path);
        using var owned = hash;
        var tensors = new Dictionary<string, Tensor>(header.Entries.Count, StringComparer.Ordinal);
        try
        {
            var buffer = new byte[StagingLength(header.Entries.Select(e => e.End - e.Begin))];
            using (TensorScope.Unscoped())
            {
                foreach (var entry in header.Entries)
                {
                    var tensor = Tensor.Empty(entry.Shape, entry.DType, context);
                    tensor.Name = entry.Name;
                    tensors.Add(entry.Name, tensor);
                    Load(stream, tensor, buffer, hash);
                }
            }

            FinishChecksum(hash, recorded, path);
            return new SafeTensorsFile(path, tensors, header.Metadata);
        }
        catch
        {
            foreach (var tensor in tensors.Values)
            {
                tensor.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Checks a file end to end without loading it: the header, the layout, and the checksum (of header and
    /// data, or of the data alone in older files). Before a model is built from a file's header, this is what
    /// makes that header trustworthy.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is malformed, truncated or corrupted.</exception>
    public static void Verify(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = OpenRead(path);
        var header = SafeTensorsHeader.Read(stream, path);
        var (hash, recorded) = StartChecksum(header, path);
        using var owned = hash;
        if (hash is null)
        {
            return;
        }

        var buffer = new byte[ChunkBytes];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, read);
        }

        FinishChecksum(hash, recorded, path);
    }

    /// <summary>The <c>__metadata__</c> of a file, from its header alone (validated, but the checksum is not verified).</summary>
    /// <exception cref="CheckpointFormatException">The header is malformed or does not match the file's size.</exception>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = OpenRead(path);
        return SafeTensorsHeader.Read(stream, path).Metadata;
    }

    /// <summary>Each tensor's dtype and shape, in file order, from the header alone (validated, but the checksum is not verified).</summary>
    /// <exception cref="CheckpointFormatException">The header is malformed or does not match the file's size.</exception>
    public static IReadOnlyDictionary<string, (DType DType, Shape Shape)> ReadIndex(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = OpenRead(path);
        var header = SafeTensorsHeader.Read(stream, path);
        var index = new Dictionary<string, (DType DType, Shape Shape)>(header.Entries.Count, StringComparer.Ordinal);
        foreach (var entry in header.Entries)
        {
            index.Add(entry.Name, (entry.DType, entry.Shape));
        }

        return index.AsReadOnly();
    }

    /// <summary>
    /// The hash a file's checksum is checked with, already fed with the header (with the recorded digest
    /// zeroed) when the checksum covers it; null when the file records none.
    /// </summary>
    private static (IncrementalHash? Hash, string? Recorded) StartChecksum(SafeTensorsHeader header, string path)
    {
        if (header.Metadata.TryGetValue(ChecksumMetadataKey, out var recorded))
        {
            var field = System.Text.Encoding.UTF8.GetBytes($"\"{ChecksumMetadataKey}\":\"{recorded}\"");
            var raw = header.Raw.ToArray();
            var at = raw.AsSpan().IndexOf(field);
            if (recorded.Length != Sha256HexLength || at < 0)
            {
                throw SafeTensorsHeader.Malformed(path, $"its checksum entry \"{ChecksumMetadataKey}\" is not one written by ParaCuda");
            }

            raw.AsSpan(at + field.Length - 1 - Sha256HexLength, Sha256HexLength).Fill((byte)'0');
            var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            hash.AppendData(raw);
            return (hash, recorded);
        }

        return header.Metadata.TryGetValue(DataChecksumMetadataKey, out var data) ? (IncrementalHash.CreateHash(HashAlgorithmName.SHA256), data) : (null, null);
    }

    private static void FinishChecksum(IncrementalHash? hash, string? recorded, string path)
    {
        if (hash is null)
        {
            return;
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, recorded, StringComparison.OrdinalIgnoreCase))
        {
            throw SafeTensorsHeader.Malformed(path, $"file is corrupted: checksum mismatch (the header records SHA-256 {recorded}, the file hashes to {actual}); it was changed or damaged after it was written");
        }
    }

    private static FileStream OpenRead(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);

    private static List<Planned> Plan(IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var planned = new List<Planned>();
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name))
            {
                throw new ArgumentException("a tensor name is empty", nameof(tensors));
            }

            if (name == SafeTensorsHeader.MetadataKey)
            {
                throw new ArgumentException($"'{name}' is reserved for the file's metadata and cannot name a tensor", nameof(tensors));
            }

            if (!names.Add(name))
            {
                throw new ArgumentException($"duplicate tensor name '{name}'", nameof(tensors));
            }

            if (tensor is null)
            {
                throw new ArgumentException($"tensor '{name}' is null", nameof(tensors));
            }

            planned.Add(new Planned(name, tensor, 0, 0));
        }

        // The reference writer's order: widest dtype first, so that every tensor starts at a multiple of
        // its element size (the data section itself is 8-byte aligned), then by name.
        planned.Sort((a, b) => WidthRank(a.Tensor.DType) != WidthRank(b.Tensor.DType)
            ? WidthRank(a.Tensor.DType).CompareTo(WidthRank(b.Tensor.DType))
            : string.CompareOrdinal(a.Name, b.Name));
        long offset = 0;
        for (var i = 0; i < planned.Count; i++)
        {
            var end = offset + planned[i].Tensor.ByteLength;
            planned[i] = planned[i] with { Begin = offset, End = end };
            offset = end;
        }

        return planned;
    }

    /// <summary>Rank in the reference writer's order (its dtype enum, descending), so tensor order matches it.</summary>
    private static int WidthRank(DType dtype) => dtype switch
    {
        DType.Float32 => 0,
        DType.Int32 => 1,
        DType.BFloat16 => 2,
        DType.Float16 => 3,
        DType.UInt8 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "dtype has no safetensors name"),
    };

    /// <summary>Writes the length prefix, the JSON and its padding; returns those bytes.</summary>
    private static byte[] WriteHeader(Stream stream, List<Planned> entries, SortedDictionary<string, string> metadata)
    {
        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, s_json))
        {
            writer.WriteStartObject();
            writer.WriteStartObject(SafeTensorsHeader.MetadataKey);
            foreach (var (key, value) in metadata)
            {
                writer.WriteString(key, value);
            }

            writer.WriteEndObject();
            foreach (var entry in entries)
            {
                writer.WriteStartObject(entry.Name);
                writer.WriteString("dtype", entry.Tensor.DType.SafetensorsName());
                writer.WriteStartArray("shape");
                foreach (var d in entry.Tensor.Shape)
                {
                    writer.WriteNumberValue(d);
                }

                writer.WriteEndArray();
                writer.WriteStartArray("data_offsets");
                writer.WriteNumberValue(entry.Begin);
                writer.WriteNumberValue(entry.End);
                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        // Spaces pad the header so that the data section starts 8-byte aligned, as the reference writer does.
        var padding = (8 - (json.WrittenCount % 8)) % 8;
        var bytes = new byte[SafeTensorsHeader.PrefixBytes + json.WrittenCount + padding];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(json.WrittenCount + padding));
        json.WrittenSpan.CopyTo(bytes.AsSpan(SafeTensorsHeader.PrefixBytes));
        bytes.AsSpan(SafeTensorsHeader.PrefixBytes + json.WrittenCount).Fill((byte)' ');
        stream.Write(bytes);
        return bytes;
    }

    /// <summary>Streams every tensor's bytes in file order into the stream and the hash.</summary>
    private static void WriteData(Stream stream, List<Planned> entries, IncrementalHash hash)
    {
        var buffer = new byte[StagingLength(entries.Select(e => e.End - e.Begin))];
        using (TensorScope.Unscoped())
        {
            foreach (var entry in entries)
            {
                Store(stream, entry.Tensor, buffer, hash);
            }
        }
    }

    private static void Store(Stream stream, Tensor tensor, byte[] buffer, IncrementalHash hash)
    {
        using var contiguous = tensor.Contiguous();
        using var flat = Flatten(contiguous);
        var elementSize = tensor.DType.SizeInBytes();
        var chunkElements = buffer.Length / elementSize;
        for (long start = 0; start < flat.NumElements; start += chunkElements)
        {
            var count = (int)Math.Min(chunkElements, flat.NumElements - start);
            var bytes = buffer.AsSpan(0, count * elementSize);
            using (var chunk = flat.NarrowView((int)start, count))
            {
                chunk.Context.Ops.CopyToHost(chunk, bytes);
            }

            hash.AppendData(bytes);
            stream.Write(bytes);
        }
    }

    private static void Load(Stream stream, Tensor tensor, byte[] buffer, IncrementalHash? hash)
    {
        using var flat = Flatten(tensor);
        var elementSize = tensor.DType.SizeInBytes();
        var chunkElements = buffer.Length / elementSize;
        for (long start = 0; start < flat.NumElements; start += chunkElements)
        {
            var count = (int)Math.Min(chunkElements, flat.NumElements - start);
            var bytes = buffer.AsSpan(0, count * elementSize);
            stream.ReadExactly(bytes);
            hash?.AppendData(bytes);
            using var chunk = flat.NarrowView((int)start, count);

            // Consumes the buffer before returning (even on devices that copy asynchronously), so it can be reused.
            chunk.Context.Ops.CopyFromHost(bytes, chunk);
        }
    }

    /// <summary>A one-dimensional view of a contiguous tensor, so that it can be copied in chunks of elements.</summary>
    private static Tensor Flatten(Tensor contiguous) =>
        contiguous.NumElements <= int.MaxValue
            ? contiguous.View((int)contiguous.NumElements)
            : throw new NotSupportedException($"{contiguous.Describe()} has more than {int.MaxValue} elements, more than a view can address");

    /// <summary>The staging buffer: one chunk, or less when every tensor is smaller; a multiple of every element size.</summary>
    private static int StagingLength(IEnumerable<long> byteLengths)
    {
        var largest = byteLengths.DefaultIfEmpty(0).Max();
        return (int)Math.Min(ChunkBytes, (largest + 7) / 8 * 8);
    }

    private static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // The write already failed, and that failure is the one the caller needs to see.
        }
        catch (UnauthorizedAccessException)
        {
            // As above.
        }
    }

    private readonly record struct Planned(string Name, Tensor Tensor, long Begin, long End);
}
