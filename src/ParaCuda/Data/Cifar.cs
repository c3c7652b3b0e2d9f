namespace ParaCuda.Data;

/// <summary>
/// Reads the binary versions of CIFAR-10 and CIFAR-100: fixed-size records of label byte(s) followed
/// by 3072 pixel bytes (the 32×32 red, green and blue planes, i.e. already CHW).
/// </summary>
public static class Cifar
{
    private const int Side = 32;
    private const int ImageBytes = 3 * Side * Side;

    /// <summary>
    /// Loads CIFAR-10 (<paramref name="classes"/> = 10) or CIFAR-100 (100, fine labels) from
    /// <paramref name="directory"/>, which may be the extracted folder (cifar-10-batches-bin or
    /// cifar-100-binary) or the folder containing it.
    /// </summary>
    /// <exception cref="DataNotFoundException">A file of the set is missing.</exception>
    /// <exception cref="DataFormatException">A file is not a whole number of records or holds a bad label.</exception>
    public static (ImageDataset Train, ImageDataset Test) Load(string directory, int classes)
    {
        var (train, test) = Load(directory, classes, withTrain: true);
        return (train!, test);
    }

    /// <summary>The test set alone (the training files are neither needed nor read).</summary>
    /// <inheritdoc cref="Load(string, int)"/>
    public static ImageDataset LoadTest(string directory, int classes) => Load(directory, classes, withTrain: false).Test;

    private static (ImageDataset? Train, ImageDataset Test) Load(string directory, int classes, bool withTrain)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var (dataset, folder, trainFiles, testFile, labelBytes) = classes switch
        {
            10 => ("cifar10", "cifar-10-batches-bin", new[] { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin" }, "test_batch.bin", 1),
            100 => ("cifar100", "cifar-100-binary", new[] { "train.bin" }, "test.bin", 2),
            _ => throw new ArgumentOutOfRangeException(nameof(classes), $"CIFAR has 10 or 100 classes, not {classes}"),
        };

        var info = Datasets.Info(dataset);
        var nested = Path.Combine(directory, folder);
        var root = Directory.Exists(nested) ? nested : directory;
        if (!withTrain)
        {
            trainFiles = [];
        }

        var files = trainFiles.Append(testFile).Select(f => Path.Combine(root, f)).ToArray();
        var missing = files.Where(f => !File.Exists(f)).ToArray();
        if (missing.Length > 0)
        {
            throw new DataNotFoundException(
                $"{info.Title} not found: looked for {string.Join(", ", trainFiles.Append(testFile))} in {nested} and in {directory}; missing {string.Join(", ", missing.Select(Path.GetFileName))}. {info.Hint}",
                missing[0]);
        }

        var train = withTrain ? Read(files[..^1], classes, labelBytes, $"{dataset}/train") : null;
        var test = Read(files[^1..], classes, labelBytes, $"{dataset}/test");
        return (train, test);
    }

    /// <summary>Reads record files one after another into one dataset; the label is the last label byte (the fine label in CIFAR-100).</summary>
    private static ImageDataset Read(string[] paths, int classes, int labelBytes, string name)
    {
        var recordBytes = labelBytes + ImageBytes;
        var counts = new int[paths.Length];
        for (var f = 0; f < paths.Length; f++)
        {
            var length = new FileInfo(paths[f]).Length;
            if (length == 0 || length % recordBytes != 0)
            {
                throw new DataFormatException(
                    $"{paths[f]}: size {length} bytes is not a whole, non-zero number of {recordBytes}-byte records ({labelBytes} label byte(s) + {ImageBytes} pixel bytes each)");
            }

            counts[f] = checked((int)(length / recordBytes));
        }

        var total = counts.Sum();
        var pixels = GC.AllocateUninitializedArray<byte>(checked(total * ImageBytes));
        var labels = new int[total];
        var record = new byte[recordBytes];
        var n = 0;
        for (var f = 0; f < paths.Length; f++)
        {
            using var stream = new FileStream(paths[f], FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            for (var r = 0; r < counts[f]; r++, n++)
            {
                stream.ReadExactly(record);
                var label = record[labelBytes - 1];
                if (label >= classes)
                {
                    throw new DataFormatException($"{paths[f]}: label {label} of record {r} is outside 0..{classes - 1}");
                }

                labels[n] = label;
                record.AsSpan(labelBytes).CopyTo(pixels.AsSpan(n * ImageBytes, ImageBytes));
            }
        }

        return new ImageDataset(name, 3, Side, Side, classes, pixels, labels);
    }
}
