using System.Buffers.Binary;
using ParaCuda.Reporting;
using ParaCuda.Training;

namespace ParaCuda.Tests.Reporting;

public class PlotsTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Path.Combine(Path.GetTempPath(), $"paracuda-plots-{Guid.NewGuid():N}");

    [TearDown]
    public void DeleteDirectory()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static List<EpochMetrics> Run(int epochs = 5, int branches = 4) =>
        [.. Enumerable.Range(1, epochs).Select(e => new EpochMetrics(
            Epoch: e,
            Schedule: "joint",
            Model: "vit",
            TrainLoss: 2.0 / e,
            TrainAccuracy: 1 - (0.5 / e),
            ValLoss: 2.2 / e,
            ValAccuracy: 1 - (0.55 / e),
            TestLoss: 2.3 / e,
            TestAccuracy: 1 - (0.6 / e),
            Prefixes: [.. Enumerable.Range(1, branches).Select(k => new PrefixMetrics(
                k, 1.0 / k, 0.5 + (0.1 * k), 1.1 / k, 0.45 + (0.1 * k)))],
            EpochSeconds: 10,
            ImagesPerSecond: 5000,
            Steps: 100L * e,
            ElapsedSeconds: 10.0 * e))];

    /// <summary>Asserts a real PNG of the given size; dimensions come from the IHDR chunk (big-endian at 16..24).</summary>
    private static void AssertPng(string path, int width, int height)
    {
        Assert.That(File.Exists(path), Is.True, path);
        Assert.That(File.Exists(path + ".tmp"), Is.False, "temporary file left behind");
        var bytes = File.ReadAllBytes(path);
        Assert.That(bytes, Has.Length.GreaterThan(5 * 1024));
        Assert.That(bytes[..4], Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47 }));
        Assert.That(BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)), Is.EqualTo(width));
        Assert.That(BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4)), Is.EqualTo(height));
    }

    [Test]
    public void Training_curves_render_a_png()
    {
        // A nested, not-yet-existing directory: the plotter creates it.
        var path = Path.Combine(_dir, "run", "curves.png");

        Plots.TrainingCurves(Run(), path, "vit / joint");

        AssertPng(path, 1500, 450);
        Assert.That((Plots.CurvesWidth, Plots.CurvesHeight), Is.EqualTo((1500, 450)));
    }

    [Test]
    public void Training_curves_overwrite_an_existing_file()
    {
        var path = Path.Combine(_dir, "curves.png");
        Directory.CreateDirectory(_dir);
        File.WriteAllText(path, "stale");

        Plots.TrainingCurves(Run(epochs: 1, branches: 1), path, "one epoch");

        AssertPng(path, Plots.CurvesWidth, Plots.CurvesHeight);
    }

    [Test]
    public void Training_curves_render_without_prefix_metrics()
    {
        var path = Path.Combine(_dir, "curves.png");
        var run = Run(epochs: 3).Select(e => e with { Prefixes = [] }).ToList();

        Plots.TrainingCurves(run, path, "no prefixes");

        AssertPng(path, Plots.CurvesWidth, Plots.CurvesHeight);
    }

    [Test]
    public void Training_curves_tolerate_a_diverged_run()
    {
        var path = Path.Combine(_dir, "curves.png");
        var run = Run(epochs: 3);
        run[2] = run[2] with { TrainLoss = double.NaN, ValLoss = double.PositiveInfinity };

        Plots.TrainingCurves(run, path, "diverged");

        AssertPng(path, Plots.CurvesWidth, Plots.CurvesHeight);
    }

    [Test]
    public void Training_curves_reject_an_empty_run()
    {
        var path = Path.Combine(_dir, "curves.png");

        var error = Assert.Throws<ArgumentException>(() => Plots.TrainingCurves([], path, "empty"));

        Assert.That(error.ParamName, Is.EqualTo("epochs"));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void Lines_render_a_png()
    {
        var path = Path.Combine(_dir, "lines.png");
        double[] k = [1, 2, 3, 4];

        Plots.Lines(path, "accuracy vs k", "k", "test accuracy (%)",
        [
            ("joint", k, [60, 70, 75, 78]),
            ("sequential", k, [65, 72, 76, 77]),
        ]);

        AssertPng(path, Plots.Width, Plots.Height);
    }

    [Test]
    public void Lines_reject_empty_input()
    {
        var path = Path.Combine(_dir, "lines.png");

        Assert.Throws<ArgumentException>(() => Plots.Lines(path, "t", "x", "y", []));
        Assert.Throws<ArgumentException>(() => Plots.Lines(path, "t", "x", "y", [("none", [], [])]));
        Assert.Throws<ArgumentException>(() => Plots.Lines(path, "t", "x", "y", [("ragged", [1, 2], [1])]));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void Bars_render_a_png()
    {
        var path = Path.Combine(_dir, "bars.png");

        Plots.Bars(path, "continual learning", "test accuracy (%)", ["old classes", "new classes", "all"],
        [
            ("fine-tune", [20, 95, 57]),
            ("new branch", [80, 90, 85]),
            ("joint", [85, 88, 86]),
        ]);

        AssertPng(path, Plots.Width, Plots.Height);
    }

    [Test]
    public void Bars_reject_empty_input()
    {
        var path = Path.Combine(_dir, "bars.png");

        Assert.Throws<ArgumentException>(() => Plots.Bars(path, "t", "y", [], [("a", [])]));
        Assert.Throws<ArgumentException>(() => Plots.Bars(path, "t", "y", ["g"], []));
        Assert.Throws<ArgumentException>(() => Plots.Bars(path, "t", "y", ["g", "h"], [("short", [1])]));
        Assert.That(File.Exists(path), Is.False);
    }
}
