using System.Globalization;
using ParaCuda.Training;
using ScottPlot;
using ScottPlot.TickGenerators;
using SkiaSharp;

namespace ParaCuda.Reporting;

/// <summary>PNG figures for training runs. Every method writes its file atomically and creates the directory.</summary>
public static class Plots
{
    /// <summary>Size of the three-panel <see cref="TrainingCurves"/> figure.</summary>
    public const int CurvesWidth = 1500;

    public const int CurvesHeight = 450;

    /// <summary>Size of the single-panel <see cref="Lines"/> and <see cref="Bars"/> figures.</summary>
    public const int Width = 800;

    public const int Height = 500;

    private const int SuperTitleHeight = 40;

    // One colour per split in every panel, so train/val/test read the same across the figure.
    private static readonly Color s_train = Colors.C0;
    private static readonly Color s_val = Colors.C1;
    private static readonly Color s_test = Colors.C2;

    /// <summary>
    /// Loss per epoch, accuracy (%) per epoch, and the last epoch's accuracy against the number of branches k,
    /// side by side under one title.
    /// </summary>
    public static void TrainingCurves(IReadOnlyList<EpochMetrics> epochs, string path, string title)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (epochs.Count == 0)
        {
            throw new ArgumentException("No epochs to plot: the metrics list is empty.", nameof(epochs));
        }

        var epoch = epochs.Select(e => (double)e.Epoch).ToArray();

        var loss = new Plot();
        AddSeries(loss, "train", epoch, epochs.Select(e => e.TrainLoss).ToArray(), s_train);
        AddSeries(loss, "val", epoch, epochs.Select(e => e.ValLoss).ToArray(), s_val);
        AddSeries(loss, "test", epoch, epochs.Select(e => e.TestLoss).ToArray(), s_test);
        Decorate(loss, "Loss", "epoch", "cross-entropy loss", Alignment.UpperRight);
        IntegerTicks(loss);

        var accuracy = new Plot();
        AddSeries(accuracy, "train", epoch, epochs.Select(e => 100 * e.TrainAccuracy).ToArray(), s_train);
        AddSeries(accuracy, "val", epoch, epochs.Select(e => 100 * e.ValAccuracy).ToArray(), s_val);
        AddSeries(accuracy, "test", epoch, epochs.Select(e => 100 * e.TestAccuracy).ToArray(), s_test);
        Decorate(accuracy, "Accuracy", "epoch", "accuracy (%)", Alignment.LowerRight);
        IntegerTicks(accuracy);

        var last = epochs[^1];
        var byK = new Plot();
        var prefixes = last.Prefixes.OrderBy(p => p.K).ToArray();
        var k = prefixes.Select(p => (double)p.K).ToArray();
        if (prefixes.Length > 0)
        {
            AddSeries(byK, "test", k, prefixes.Select(p => 100 * p.TestAccuracy).ToArray(), s_test);
            AddSeries(byK, "val", k, prefixes.Select(p => 100 * p.ValAccuracy).ToArray(), s_val);
            var ticks = Enumerable.Range(1, prefixes[^1].K).Select(i => (double)i).ToArray();
            byK.Axes.Bottom.TickGenerator = new NumericManual(
                ticks, ticks.Select(t => t.ToString(CultureInfo.InvariantCulture)).ToArray());
        }
        else
        {
            // A report should still come out for runs that logged no per-k figures.
            byK.Add.Annotation("no per-k metrics in the last epoch", Alignment.MiddleCenter);
            byK.Axes.SetLimits(0, 1, 0, 100);
            byK.Axes.Bottom.TickGenerator = new NumericManual();
        }

        Decorate(byK, $"Accuracy vs branches (epoch {last.Epoch})", "branches used (k)", "accuracy (%)", Alignment.LowerRight);

        var multiplot = new Multiplot(loss);
        multiplot.AddPlot(accuracy);
        multiplot.AddPlot(byK);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();

        // Multiplot has no figure-wide title, so draw one in a band above the panels. Multiplot lays its panels
        // out from the canvas origin (it ignores the rectangle's offset), hence the translate.
        var info = new SKImageInfo(CurvesWidth, CurvesHeight, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var surface = SKSurface.Create(info)
            ?? throw new InvalidOperationException("SkiaSharp could not create a drawing surface.");
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        canvas.Save();
        canvas.Translate(0, SuperTitleHeight);
        multiplot.Render(canvas, new PixelRect(0, CurvesWidth, CurvesHeight - SuperTitleHeight, 0));
        canvas.Restore();

        var heading = new LabelStyle
        {
            Text = title,
            FontSize = 20,
            Bold = true,
            Alignment = Alignment.MiddleCenter,
        };
        using (var paint = Paint.NewDisposablePaint())
        {
            heading.Render(canvas, new Pixel(CurvesWidth / 2f, SuperTitleHeight / 2f), paint);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        WriteAtomically(path, png.ToArray());
    }

    /// <summary>One panel of lines with markers, one line per series.</summary>
    public static void Lines(
        string path,
        string title,
        string xLabel,
        string yLabel,
        IReadOnlyList<(string Label, IReadOnlyList<double> X, IReadOnlyList<double> Y)> series)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0)
        {
            throw new ArgumentException("No series to plot: the series list is empty.", nameof(series));
        }

