using ParaCuda.Data;

namespace ParaCuda.Tests.Data;

public class ReaderTests
{
    private DirectoryInfo _dir = null!;

    [OneTimeSetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("paracuda-data-");

    [OneTimeTearDown]
    public void DeleteDirectory() => _dir.Delete(recursive: true);

    private string NewDirectory(string name) => _dir.CreateSubdirectory(name).FullName;

    [Test]
    public void Fashion_mnist_loads_with_the_published_sizes_and_balanced_classes()
    {
        var directory = Datasets.DefaultDirectory("fashion-mnist")!;
        if (!Directory.Exists(directory))
        {
            Assert.Ignore($"Fashion-MNIST is not installed in {directory}: `sudo apt-get install dataset-fashion-mnist` or download the IDX files from https://github.com/zalandoresearch/fashion-mnist");
        }

        var (train, test) = Datasets.Load("fashion-mnist", null);
        foreach (var (set, count) in new[] { (train, 60000), (test, 10000) })
        {
            Assert.That((set.Count, set.Channels, set.Height, set.Width, set.Classes), Is.EqualTo((count, 1, 28, 28, 10)), set.Name);
            Assert.That(set.Pixels.Length, Is.EqualTo(count * 28 * 28));
            var histogram = new int[10];
            foreach (var label in set.Labels.Span)
            {
                histogram[label]++;
            }

            Assert.That(histogram, Is.All.EqualTo(count / 10), set.Name);
        }

        // The published mean pixel of the training set is 0.2860 · 255 ≈ 72.9.
        var pixels = train.Pixels.Span;
        long sum = 0;
        foreach (var p in pixels)
        {
            sum += p;
        }

        Assert.That(sum / (double)pixels.Length, Is.EqualTo(72.94).Within(0.1));
    }

    [Test]
    public void Gzip_and_raw_idx_files_give_identical_data()
    {
        var raw = NewDirectory("raw");
        var gzip = NewDirectory("gzip");
        DataFiles.IdxSet(raw, gzip: false);
        DataFiles.IdxSet(gzip, gzip: true);

        // A gzip file with a raw file's name is still recognised by its magic bytes.
        var misnamed = NewDirectory("misnamed");
        foreach (var file in Directory.GetFiles(gzip))
        {
            File.Copy(file, Path.Combine(misnamed, Path.GetFileNameWithoutExtension(file)));
        }

        var (rawTrain, rawTest) = Datasets.Load("mnist", raw);
        Assert.That((rawTrain.Count, rawTest.Count, rawTrain.Height, rawTrain.Width), Is.EqualTo((20, 10, 6, 5)));
        Assert.That(rawTrain.Pixels.ToArray(), Is.EqualTo(DataFiles.Pixels(20, 6, 5)));
        Assert.That(rawTest.Labels.ToArray(), Is.EqualTo(DataFiles.Labels(10, 10).Select(b => (int)b)));
        foreach (var directory in new[] { gzip, misnamed })
        {
            var (train, test) = Datasets.Load("mnist", directory);
            Assert.That(train.Pixels.ToArray(), Is.EqualTo(rawTrain.Pixels.ToArray()), directory);
            Assert.That(train.Labels.ToArray(), Is.EqualTo(rawTrain.Labels.ToArray()), directory);
            Assert.That(test.Pixels.ToArray(), Is.EqualTo(rawTest.Pixels.ToArray()), directory);
            Assert.That(test.Labels.ToArray(), Is.EqualTo(rawTest.Labels.ToArray()), directory);
        }
    }

    private static IEnumerable<TestCaseData> MalformedIdx()
    {
        var pixels = DataFiles.Pixels(10, 4, 4);
        var labels = DataFiles.Labels(10, 10);
        foreach (var gzip in new[] { false, true })
        {
            yield return new TestCaseData(gzip, 0x802, new[] { 10, 4, 4 }, pixels, 10, labels, "images", "wrong magic number 0x00000802, expected 0x00000803")
                .SetName($"Wrong image magic (gzip {gzip})");
            yield return new TestCaseData(gzip, DataFiles.ImagesMagic, new[] { 100, 4, 4 }, pixels, 10, labels, "images", "truncated: header promises 100 images of 4×4 (1616 bytes) but the file holds 176")
                .SetName($"Truncated images (gzip {gzip})");
            yield return new TestCaseData(gzip, DataFiles.ImagesMagic, new[] { 10, 4, 4 }, pixels, 10, labels[..7], "labels", "truncated: header promises 10 labels (18 bytes) but the file holds 15")
                .SetName($"Truncated labels (gzip {gzip})");
            yield return new TestCaseData(gzip, DataFiles.ImagesMagic, new[] { 9, 4, 4 }, pixels[..(9 * 16)], 10, labels, "both", "has 9 images but label file")
                .SetName($"Image and label counts differ (gzip {gzip})");
            yield return new TestCaseData(gzip, DataFiles.ImagesMagic, new[] { 10, 4, 4 }, pixels, 10, labels.Select((l, i) => i == 5 ? (byte)12 : l).ToArray(), "labels", "label 12 at index 5 is outside 0..9")
                .SetName($"Label out of range (gzip {gzip})");
            yield return new TestCaseData(gzip, DataFiles.ImagesMagic, new[] { 9, 4, 4 }, pixels, 9, labels[..9], "images", "16 unexpected bytes after the 9 images of 4×4")
                .SetName($"Trailing bytes (gzip {gzip})");
        }
    }

    [TestCaseSource(nameof(MalformedIdx))]
    public void Malformed_idx_files_raise_a_format_error_naming_the_file(bool gzip, int magic, int[] dims, byte[] pixels, int labelCount, byte[] labels, string blamed, string problem)
    {
        var directory = NewDirectory(Guid.NewGuid().ToString("N"));
        var images = DataFiles.Idx(Path.Combine(directory, "images.idx"), magic, dims, pixels, gzip);
        var labelFile = DataFiles.Idx(Path.Combine(directory, "labels.idx"), DataFiles.LabelsMagic, [labelCount], labels, gzip);

        var e = Assert.Throws<DataFormatException>(() => ParaCuda.Data.Idx.Load(images, labelFile, 10, "bad"));
        Assert.That(e.Message, Does.Contain(problem));
        if (blamed != "labels")
        {
            Assert.That(e.Message, Does.Contain(images));
        }

        if (blamed != "images")
        {
            Assert.That(e.Message, Does.Contain(labelFile));
        }
    }

    [Test]
    public void A_corrupt_gzip_stream_is_a_format_error_naming_the_file()
    {
        var directory = NewDirectory("corrupt-gzip");
        var good = DataFiles.Idx(Path.Combine(directory, "images.gz"), DataFiles.ImagesMagic, [10, 4, 4], DataFiles.Pixels(10, 4, 4), gzip: true);
        var bytes = File.ReadAllBytes(good);
        bytes.AsSpan(10).Fill(0xff);
        var bad = Path.Combine(directory, "corrupt.gz");
        File.WriteAllBytes(bad, bytes);
        var labels = DataFiles.Idx(Path.Combine(directory, "labels"), DataFiles.LabelsMagic, [10], DataFiles.Labels(10, 10), gzip: false);

        var e = Assert.Throws<DataFormatException>(() => ParaCuda.Data.Idx.Load(bad, labels, 10, "bad"));
        Assert.That(e.Message, Does.Contain(bad));
        Assert.That(e.InnerException, Is.InstanceOf<InvalidDataException>());
    }

    [Test]
    public void A_missing_dataset_says_where_it_looked_and_how_to_install_it()
    {
        var empty = NewDirectory("empty");
        var e = Assert.Throws<DataNotFoundException>(() => Datasets.Load("fashion-mnist", empty));
        Assert.That(e.Message, Does.Contain(empty));
        Assert.That(e.Message, Does.Contain("sudo apt-get install dataset-fashion-mnist"));
        Assert.That(e.Message, Does.Contain("train-images-idx3-ubyte"));
        Assert.That(e.FileName, Is.EqualTo(Path.Combine(empty, "train-images-idx3-ubyte")));

        var nowhere = Path.Combine(empty, "nowhere");
        e = Assert.Throws<DataNotFoundException>(() => Datasets.Load("mnist", nowhere));
        Assert.That(e.Message, Does.Contain($"{nowhere} (which does not exist)"));
        Assert.That(e.Message, Does.Contain("--data DIR"));

        e = Assert.Throws<DataNotFoundException>(() => Datasets.Load("cifar10", empty));
        Assert.That(e.Message, Does.Contain("data_batch_1.bin"));
        Assert.That(e.Message, Does.Contain("https://www.cs.toronto.edu/~kriz/cifar.html"));

        e = Assert.Throws<DataNotFoundException>(() => Datasets.Load("cifar100", null));
        Assert.That(e.Message, Does.Contain("cifar-100-binary.tar.gz"));
    }

    [Test]
    public void Unknown_dataset_names_list_the_valid_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => Datasets.Load("imagenet", null));
        Assert.That(e.Message, Does.Contain("fashion-mnist, mnist, cifar10, cifar100"));
        Assert.That(Datasets.DefaultDirectory("MNIST"), Is.EqualTo("/usr/share/datasets/mnist"));
        Assert.That(Datasets.DefaultDirectory("cifar100"), Is.Null);
    }

    [Test]
    public void Cifar10_records_land_in_the_right_place([Values] bool nestedFolder)
    {
        var directory = NewDirectory($"cifar10-{nestedFolder}");
        var folder = nestedFolder ? Directory.CreateDirectory(Path.Combine(directory, "cifar-10-batches-bin")).FullName : directory;
        static byte[] Label(int r) => [(byte)(r % 10)];
        for (var f = 0; f < 5; f++)
        {
            DataFiles.CifarFile(Path.Combine(folder, $"data_batch_{f + 1}.bin"), 3 * f, 3, Label);
        }

        DataFiles.CifarFile(Path.Combine(folder, "test_batch.bin"), 100, 4, Label);

        var (train, test) = Datasets.Load("cifar10", directory);
        Assert.That((train.Count, test.Count, train.Channels, train.Height, train.Width, train.Classes), Is.EqualTo((15, 4, 3, 32, 32, 10)));
        Assert.That(train.Labels.ToArray(), Is.EqualTo(Enumerable.Range(0, 15).Select(r => r % 10)));
        Assert.That(test.Labels.ToArray(), Is.EqualTo(Enumerable.Range(100, 4).Select(r => r % 10)));

        // Record 7 is the second record of data_batch_3; check a green pixel at (y 5, x 9).
        Assert.That(train.Image(7)[1024 + (5 * 32) + 9], Is.EqualTo(DataFiles.CifarPixel(7, 1, 5, 9)));
        Assert.That(test.Image(3)[(2 * 1024) + (31 * 32) + 31], Is.EqualTo(DataFiles.CifarPixel(103, 2, 31, 31)));
    }

    [Test]
    public void Cifar100_uses_the_fine_label()
    {
        var directory = NewDirectory("cifar100");
        var folder = Directory.CreateDirectory(Path.Combine(directory, "cifar-100-binary")).FullName;
        static byte[] Labels(int r) => [(byte)(r % 20), (byte)((r * 37) % 100)];
        DataFiles.CifarFile(Path.Combine(folder, "train.bin"), 0, 6, Labels);
        DataFiles.CifarFile(Path.Combine(folder, "test.bin"), 50, 2, Labels);

        var (train, test) = Cifar.Load(folder, 100);
        Assert.That((train.Count, test.Count, train.Classes), Is.EqualTo((6, 2, 100)));
        Assert.That(train.Labels.ToArray(), Is.EqualTo(Enumerable.Range(0, 6).Select(r => (r * 37) % 100)));
        Assert.That(test.Labels.ToArray(), Is.EqualTo(new[] { 50 * 37 % 100, 51 * 37 % 100 }));
        Assert.That(train.Image(4)[(0 * 1024) + (2 * 32) + 3], Is.EqualTo(DataFiles.CifarPixel(4, 0, 2, 3)));
        Assert.That(test.Image(1)[1024 + 32], Is.EqualTo(DataFiles.CifarPixel(51, 1, 1, 0)));
    }

    [Test]
    public void A_cifar_file_that_is_not_whole_records_is_a_format_error()
    {
        var folder = NewDirectory("cifar-broken");
        static byte[] Label(int r) => [(byte)(r % 10)];
        for (var f = 0; f < 5; f++)
        {
            DataFiles.CifarFile(Path.Combine(folder, $"data_batch_{f + 1}.bin"), 2 * f, 2, Label);
        }

        var test = DataFiles.CifarFile(Path.Combine(folder, "test_batch.bin"), 0, 2, Label);
        using (var file = File.OpenWrite(test))
        {
            file.SetLength(file.Length - 100);
        }

        var e = Assert.Throws<DataFormatException>(() => Cifar.Load(folder, 10));
        Assert.That(e.Message, Does.Contain(test));
        Assert.That(e.Message, Does.Contain("not a whole, non-zero number of 3073-byte records"));
    }

    [Test]
    public void A_cifar_label_outside_the_classes_is_a_format_error()
    {
        var folder = Directory.CreateDirectory(Path.Combine(NewDirectory("cifar-label"), "cifar-100-binary")).FullName;
        DataFiles.CifarFile(Path.Combine(folder, "train.bin"), 0, 3, r => [0, (byte)(r == 2 ? 100 : r)]);
        DataFiles.CifarFile(Path.Combine(folder, "test.bin"), 0, 1, r => [0, 0]);

        var e = Assert.Throws<DataFormatException>(() => Cifar.Load(folder, 100));
        Assert.That(e.Message, Does.Contain(Path.Combine(folder, "train.bin")));
        Assert.That(e.Message, Does.Contain("label 100 of record 2 is outside 0..99"));
    }
}
