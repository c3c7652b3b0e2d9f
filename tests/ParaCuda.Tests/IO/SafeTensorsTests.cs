using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ParaCuda.Backends.Cpu;
using ParaCuda.IO;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.IO;

public class SafeTensorsTests
{
    private string _dir = "";
    private TensorScope? _scope;

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"paracuda-io-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
        _scope = TensorScope.Begin();
    }

    [TearDown]
    public void DeleteDirectory()
    {
        _scope?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void Round_trip_is_bit_exact_for_every_dtype_and_shape()
    {
        int[] specialBits =
        [
            0x7FC00000, // NaN
            0x7FC00001, // NaN with a payload
            0x7F800001, // signalling NaN
            unchecked((int)0xFFC12345), // negative NaN with a payload
            unchecked((int)0x80000000), // -0.0
            0x00000001, // smallest subnormal
            unchecked((int)0x807FFFFF), // largest negative subnormal
            0x7F800000, // +inf
            unchecked((int)0xFF800000), // -inf
            0x3FC00000, // 1.5
        ];
        var tensors = new Dictionary<string, Tensor>
        {
            ["special"] = Tensor.FromArray(MemoryMarshal.Cast<int, float>(specialBits), new Shape(2, 5)),
            ["scalar"] = Tensor.FromArray([42.5f], new Shape()),
            ["empty"] = Tensor.FromArray(ReadOnlySpan<float>.Empty, new Shape(0, 3)),
            ["labels"] = Tensor.FromArray([int.MinValue, -1, 0, 1, int.MaxValue, 123456789], new Shape(3, 1, 2)),
            ["labels.empty"] = Tensor.FromArray(ReadOnlySpan<int>.Empty, new Shape(4, 0)),
            ["brain"] = Halves(DType.BFloat16, [0x7FC1, 0x8000, 0x0001, 0xFF80, 0x3F80], new Shape(5)),
            ["brain.scalar"] = Halves(DType.BFloat16, [0x4049], new Shape()),
            ["half"] = Halves(DType.Float16, [0x7E01, 0x8000, 0x03FF, 0xFC00], new Shape(2, 2)),
        };
        var metadata = new Dictionary<string, string>
        {
            ["framework"] = "paracuda",
            ["step"] = "1200",
            ["note"] = "quote \" backslash \\ newline \n tab \t accents é, 名前, <html> & 'more'",
            [""] = "an empty key is still a key",
        };
        var path = Combine("model.safetensors");

        SafeTensors.Write(path, tensors, metadata);
        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors.Keys, Is.EquivalentTo(tensors.Keys));
        foreach (var (name, expected) in tensors)
        {
            var actual = file.Tensors[name];
            Assert.That(actual.Name, Is.EqualTo(name));
            Assert.That(actual.DType, Is.EqualTo(expected.DType), name);
            Assert.That(actual.Shape, Is.EqualTo(expected.Shape), name);
            Assert.That(RawBytes(actual), Is.EqualTo(RawBytes(expected)), $"{name} must round-trip bit for bit");
        }

        Assert.That(file.Metadata, Has.Count.EqualTo(metadata.Count + 1));
        foreach (var (key, value) in metadata)
        {
            Assert.That(file.Metadata[key], Is.EqualTo(value), key);
        }

        Assert.That(file.Metadata[SafeTensors.ChecksumMetadataKey], Does.Match("^[0-9a-f]{64}$"));
    }

    [Test]
    public void Identical_inputs_give_byte_identical_files_whatever_the_enumeration_order()
    {
        var tensors = new List<KeyValuePair<string, Tensor>>
        {
            new("w", Tensor.FromArray([1f, 2f, 3f], new Shape(3))),
            new("b", Tensor.FromArray([4f], new Shape(1))),
            new("ids", Tensor.FromArray([5, 6], new Shape(2))),
            new("emb", Halves(DType.BFloat16, [1, 2, 3], new Shape(3))),
        };
        var metadata = new Dictionary<string, string> { ["x"] = "1", ["a"] = "2" };
        var reversedMetadata = new Dictionary<string, string> { ["a"] = "2", ["x"] = "1" };
        var first = Combine("first.safetensors");
        var second = Combine("second.safetensors");
        var again = Combine("again.safetensors");

        SafeTensors.Write(first, tensors, metadata);
        SafeTensors.Write(second, Enumerable.Reverse(tensors), reversedMetadata);
        SafeTensors.Write(again, tensors, metadata);

        Assert.That(File.ReadAllBytes(second), Is.EqualTo(File.ReadAllBytes(first)));
        Assert.That(File.ReadAllBytes(again), Is.EqualTo(File.ReadAllBytes(first)));
    }

    [Test]
    public void The_header_follows_the_spec_layout()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["a"] = Halves(DType.BFloat16, [1, 2, 3], new Shape(3)),
            ["b"] = Tensor.FromArray([1f, 2f, 3f], new Shape(3)),
            ["c"] = Tensor.FromArray([7, 8], new Shape(1, 2)),
            ["d"] = Halves(DType.Float16, [9], new Shape(1)),
            ["e"] = Tensor.FromArray([10f], new Shape()),
        };
        var path = Combine("layout.safetensors");
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { ["k"] = "v" });

        var bytes = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.That(headerLength % 8, Is.Zero, "the data section starts 8-byte aligned");
        var headerText = Encoding.UTF8.GetString(bytes, 8, headerLength);
        var json = headerText.TrimEnd(' ');
        Assert.That(headerLength - json.Length, Is.LessThan(8), "padding is under 8 spaces");
        Assert.That(json, Does.StartWith("{\"__metadata__\":{").And.EndWith("}"));
        Assert.That(json, Does.Not.Contain(" "), "compact JSON, like the reference writer");
        var data = bytes.AsSpan(8 + headerLength).ToArray();

        using var document = JsonDocument.Parse(json);
        var properties = document.RootElement.EnumerateObject().ToList();
        Assert.That(properties[0].Name, Is.EqualTo("__metadata__"));
        var metadata = properties[0].Value;
        Assert.That(metadata.GetProperty("k").GetString(), Is.EqualTo("v"));
        Assert.That(metadata.GetProperty(SafeTensors.ChecksumMetadataKey).GetString(), Is.EqualTo(FileChecksum(bytes)), "SHA-256 of the whole file with the digest zeroed");

        var entries = properties.Skip(1).ToList();
        Assert.That(entries.Select(p => p.Name), Is.EqualTo(new[] { "b", "e", "c", "a", "d" }), "widest dtype first, then by name, as the reference writer orders them");
        long expectedBegin = 0;
        foreach (var entry in entries)
        {
            Assert.That(entry.Value.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "dtype", "shape", "data_offsets" }));
            var tensor = tensors[entry.Name];
            Assert.That(entry.Value.GetProperty("dtype").GetString(), Is.EqualTo(tensor.DType.SafetensorsName()));
            Assert.That(entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()), Is.EqualTo(tensor.Shape.ToArray()));
            var begin = entry.Value.GetProperty("data_offsets")[0].GetInt64();
            var end = entry.Value.GetProperty("data_offsets")[1].GetInt64();
            Assert.That(begin, Is.EqualTo(expectedBegin), $"{entry.Name} follows the previous tensor without a gap");
            Assert.That(end - begin, Is.EqualTo(tensor.ByteLength));
            Assert.That(begin % tensor.DType.SizeInBytes(), Is.Zero, $"{entry.Name} is aligned to its element size");
            Assert.That(data.AsSpan((int)begin, (int)(end - begin)).ToArray(), Is.EqualTo(RawBytes(tensor)));
            expectedBegin = end;
        }

        Assert.That(expectedBegin, Is.EqualTo(data.Length), "the tensors fill the data section exactly");
    }

    [Test]
    public void A_file_in_the_python_librarys_layout_loads()
    {
        // What safetensors.torch.save_file writes: compact JSON, "__metadata__" first, tensors in data order
        // (widest dtype first), the header padded with spaces to a multiple of 8, and no checksum key.
        const string header = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]},"
            + "\"mask\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]},"
            + "\"emb\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[32,38]}}";
        var data = new List<byte>();
        foreach (var f in new[] { 0f, 1f, 2f, 3f, 4f, 5f })
        {
            data.AddRange(BitConverter.GetBytes(f));
        }

        data.AddRange(BitConverter.GetBytes(7));
        data.AddRange(BitConverter.GetBytes(-7));
        data.AddRange(new byte[] { 0x80, 0x3F, 0x00, 0xC0, 0x00, 0x00 });
        var path = Combine("python.safetensors");
        File.WriteAllBytes(path, FileBytes(header, data.ToArray()));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path)) % 8, Is.Zero, "the fixture is padded like the reference");

        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors.Keys, Is.EqualTo(new[] { "attn.0", "mask", "emb" }), "file order");
        Assert.That(file.Tensors["attn.0"].Shape, Is.EqualTo(new Shape(1, 2, 3)));
        Assert.That(file.Tensors["attn.0"].ToArray<float>(), Is.EqualTo(new[] { 0f, 1f, 2f, 3f, 4f, 5f }));
        Assert.That(file.Tensors["mask"].DType, Is.EqualTo(DType.Int32));
        Assert.That(file.Tensors["mask"].ToArray<int>(), Is.EqualTo(new[] { 7, -7 }));
        Assert.That(file.Tensors["emb"].DType, Is.EqualTo(DType.BFloat16));
        Assert.That(file.Tensors["emb"].ToArray<ushort>(), Is.EqualTo(new ushort[] { 0x3F80, 0xC000, 0x0000 }));
        Assert.That(file.Metadata, Is.EqualTo(new Dictionary<string, string> { ["format"] = "pt" }));
        Assert.That(SafeTensors.ReadMetadata(path), Is.EqualTo(new Dictionary<string, string> { ["format"] = "pt" }));
        var index = SafeTensors.ReadIndex(path);
        Assert.That(index.Keys, Is.EqualTo(new[] { "attn.0", "mask", "emb" }));
        Assert.That(index["emb"], Is.EqualTo((DType.BFloat16, new Shape(3))));
    }

    [Test]
    public void Entries_may_come_in_any_order_and_metadata_may_be_absent()
    {
        const string header = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
            + "\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]},"
            + "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
        var path = Combine("unordered.safetensors");
        File.WriteAllBytes(path, FileBytes(header, [.. BitConverter.GetBytes(1f), .. BitConverter.GetBytes(2f)]));

        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors.Keys, Is.EqualTo(new[] { "z", "a", "b" }), "ordered by data offset");
        Assert.That(file.Tensors["a"].Item(), Is.EqualTo(1f));
        Assert.That(file.Tensors["b"].Item(), Is.EqualTo(2f));
        Assert.That(file.Tensors["z"].Shape, Is.EqualTo(new Shape(0)));
        Assert.That(file.Metadata, Is.Empty);
    }

    [Test]
    public void A_checkpoint_without_tensors_round_trips()
    {
        var path = Combine("empty.safetensors");

        SafeTensors.Write(path, [], new Dictionary<string, string> { ["only"] = "metadata" });
        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors, Is.Empty);
        Assert.That(file.Metadata["only"], Is.EqualTo("metadata"));
        Assert.That(file.Metadata[SafeTensors.ChecksumMetadataKey], Is.EqualTo(FileChecksum(File.ReadAllBytes(path))));
        Assert.That(new FileInfo(path).Length % 8, Is.Zero);
    }

    [Test]
    public void Metadata_and_index_come_from_the_header_alone()
    {
        var path = Combine("index.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor>
        {
            ["w"] = Tensor.Zeros(new Shape(4, 2)),
            ["labels"] = Tensor.Zeros(new Shape(3), DType.Int32),
        }, new Dictionary<string, string> { ["epoch"] = "7" });
        FlipLastByte(path);

        var index = SafeTensors.ReadIndex(path);
        var metadata = SafeTensors.ReadMetadata(path);

        Assert.That(index.Keys, Is.EqualTo(new[] { "w", "labels" }));
        Assert.That(index["w"], Is.EqualTo((DType.Float32, new Shape(4, 2))));
        Assert.That(index["labels"], Is.EqualTo((DType.Int32, new Shape(3))));
        Assert.That(metadata["epoch"], Is.EqualTo("7"));
        Assert.That(metadata.ContainsKey(SafeTensors.ChecksumMetadataKey), Is.True);
        Assert.That(() => SafeTensors.Read(path), Throws.TypeOf<CheckpointFormatException>(), "only Read verifies the data");
    }

    [Test]
    public void Non_contiguous_tensors_are_written_by_their_logical_contents()
    {
        var x = Tensor.FromArray([0f, 1f, 2f, 3f, 4f, 5f], new Shape(2, 3));
        var transposed = x.TransposeView(0, 1);
        var secondRow = x.NarrowView(1, 1);
        Assert.That(transposed.IsContiguous, Is.False);
        var path = Combine("views.safetensors");

        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["t"] = transposed, ["row"] = secondRow });
        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors["t"].Shape, Is.EqualTo(new Shape(3, 2)));
        Assert.That(file.Tensors["t"].ToArray<float>(), Is.EqualTo(new[] { 0f, 3f, 1f, 4f, 2f, 5f }));
        Assert.That(file.Tensors["row"].ToArray<float>(), Is.EqualTo(new[] { 3f, 4f, 5f }));
    }

    [Test]
    public void Large_tensors_stream_through_several_chunks()
    {
        // More than the 4 MiB staging buffer, and not a multiple of it.
        var floats = Enumerable.Range(0, 1_500_001).Select(i => (i * 0.25f) - 7f).ToArray();
        var halves = Enumerable.Range(0, 2_100_003).Select(i => (ushort)(i * 7919)).ToArray();
        var path = Combine("large.safetensors");

        SafeTensors.Write(path, new Dictionary<string, Tensor>
        {
            ["floats"] = Tensor.FromArray(floats, new Shape(1_500_001)),
            ["halves"] = Halves(DType.BFloat16, halves, new Shape(3, 700_001)),
        });
        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors["floats"].ToArray<float>(), Is.EqualTo(floats));
        Assert.That(file.Tensors["halves"].ToArray<ushort>(), Is.EqualTo(halves));
    }

    [Test]
    public void Loaded_tensors_belong_to_the_file_not_to_the_ambient_scope()
    {
        var path = Combine("owned.safetensors");
        var live = Storage.LiveCount;
        SafeTensorsFile file;
        using (var scope = TensorScope.Begin())
        {
            var transposed = Tensor.FromArray([1f, 2f, 3f, 4f], new Shape(2, 2)).TransposeView(0, 1);
            SafeTensors.Write(path, new Dictionary<string, Tensor> { ["x"] = transposed, ["y"] = Tensor.FromArray([5], new Shape(1)) });
            Assert.That(scope.Count, Is.EqualTo(3), "writing adds no temporaries to the caller's scope");
            file = SafeTensors.Read(path);
            Assert.That(scope.Count, Is.EqualTo(3), "reading adds nothing to the caller's scope");
        }

        Assert.That(Storage.LiveCount, Is.EqualTo(live + 2), "the scope freed its tensors but not the file's");
        Assert.That(file.Tensors["x"].ToArray<float>(), Is.EqualTo(new[] { 1f, 3f, 2f, 4f }));
        file.Dispose();
        Assert.That(file.Tensors.Values.Select(t => t.IsDisposed), Is.All.True);
        Assert.That(Storage.LiveCount, Is.EqualTo(live));
        Assert.That(file.Dispose, Throws.Nothing, "disposing twice is harmless");
    }

    [Test]
    public void Read_loads_onto_the_requested_context()
    {
        var path = Combine("context.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["x"] = Tensor.FromArray([1f, 2f], new Shape(2)) });
        var context = CpuBackend.Instance.CreateContext("io-test");

        using var file = SafeTensors.Read(path, context);

        Assert.That(file.Tensors["x"].Context, Is.SameAs(context));
        Assert.That(file.Tensors["x"].ToArray<float>(), Is.EqualTo(new[] { 1f, 2f }));
    }

    [Test]
    public void Writing_over_an_existing_file_replaces_it()
    {
        var path = Combine("model.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["old"] = Tensor.FromArray([1f], new Shape(1)) });
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["new"] = Tensor.FromArray([2f, 3f], new Shape(2)) });

        using var file = SafeTensors.Read(path);

        Assert.That(file.Tensors.Keys, Is.EqualTo(new[] { "new" }));
        Assert.That(file.Tensors["new"].ToArray<float>(), Is.EqualTo(new[] { 2f, 3f }));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void A_failed_write_leaves_the_existing_file_intact_and_no_temporary_file()
    {
        var path = Combine("model.safetensors");
        var weights = Tensor.FromArray(Enumerable.Range(0, 10_000).Select(i => (float)i).ToArray(), new Shape(100, 100));
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["a"] = weights });
        var before = File.ReadAllBytes(path);
        var disposed = Tensor.Zeros(new Shape(4));
        disposed.Dispose();

        // "a" sorts first, so the temporary file already holds its data when "z" fails.
        Assert.That(
            () => SafeTensors.Write(path, new Dictionary<string, Tensor> { ["a"] = weights, ["z"] = disposed }),
            Throws.InstanceOf<ObjectDisposedException>());

        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void A_failed_write_to_a_new_path_leaves_nothing()
    {
        var disposed = Tensor.Zeros(new Shape(4));
        disposed.Dispose();

        Assert.That(
            () => SafeTensors.Write(Combine("new.safetensors"), new Dictionary<string, Tensor> { ["a"] = Tensor.Ones(new Shape(8)), ["z"] = disposed }),
            Throws.InstanceOf<ObjectDisposedException>());

        Assert.That(Directory.GetFileSystemEntries(_dir), Is.Empty);
    }

    [Test]
    public void Write_rejects_empty_duplicate_and_reserved_names_and_null_values()
    {
        var path = Combine("bad.safetensors");
        var t = Tensor.Zeros(new Shape(1));

        Assert.That(() => SafeTensors.Write(path, [new("", t)]), Throws.ArgumentException.With.Message.Contains("empty"));
        Assert.That(() => SafeTensors.Write(path, [new("w", t), new("w", t)]), Throws.ArgumentException.With.Message.Contains("duplicate tensor name 'w'"));
        Assert.That(() => SafeTensors.Write(path, [new("__metadata__", t)]), Throws.ArgumentException.With.Message.Contains("reserved"));
        Assert.That(() => SafeTensors.Write(path, [new("w", null!)]), Throws.ArgumentException.With.Message.Contains("tensor 'w' is null"));
        Assert.That(
            () => SafeTensors.Write(path, [new("w", t)], new Dictionary<string, string> { ["k"] = null! }),
            Throws.ArgumentException.With.Message.Contains("'k' is null"));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.Empty);
    }

    [Test]
    public void A_caller_supplied_checksum_is_replaced_by_the_real_one()
    {
        var path = Combine("checksum.safetensors");
        var metadata = new Dictionary<string, string> { [SafeTensors.ChecksumMetadataKey] = "not a checksum" };

        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["x"] = Tensor.FromArray([1f], new Shape(1)) }, metadata);

        using var file = SafeTensors.Read(path);
        Assert.That(file.Metadata[SafeTensors.ChecksumMetadataKey], Does.Match("^[0-9a-f]{64}$"));
    }

    [Test]
    public void A_flipped_data_byte_fails_the_checksum()
    {
        var path = WriteSample("flipped.safetensors");
        FlipLastByte(path);

        AssertRejected(path, "file is corrupted: checksum mismatch");
        Assert.That(() => SafeTensors.Verify(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("checksum mismatch"), "Verify checks the file without loading it");
    }

    [Test]
    public void An_edited_header_fails_the_checksum()
    {
        var path = Combine("edited.safetensors");
        SafeTensors.Write(path, new Dictionary<string, Tensor> { ["w"] = Tensor.FromArray([1f, 2f], new Shape(2)) }, new Dictionary<string, string> { ["paracuda.config"] = "{\"branches\":4}" });
        var bytes = File.ReadAllBytes(path);
        var text = Encoding.UTF8.GetString(bytes);
        var at = text.IndexOf("\\\"branches\\\":4", StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThan(0));
        bytes[at + "\\\"branches\\\":".Length] = (byte)'9';
        File.WriteAllBytes(path, bytes);

        AssertRejected(path, "file is corrupted: checksum mismatch");
        Assert.That(() => SafeTensors.Verify(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("changed or damaged after it was written"));
    }

    [Test]
    public void A_file_with_the_older_data_only_checksum_is_still_verified()
    {
        var path = Combine("legacy.safetensors");
        var data = new byte[8];
        BinaryPrimitives.WriteSingleLittleEndian(data, 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -2f);
        var header = $"{{\"__metadata__\":{{\"{SafeTensors.DataChecksumMetadataKey}\":\"{Convert.ToHexStringLower(SHA256.HashData(data))}\"}},\"w\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}}}";
        var headerBytes = Encoding.UTF8.GetBytes(header.PadRight((header.Length + 7) / 8 * 8));
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)headerBytes.Length);
        File.WriteAllBytes(path, [.. prefix, .. headerBytes, .. data]);
        using (var file = SafeTensors.Read(path))
        {
            Assert.That(file.Tensors["w"].ToArray<float>(), Is.EqualTo(new[] { 1.5f, -2f }));
        }

        FlipLastByte(path);
        AssertRejected(path, "checksum mismatch");
    }

    /// <summary>SHA-256 of a file written by <see cref="SafeTensors.Write"/>, with its recorded digest zeroed: the value it records.</summary>
    private static string FileChecksum(byte[] file)
    {
        var key = Encoding.UTF8.GetBytes($"\"{SafeTensors.ChecksumMetadataKey}\":\"");
        var at = file.AsSpan().IndexOf(key) + key.Length;
        var zeroed = file.ToArray();
        zeroed.AsSpan(at, 64).Fill((byte)'0');
        return Convert.ToHexStringLower(SHA256.HashData(zeroed));
    }

    [Test]
    public void A_truncated_file_says_how_many_bytes_were_expected()
    {
        var path = WriteSample("truncated.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^4]);

        AssertRejected(path, "truncated file");
        AssertRejected(path, $"expected {bytes.Length} bytes in the file, found {bytes.Length - 4}");
    }

    [Test]
    public void Trailing_garbage_after_the_last_tensor_is_rejected()
    {
        var path = WriteSample("trailing.safetensors");
        File.AppendAllText(path, "garbage!");

        AssertRejected(path, "trailing garbage: 8 bytes after the last tensor");
    }

    [TestCaseSource(nameof(MalformedFiles))]
    public void Malformed_files_are_rejected_before_anything_is_allocated(byte[] contents, string phrase)
    {
        var path = Combine("malformed.safetensors");
        File.WriteAllBytes(path, contents);

        AssertRejected(path, phrase);
        Assert.That(() => SafeTensors.ReadIndex(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(phrase));
        Assert.That(() => SafeTensors.ReadMetadata(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains(phrase));
    }

    private static IEnumerable<TestCaseData> MalformedFiles()
    {
        static TestCaseData Case(string what, string phrase, byte[] contents) => new TestCaseData(contents, phrase).SetName($"Malformed: {what}");

        static TestCaseData Json(string what, string phrase, string header, int dataBytes = 0) => Case(what, phrase, FileBytes(header, new byte[dataBytes]));

        static string One(string entry) => $"{{\"w\":{{{entry}}}}}";

        yield return Case("file too short", "shorter than 8 bytes", [1, 2, 3, 4, 5]);
        yield return Case("absurd header length", "is absurd", [.. BitConverter.GetBytes(1L << 40), .. "{}      "u8]);
        yield return Case("header longer than the file", "header length 100 exceeds the 8 bytes", [.. BitConverter.GetBytes(100L), .. "{}      "u8]);
        yield return Case("header not UTF-8", "not valid UTF-8", [.. BitConverter.GetBytes(8L), (byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        yield return Case("empty header", "not valid JSON", [.. BitConverter.GetBytes(0L)]);
        yield return Json("garbage header", "not valid JSON", "this is not json at all");
        yield return Json("unterminated header", "not valid JSON", "{\"w\":");
        yield return Json("header not an object", "not a JSON object", "[1, 2]");
        yield return Json("entry not an object", "entry 'w' is Number, not an object", "{\"w\":3}");
        yield return Json("duplicate tensor", "duplicate entry 'w'", "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4);
        yield return Json("missing dtype", "tensor 'w' is missing \"dtype\"", One("\"shape\":[1],\"data_offsets\":[0,4]"), 4);
        yield return Json("missing shape", "tensor 'w' is missing \"shape\"", One("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4);
        yield return Json("missing data_offsets", "tensor 'w' is missing \"data_offsets\"", One("\"dtype\":\"F32\",\"shape\":[1]"), 4);
        yield return Json("dtype not a string", "\"dtype\" is Number, not a string", One("\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"), 4);
        yield return Json("shape not an array", "\"shape\" is String, not an array", One("\"dtype\":\"F32\",\"shape\":\"2x2\",\"data_offsets\":[0,16]"), 16);
        yield return Json("fractional dimension", "\"shape\" must be an array of integers", One("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4);
        yield return Json("one data offset", "\"data_offsets\" must be [begin, end]", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]"), 4);
        yield return Json("negative data offset", "\"data_offsets\" must be [begin, end]", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), 4);
        yield return Json("data_offsets not an array", "\"data_offsets\" must be [begin, end]", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\""), 4);
        yield return Json("unknown dtype", "unknown dtype 'F64'", One("\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]"), 8);
        yield return Json("negative dimension", "negative dimension", One("\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]"));
        yield return Json("dimension beyond int", "larger than a ParaCuda shape holds", One("\"dtype\":\"F32\",\"shape\":[4294967296],\"data_offsets\":[0,0]"));
        yield return Json("byte size overflows", "too large to address", One("\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647],\"data_offsets\":[0,0]"));
        yield return Json("offsets reversed", "data_offsets [8, 4] with begin > end", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]"), 8);
        yield return Json("byte length does not match shape", "needs 16 bytes", One("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]"), 12);
        yield return Json("tensor beyond the data section", "truncated file: tensor 'w' ends at byte 8", One("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4);
        yield return Json("bytes after the last tensor", "trailing garbage: 4 bytes", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), 8);
        yield return Json("data but no tensors", "trailing garbage: 4 bytes", "{}", 4);
        yield return Json(
            "overlapping tensors",
            "tensors 'a' and 'b' overlap",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12);
        yield return Json(
            "gap between tensors",
            "gap of 4 bytes between tensors 'a' and 'b'",
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            12);
        yield return Json("gap before the first tensor", "gap of 4 bytes at the start", One("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"), 8);
        yield return Json("metadata not an object", "\"__metadata__\" is Array, not an object", "{\"__metadata__\":[]}");
        yield return Json("metadata value not a string", "\"__metadata__\" value of 'epoch' is Number, not a string", "{\"__metadata__\":{\"epoch\":3}}");
    }

    private static Tensor Halves(DType dtype, ushort[] bits, Shape shape)
    {
        var t = Tensor.Empty(shape, dtype);
        t.CopyFrom<ushort>(bits);
        return t;
    }

    private static byte[] RawBytes(Tensor t) => t.DType switch
    {
        DType.Float32 => MemoryMarshal.AsBytes(t.ToArray<float>().AsSpan()).ToArray(),
        DType.Int32 => MemoryMarshal.AsBytes(t.ToArray<int>().AsSpan()).ToArray(),
        _ => MemoryMarshal.AsBytes(t.ToArray<ushort>().AsSpan()).ToArray(),
    };

    /// <summary>A file laid out as the spec says: length, header padded with spaces to a multiple of 8, data.</summary>
    private static byte[] FileBytes(string header, byte[] data)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var padded = (json.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        json.CopyTo(bytes, 8);
        bytes.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        data.CopyTo(bytes, 8 + padded);
        return bytes;
    }

    private static void FlipLastByte(string path)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(path, bytes);
    }

    private static void AssertRejected(string path, string phrase)
    {
        var live = Storage.LiveCount;
        Assert.That(
            () => SafeTensors.Read(path).Dispose(),
            Throws.TypeOf<CheckpointFormatException>().With.Message.Contains($"'{path}'").And.Message.Contains(phrase));
        Assert.That(Storage.LiveCount, Is.EqualTo(live), "a rejected file leaves no tensor behind");
    }

    private string Combine(string name) => Path.Combine(_dir, name);

    private string WriteSample(string name)
    {
        var path = Combine(name);
        SafeTensors.Write(path, new Dictionary<string, Tensor>
        {
            ["w"] = Tensor.FromArray([1f, 2f, 3f, 4f], new Shape(2, 2)),
            ["labels"] = Tensor.FromArray([1, 2, 3], new Shape(3)),
        });
        return path;
    }
}
