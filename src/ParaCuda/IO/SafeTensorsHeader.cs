using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.Unicode;
using ParaCuda.Tensors;

namespace ParaCuda.IO;

/// <summary>
/// The header of a safetensors file, checked for every way a file can be malformed (before any tensor
/// is allocated): the JSON itself, each entry, and the layout of the data section.
/// </summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>The little-endian u64 that precedes the JSON and gives its length.</summary>
    public const int PrefixBytes = 8;

    /// <summary>The reference implementation's limit: a longer header means a corrupt length field.</summary>
    public const ulong MaxHeaderBytes = 100_000_000;

    public const string MetadataKey = "__metadata__";

    private static readonly Dictionary<string, DType> s_dtypes =
        Enum.GetValues<DType>().ToDictionary(d => d.SafetensorsName(), StringComparer.Ordinal);

    private SafeTensorsHeader(List<Entry> entries, IReadOnlyDictionary<string, string> metadata, long dataStart, long dataLength, byte[] raw)
    {
        Raw = raw;
        Entries = entries;
        Metadata = metadata;
        DataStart = dataStart;
        DataLength = dataLength;
    }

    /// <summary>The header as it is in the file: the length prefix and the JSON (with any padding).</summary>
    public ReadOnlyMemory<byte> Raw { get; }

    /// <summary>The tensors, ordered by their position in the data section.</summary>
    public IReadOnlyList<Entry> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>File offset of the data section.</summary>
    public long DataStart { get; }

    public long DataLength { get; }

    /// <summary>Reads and validates the header, leaving <paramref name="stream"/> at the start of the data section.</summary>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < PrefixBytes)
        {
            throw Malformed(path, $"file is {fileLength} bytes long, shorter than 8 bytes (the header length field alone takes 8)");
        }

        Span<byte> prefix = stackalloc byte[PrefixBytes];
        stream.ReadExactly(prefix);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
        {
            throw Malformed(path, $"header length {headerLength} is absurd (the limit is {MaxHeaderBytes} bytes): not a safetensors file, or a corrupt one");
        }

        if ((long)headerLength > fileLength - PrefixBytes)
        {
            throw Malformed(path, $"header length {headerLength} exceeds the {fileLength - PrefixBytes} bytes that follow the length field: truncated file or corrupt header");
        }

        var raw = new byte[PrefixBytes + (long)headerLength];
        prefix.CopyTo(raw);
        stream.ReadExactly(raw.AsSpan(PrefixBytes));
        var dataStart = PrefixBytes + (long)headerLength;
        return Parse(raw, dataStart, fileLength - dataStart, path);
    }

    /// <summary>The exception for a malformed file: the message names the file, then the problem.</summary>
    public static CheckpointFormatException Malformed(string path, string problem, Exception? inner = null)
    {
        var message = $"safetensors file '{path}': {problem}";
        return inner is null ? new CheckpointFormatException(message) : new CheckpointFormatException(message, inner);
    }

    private static SafeTensorsHeader Parse(byte[] raw, long dataStart, long dataLength, string path)
    {
        var json = raw.AsMemory(PrefixBytes);
        if (!Utf8.IsValid(json.Span))
        {
            throw Malformed(path, "header is not valid UTF-8");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw Malformed(path, $"header is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Malformed(path, $"header is not a JSON object but {root.ValueKind}");
            }

            // JSON allows repeated keys; a checkpoint with two tensors of one name is ambiguous.
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var entries = new List<Entry>();
            var metadata = ReadOnlyDictionary<string, string>.Empty;
            foreach (var property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    throw Malformed(path, $"duplicate entry '{property.Name}' in the header");
                }

                if (property.Name == MetadataKey)
                {
                    metadata = ParseMetadata(property.Value, path);
                }
                else
                {
                    entries.Add(ParseEntry(property.Name, property.Value, path));
                }
            }

            entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin)
                : a.End != b.End ? a.End.CompareTo(b.End)
                : string.CompareOrdinal(a.Name, b.Name));
            CheckLayout(entries, dataStart, dataLength, path);
            return new SafeTensorsHeader(entries, metadata, dataStart, dataLength, raw);
        }
    }

    private static ReadOnlyDictionary<string, string> ParseMetadata(JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Malformed(path, $"\"{MetadataKey}\" is {value.ValueKind}, not an object of strings");
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in value.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
            {
                throw Malformed(path, $"\"{MetadataKey}\" value of '{property.Name}' is {property.Value.ValueKind}, not a string");
            }

            if (!metadata.TryAdd(property.Name, property.Value.GetString()!))
            {
                throw Malformed(path, $"duplicate \"{MetadataKey}\" key '{property.Name}'");
            }
        }

        return metadata.AsReadOnly();
    }

    private static Entry ParseEntry(string name, JsonElement value, string path)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Malformed(path, $"entry '{name}' is {value.ValueKind}, not an object with dtype, shape and data_offsets");
        }

        var dtypeField = Field(value, "dtype", name, path);
        if (dtypeField.ValueKind != JsonValueKind.String)
        {
            throw Malformed(path, $"tensor '{name}': \"dtype\" is {dtypeField.ValueKind}, not a string");
        }

        var dtypeName = dtypeField.GetString()!;
        if (!s_dtypes.TryGetValue(dtypeName, out var dtype))
        {
            throw Malformed(path, $"tensor '{name}' has unknown dtype '{dtypeName}' (ParaCuda reads {string.Join(", ", s_dtypes.Keys)})");
        }

        var shape = ParseShape(Field(value, "shape", name, path), name, path);

        var offsets = Field(value, "data_offsets", name, path);
        if (offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !TryGetNonNegative(offsets[0], out var begin) || !TryGetNonNegative(offsets[1], out var end))
        {
            throw Malformed(path, $"tensor '{name}': \"data_offsets\" must be [begin, end] of non-negative integers, got {offsets.GetRawText()}");
        }

        if (begin > end)
        {
            throw Malformed(path, $"tensor '{name}' has data_offsets [{begin}, {end}] with begin > end");
        }

        // Checked like the reference reader: a shape whose byte size overflows cannot match any offsets.
        var bytes = (long)dtype.SizeInBytes();
        foreach (var d in shape)
        {
            if (d != 0 && bytes > long.MaxValue / d)
            {
                throw Malformed(path, $"tensor '{name}' has shape {shape}, too large to address");
            }

            bytes *= d;
        }

        if (end - begin != bytes)
        {
            throw Malformed(path, $"tensor '{name}' spans {end - begin} bytes (data_offsets [{begin}, {end}]) but shape {shape} of {dtypeName} needs {bytes} bytes");
        }

        return new Entry(name, dtype, shape, begin, end);
    }

    private static Shape ParseShape(JsonElement field, string name, string path)
    {
        if (field.ValueKind != JsonValueKind.Array)
        {
            throw Malformed(path, $"tensor '{name}': \"shape\" is {field.ValueKind}, not an array of integers");
        }

        var dims = new int[field.GetArrayLength()];
        var i = 0;
        foreach (var item in field.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var d))
            {
                throw Malformed(path, $"tensor '{name}': \"shape\" must be an array of integers, got {field.GetRawText()}");
            }

            if (d < 0)
            {
                throw Malformed(path, $"tensor '{name}' has a negative dimension in shape {field.GetRawText()}");
            }

            if (d > int.MaxValue)
            {
                throw Malformed(path, $"tensor '{name}' has dimension {d} in shape {field.GetRawText()}, larger than a ParaCuda shape holds ({int.MaxValue})");
            }

            dims[i++] = (int)d;
        }

        return new Shape(dims);
    }

    private static JsonElement Field(JsonElement entry, string field, string name, string path) =>
        entry.TryGetProperty(field, out var value) ? value : throw Malformed(path, $"tensor '{name}' is missing \"{field}\"");

    private static bool TryGetNonNegative(JsonElement item, out long value)
    {
        value = 0;
        return item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out value) && value >= 0;
    }

    /// <summary>The tensors must tile the data section exactly: from byte 0, back to back, to its last byte.</summary>
    private static void CheckLayout(List<Entry> entries, long dataStart, long dataLength, string path)
    {
        if (entries.Count > 0)
        {
            // Reported before gaps and overlaps: offsets past the end mostly mean a file cut short.
            var last = entries.MaxBy(e => e.End);
            if (last.End > dataLength)
            {
                throw Malformed(path, $"truncated file: tensor '{last.Name}' ends at byte {last.End} of the data section, which holds only {dataLength} bytes (expected {dataStart + last.End} bytes in the file, found {dataStart + dataLength})");
            }
        }

        long expected = 0;
        string? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin < expected)
            {
                throw Malformed(path, $"tensors '{previous}' and '{e.Name}' overlap: '{e.Name}' begins at byte {e.Begin} of the data section, before '{previous}' ends at byte {expected}");
            }

            if (e.Begin > expected)
            {
                throw Malformed(path, previous is null
                    ? $"gap of {e.Begin} bytes at the start of the data section, before tensor '{e.Name}'"
                    : $"gap of {e.Begin - expected} bytes between tensors '{previous}' and '{e.Name}'");
            }

            expected = e.End;
            previous = e.Name;
        }

        if (expected < dataLength)
        {
            throw Malformed(path, $"trailing garbage: {dataLength - expected} bytes after the last tensor (the tensors end at byte {expected} of a {dataLength}-byte data section)");
        }
    }

    /// <summary>One tensor: its dtype and shape, and where its bytes lie in the data section.</summary>
    internal readonly record struct Entry(string Name, DType DType, Shape Shape, long Begin, long End);
}