        var plot = new Plot();
        for (var i = 0; i < series.Count; i++)
        {
            var (label, x, y) = series[i];
            if (x.Count == 0)
            {
                throw new ArgumentException($"Series '{label}' has no points.", nameof(series));
            }

            if (x.Count != y.Count)
            {
                throw new ArgumentException(
                    $"Series '{label}' has {x.Count} x values but {y.Count} y values.", nameof(series));
            }

            AddSeries(plot, label, x.ToArray(), y.ToArray(), Colors.Category10[i % Colors.Category10.Length]);
        }

        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        // Outside the data area: with many runs an inside legend would hide curves.
        plot.ShowLegend(Edge.Right);
        if (series.All(s => s.X.All(x => x == Math.Round(x))))
        {
            IntegerTicks(plot);
        }

        WriteAtomically(path, plot.GetImageBytes(Width, Height, ImageFormat.Png));
    }

    /// <summary>Grouped bars: one cluster per group, one coloured bar per series within each cluster; values along x.</summary>
    public static void Bars(
        string path,
        string title,
        string valueLabel,
        IReadOnlyList<string> groups,
        IReadOnlyList<(string Label, IReadOnlyList<double> Values)> series)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(series);
        if (groups.Count == 0)
        {
            throw new ArgumentException("No groups to plot: the group list is empty.", nameof(groups));
        }

        if (series.Count == 0)
        {
            throw new ArgumentException("No series to plot: the series list is empty.", nameof(series));
        }

        // Horizontal bars, first group on top: group names are sentences ("expand: +2 branches (old frozen)"),
        // readable on the left axis where they would overlap under vertical bars. Bars of one cluster share
        // 80% of a unit slot, leaving a gap between clusters.
        const double ClusterWidth = 0.8;
        var barWidth = ClusterWidth / series.Count;
        var plot = new Plot();
        for (var s = 0; s < series.Count; s++)
        {
            var (label, values) = series[s];
            if (values.Count != groups.Count)
            {
                throw new ArgumentException(
                    $"Series '{label}' has {values.Count} values for {groups.Count} groups.", nameof(series));
            }

            var color = Colors.Category10[s % Colors.Category10.Length];
            var bars = Enumerable.Range(0, groups.Count).Select(g => new Bar
            {
                Position = -g + (ClusterWidth / 2) - ((s + 0.5) * barWidth),
                Value = values[g],
                Size = barWidth,
                FillColor = color,
            }).ToList();
            var plotted = plot.Add.Bars(bars);
            plotted.Horizontal = true;
            plotted.LegendText = label;
        }

        var positions = Enumerable.Range(0, groups.Count).Select(g => (double)-g).ToArray();
        plot.Axes.Left.TickGenerator = new NumericManual(positions, groups.ToArray());
        plot.Axes.Left.MajorTickStyle.Length = 0;
        plot.Axes.Margins(left: 0);
        plot.Title(title);
        plot.XLabel(valueLabel);
        plot.ShowLegend(Edge.Bottom);
        WriteAtomically(path, plot.GetImageBytes(Width, Height, ImageFormat.Png));
    }

    private static void AddSeries(Plot plot, string label, double[] x, double[] y, Color color)
    {
        // A diverged run logs NaN/Inf; ScottPlot skips NaN but autoscales to nonsense on Inf, so leave a gap.
        var finite = y.Select(v => double.IsFinite(v) ? v : double.NaN).ToArray();
        var scatter = plot.Add.Scatter(x, finite, color);
        scatter.LegendText = label;
        scatter.LineWidth = 2;
        scatter.MarkerSize = 6;
    }

    private static void Decorate(Plot plot, string title, string xLabel, string yLabel, Alignment legend)
    {
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend(legend);
    }

    private static void IntegerTicks(Plot plot) =>
        plot.Axes.Bottom.TickGenerator = new NumericAutomatic { IntegerTicksOnly = true };

    // A reader (or a crash mid-write) never sees a half-written PNG: write beside it, then rename over it.
    private static void WriteAtomically(string path, byte[] png)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var temporary = full + ".tmp";
        File.WriteAllBytes(temporary, png);
        File.Move(temporary, full, overwrite: true);
    }
}
