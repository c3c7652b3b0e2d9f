using System.Buffers.Binary;
using System.IO.Compression;

namespace ParaCuda.Data;

/// <summary>
/// Reads the IDX files MNIST and Fashion-MNIST ship as: a big-endian header (magic number, then one
/// 32-bit size per dimension) followed by unsigned bytes. Gzip is recognised by its magic bytes, so
/// compressed and raw files both work whatever they are called.
/// </summary>
public static class Idx
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;

    /// <summary>Loads an image file [n, rows, cols] and its label file [n] into a one-channel dataset.</summary>
    /// <exception cref="DataFormatException">A file is malformed, truncated, or the two do not match.</exception>
    public static ImageDataset Load(string imagesPath, string labelsPath, int classes, string name)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        ArgumentNullException.ThrowIfNull(labelsPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(classes, 256);

        var (pixels, count, rows, cols) = ReadImages(Open(imagesPath), imagesPath);
        var labelBytes = ReadLabels(Open(labelsPath), labelsPath);
        if (labelBytes.Length != count)
        {
            throw new DataFormatException($"image file {imagesPath} has {count} images but label file {labelsPath} has {labelBytes.Length} labels");
        }

        var labels = new int[count];
        for (var i = 0; i < count; i++)
        {
            if (labelBytes[i] >= classes)
            {
                throw new DataFormatException($"{labelsPath}: label {labelBytes[i]} at index {i} is outside 0..{classes - 1}");
            }

            labels[i] = labelBytes[i];
        }

        return new ImageDataset(name, 1, rows, cols, classes, pixels, labels);
    }

    /// <summary>An image file's pixels and sizes from <paramref name="stream"/> (which it disposes); <paramref name="path"/> names it in errors.</summary>
    internal static (byte[] Pixels, int Count, int Rows, int Cols) ReadImages(Stream stream, string path)
    {
        using var owned = stream;
        return Guard(path, () =>
        {
            Span<byte> header = stackalloc byte[16];
            ReadHeader(stream, path, header, ImagesMagic, "IDX unsigned-byte images");
            var count = Dimension(header, 1, path, "image count");
            var rows = Dimension(header, 2, path, "row count");
            var cols = Dimension(header, 3, path, "column count");
            if (rows == 0 || cols == 0)
            {
                throw new DataFormatException($"{path}: images of {rows}×{cols} pixels are empty");
            }

            // Each size fits 31 bits, so the product of all three may not fit 64: compare by division instead.
            var imageBytes = (long)rows * cols;
            if (imageBytes > Array.MaxLength || count > Array.MaxLength / imageBytes)
            {
                throw new DataFormatException($"{path}: header promises {count} images of {rows}×{cols} pixels, more than one array can hold");
            }

            var bytes = count * imageBytes;

            var pixels = ReadBody(stream, path, (int)bytes, header.Length, $"{count} images of {rows}×{cols}");
            return (pixels, count, rows, cols);
        });
    }

    /// <summary>A label file's bytes from <paramref name="stream"/> (which it disposes).</summary>
    internal static byte[] ReadLabels(Stream stream, string path)
    {
        using var owned = stream;
        return Guard(path, () =>
        {
            Span<byte> header = stackalloc byte[8];
            ReadHeader(stream, path, header, LabelsMagic, "IDX unsigned-byte labels");
            var count = Dimension(header, 1, path, "label count");
            return ReadBody(stream, path, count, header.Length, $"{count} labels");
        });
    }

    /// <summary>Opens a file, decompressing on the fly when it starts with the gzip magic bytes 1f 8b.</summary>
    private static Stream Open(string path) => Decompressed(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16));

    /// <summary>A seekable stream as the readers take it: decompressed when it starts with the gzip magic bytes.</summary>
    internal static Stream Decompressed(Stream file)
    {
        Span<byte> magic = stackalloc byte[2];
        var isGzip = file.ReadAtLeast(magic, 2, throwOnEndOfStream: false) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
        file.Position = 0;
        return isGzip ? new GZipStream(file, CompressionMode.Decompress) : file;
    }

    /// <summary>Turns a corrupt gzip stream's bare error into one that names the file.</summary>
    private static T Guard<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException($"{path}: corrupt gzip data ({e.Message})", e);
        }
    }

    private static void ReadHeader(Stream stream, string path, Span<byte> header, int magic, string kind)
    {
        var read = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (read >= 4)
        {
            var actual = BinaryPrimitives.ReadInt32BigEndian(header);
            if (actual != magic)
            {
                throw new DataFormatException($"{path}: wrong magic number 0x{actual:X8}, expected 0x{magic:X8} ({kind})");
            }
        }

        if (read < header.Length)
        {
            throw new DataFormatException($"{path}: truncated: the file holds {read} bytes, less than the {header.Length}-byte header of {kind}");
        }
    }

    private static int Dimension(ReadOnlySpan<byte> header, int index, string path, string what)
    {
        var value = BinaryPrimitives.ReadUInt32BigEndian(header[(4 * index)..]);
        if (value > int.MaxValue)
        {
            throw new DataFormatException($"{path}: {what} {value} in the header is implausibly large");
        }

        return (int)value;
    }

    /// <summary>
    /// Reads exactly the promised payload and checks that nothing follows it. Memory follows the data, not the
    /// promise: a file whose length is known is checked against it before anything is allocated, and a
    /// compressed one is read into a buffer that grows only as data arrives.
    /// </summary>
    private static byte[] ReadBody(Stream stream, string path, int length, int headerLength, string promise)
    {
        if (stream.CanSeek && stream.Length - stream.Position < length)
        {
            throw new DataFormatException($"{path}: truncated: header promises {promise} ({headerLength + (long)length} bytes) but the file holds {stream.Length}");
        }

        var body = stream.CanSeek ? GC.AllocateUninitializedArray<byte>(length) : new byte[Math.Min(length, 1 << 20)];
        var read = 0;
        while (read < length)
        {
            if (read == body.Length)
            {
                Array.Resize(ref body, (int)Math.Min(length, 2L * body.Length));
            }

            var got = stream.Read(body, read, body.Length - read);
            if (got == 0)
            {
                throw new DataFormatException(
                    $"{path}: truncated: header promises {promise} ({headerLength + (long)length} bytes) but the file holds {headerLength + (long)read}");
            }

            read += got;
        }

        long extra = 0;
        Span<byte> rest = stackalloc byte[4096];
        int n;
        while ((n = stream.Read(rest)) > 0)
        {
            extra += n;
        }

        if (extra > 0)
        {
            throw new DataFormatException($"{path}: {extra} unexpected bytes after the {promise} the header promises");
        }

        return body;
    }
}
