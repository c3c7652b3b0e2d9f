using System.Buffers.Binary;
using System.IO.Compression;

namespace ParaCuda.Tests.Data;

/// <summary>Writes small dataset files in the formats the readers parse, so malformed cases are easy to build.</summary>
internal static class DataFiles
{
    public const int ImagesMagic = 0x803;
    public const int LabelsMagic = 0x801;

    /// <summary>An IDX file: big-endian magic, then the given header sizes, then the payload.</summary>
    public static string Idx(string path, int magic, int[] dims, byte[] payload, bool gzip)
    {
        var bytes = new byte[4 + (4 * dims.Length) + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic);
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + (4 * i)), dims[i]);
        }

        payload.CopyTo(bytes, 4 + (4 * dims.Length));
        if (gzip)
        {
            using var file = File.Create(path);
            using var zip = new GZipStream(file, CompressionLevel.Fastest);
            zip.Write(bytes);
        }
        else
        {
            File.WriteAllBytes(path, bytes);
        }

        return path;
    }

    /// <summary>n images of rows×cols whose pixel (i, y, x) is (7i + 3y + x) mod 256.</summary>
    public static byte[] Pixels(int n, int rows, int cols)
    {
        var pixels = new byte[n * rows * cols];
        for (var i = 0; i < n; i++)
        {
            for (var y = 0; y < rows; y++)
            {
                for (var x = 0; x < cols; x++)
                {
                    pixels[(((i * rows) + y) * cols) + x] = (byte)((7 * i) + (3 * y) + x);
                }
            }
        }

        return pixels;
    }

    public static byte[] Labels(int n, int classes) => Enumerable.Range(0, n).Select(i => (byte)(i % classes)).ToArray();

    /// <summary>The four Fashion-MNIST-named IDX files of a tiny set (train: 20 images, test: 10; 6×5 pixels).</summary>
    public static void IdxSet(string directory, bool gzip)
    {
        var suffix = gzip ? ".gz" : "";
        Idx(Path.Combine(directory, "train-images-idx3-ubyte" + suffix), ImagesMagic, [20, 6, 5], Pixels(20, 6, 5), gzip);
        Idx(Path.Combine(directory, "train-labels-idx1-ubyte" + suffix), LabelsMagic, [20], Labels(20, 10), gzip);
        Idx(Path.Combine(directory, "t10k-images-idx3-ubyte" + suffix), ImagesMagic, [10, 6, 5], Pixels(10, 6, 5), gzip);
        Idx(Path.Combine(directory, "t10k-labels-idx1-ubyte" + suffix), LabelsMagic, [10], Labels(10, 10), gzip);
    }

    /// <summary>
    /// A CIFAR record file whose record r (numbered globally from <paramref name="first"/>) has the given
    /// label bytes and pixel (c, y, x) = (r + 5c + 3y + x) mod 256.
    /// </summary>
    public static string CifarFile(string path, int first, int records, Func<int, byte[]> labelBytes)
    {
        using var file = File.Create(path);
        for (var r = first; r < first + records; r++)
        {
            file.Write(labelBytes(r));
            for (var i = 0; i < 3 * 32 * 32; i++)
            {
                var (c, y, x) = (i / 1024, i / 32 % 32, i % 32);
                file.WriteByte((byte)(r + (5 * c) + (3 * y) + x));
            }
        }

        return path;
    }

    public static byte CifarPixel(int record, int c, int y, int x) => (byte)(record + (5 * c) + (3 * y) + x);
}
