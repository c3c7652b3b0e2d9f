namespace ParaCuda.Data;

/// <summary>The named datasets the trainer knows, where they live by default, and how to load them.</summary>
public static class Datasets
{
    private const string IdxFiles = "the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)";
    private const string CifarHint = "download the binary version (cifar-10-binary.tar.gz / cifar-100-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, extract it, and pass --data DIR";

    private static readonly DatasetInfo[] s_all =
    [
        new("fashion-mnist", "Fashion-MNIST", 1, 10, "/usr/share/datasets/fashion-mnist",
            "To get it: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs to /usr/share/datasets/fashion-mnist) " +
            $"or download {IdxFiles} from https://github.com/zalandoresearch/fashion-mnist and pass --data DIR."),
        new("mnist", "MNIST", 1, 10, "/usr/share/datasets/mnist",
            $"To get it: download {IdxFiles} from the MNIST site (http://yann.lecun.com/exdb/mnist/) and pass --data DIR."),
        new("cifar10", "CIFAR-10", 3, 10, null, $"To get it: {CifarHint}."),
        new("cifar100", "CIFAR-100", 3, 100, null, $"To get it: {CifarHint}."),
    ];

    /// <summary>The dataset names <see cref="Load(string, string?)"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = s_all.Select(d => d.Name).ToArray();

    /// <summary>Where the dataset is installed by default, or null when it has no standard place (CIFAR).</summary>
    public static string? DefaultDirectory(string dataset) => Info(dataset).DefaultDirectory;

    /// <summary>
    /// Loads the training and test sets of <paramref name="dataset"/> from <paramref name="directory"/>,
    /// or from <see cref="DefaultDirectory"/> when it is null.
    /// </summary>
    /// <exception cref="ArgumentException">The dataset name is unknown.</exception>
    /// <exception cref="DataNotFoundException">The files are not there; the message says how to get them.</exception>
    /// <exception cref="DataFormatException">A file is malformed.</exception>
    public static (ImageDataset Train, ImageDataset Test) Load(string dataset, string? directory)
    {
        var (train, test) = Load(dataset, directory, withTrain: true);
        return (train!, test);
    }

    /// <summary>The test set of <paramref name="dataset"/> alone: the training files are neither needed nor read.</summary>
    /// <inheritdoc cref="Load(string, string?)"/>
    public static ImageDataset LoadTest(string dataset, string? directory) => Load(dataset, directory, withTrain: false).Test;

    private static (ImageDataset? Train, ImageDataset Test) Load(string dataset, string? directory, bool withTrain)
    {
        var info = Info(dataset);
        directory ??= info.DefaultDirectory;
        if (directory is null)
        {
            throw new DataNotFoundException($"{info.Title} has no default location, so it needs a data directory. {info.Hint}");
        }

        if (info.Name is "cifar10" or "cifar100")
        {
            return withTrain ? Cifar.Load(directory, info.Classes) : (null, Cifar.LoadTest(directory, info.Classes));
        }

        string[] files = withTrain
            ? ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
            : ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
        var found = files.Select(f => Find(directory, f)).ToArray();
        var missing = files.Where((_, i) => found[i] is null).ToArray();
        if (missing.Length > 0)
        {
            var where = Directory.Exists(directory) ? directory : $"{directory} (which does not exist)";
            throw new DataNotFoundException(
                $"{info.Title} not found: looked in {where} for {string.Join(", ", files.Select(f => f + "[.gz]"))}; missing {string.Join(", ", missing)}. {info.Hint}",
                Path.Combine(directory, missing[0]));
        }

        var train = withTrain ? Idx.Load(found[0]!, found[1]!, info.Classes, $"{info.Name}/train") : null;
        var test = Idx.Load(found[^2]!, found[^1]!, info.Classes, $"{info.Name}/test");
        return (train, test);
    }

    /// <summary>Image channels of the named dataset (1 for the MNISTs, 3 for CIFAR).</summary>
    public static int Channels(string dataset) => Info(dataset).Channels;

    /// <summary>Number of classes of the named dataset.</summary>
    public static int Classes(string dataset) => Info(dataset).Classes;

    internal static DatasetInfo Info(string dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        return s_all.FirstOrDefault(d => d.Name.Equals(dataset, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown dataset '{dataset}'; choose one of: {string.Join(", ", Names)}", nameof(dataset));
    }

    /// <summary>The file itself or its .gz, preferring the uncompressed one (faster to read); null when neither exists.</summary>
    private static string? Find(string directory, string file) =>
        new[] { file, file + ".gz" }.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);
}

/// <summary>What the loaders and error messages need to know about one named dataset.</summary>
internal sealed record DatasetInfo(string Name, string Title, int Channels, int Classes, string? DefaultDirectory, string Hint);
