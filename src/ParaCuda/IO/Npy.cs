using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace ParaCuda.IO;

/// <summary>
/// Writes NumPy's .npy format (version 1.0): a magic string, a Python-dict header padded to 64 bytes, then the
/// array's bytes, little-endian, C order. <c>numpy.load</c> reads it as it is.
/// </summary>
public static partial class Npy
{
    /// <summary>Reads a float32, C-order .npy file (as <c>numpy.save</c> writes one): its values and shape.</summary>
    /// <exception cref="InvalidDataException">The file is not such an array.</exception>
    public static (float[] Values, int[] Shape) ReadFloat32(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || !bytes.AsSpan(1, 5).SequenceEqual("NUMPY"u8) || bytes[6] is < 1 or > 3)
        {
            throw new InvalidDataException($"{path} is not a .npy file");
        }

        var (lengthBytes, headerLength) = bytes[6] == 1 ? (2, (int)BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))) : (4, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)));
        var start = 8 + lengthBytes;
        if (headerLength < 0 || start + headerLength > bytes.Length)
        {
            throw new InvalidDataException($"{path}: truncated .npy header");
        }

        var header = Encoding.ASCII.GetString(bytes, start, headerLength);
        var match = HeaderPattern().Match(header);
        if (!match.Success || !header.Contains("'fortran_order': False", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: only little-endian float32 arrays in C order are read, the header says {header.Trim()}");
        }

        var shape = match.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(d => int.Parse(d, CultureInfo.InvariantCulture)).ToArray();
        var count = shape.Aggregate(1L, (n, d) => n * d);
        var data = bytes.AsSpan(start + headerLength);
        if (data.Length != count * sizeof(float))
        {
            throw new InvalidDataException($"{path}: shape ({string.Join(", ", shape)}) needs {count * sizeof(float)} bytes of data, the file has {data.Length}");
        }

        var values = new float[count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(data[(4 * i)..]);
        }

        return (values, shape);
    }

    [GeneratedRegex(@"'descr':\s*'<f4'.*'shape':\s*\(([0-9,\s]*)\)")]
    private static partial Regex HeaderPattern();

    /// <summary>Writes <paramref name="values"/> as a float32 array of <paramref name="shape"/>, replacing the file atomically.</summary>
    /// <exception cref="ArgumentException">The shape does not hold exactly the values given.</exception>
    public static void Write(string path, ReadOnlySpan<float> values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(shape);
        var count = shape.Aggregate(1L, (n, d) => d >= 0 ? n * d : throw new ArgumentException($"shape ({string.Join(", ", shape)}) has a negative size", nameof(shape)));
        if (count != values.Length)
        {
            throw new ArgumentException($"shape ({string.Join(", ", shape)}) holds {count} values, {values.Length} were given", nameof(shape));
        }

        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64 and ended by a newline.
        var headerLength = ((10 + dict.Length + 1 + 63) / 64 * 64) - 10;
        var bytes = new byte[10 + headerLength + (values.Length * sizeof(float))];
        bytes[0] = 0x93;
        "NUMPY"u8.CopyTo(bytes.AsSpan(1));
        (bytes[6], bytes[7]) = (1, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        Encoding.ASCII.GetBytes(dict.PadRight(headerLength - 1) + "\n", bytes.AsSpan(10));
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(10 + headerLength + (4 * i)), values[i]);
        }

        var temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }
}
