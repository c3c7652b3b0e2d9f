using System.Diagnostics;
using ParaCuda.Backends;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Optim;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Perf;

/// <summary>
/// Whole-model workloads on a placement: a training step of the full model (forward, cross-entropy, backward,
/// global-norm clipping, Adam), inference at batch 1 and at the workload's batch, and an <c>lpa</c> epoch. The
/// names match perf/reference/bench.py's, so the PyTorch side lines up row by row.
/// </summary>
public sealed class ModelSuite(double budgetSeconds)
{
    private const int Sets = 4;

    public IEnumerable<Result> Steps(Workload w, Placement placement, string mode)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(placement);
        using var scope = TensorScope.Begin();
        var config = w.Model;
        var main = placement.Main;
        using var model = ModelFactory.Create(config, ModuleInit.Create(1, main, placement.BranchContexts(config.Branches), placement.BatchedBranches));
        using var optimizer = new Adam(model.NamedParameters(), new AdamParameters(1e-3f));
        var full = new TrainStep(config.Branches, Clip: true);
        var images = Enumerable.Range(0, Sets).Select(i => Tensors.Random(new Shape(w.Batch, w.Channels, w.ImageSize, w.ImageSize), i, main)).ToArray();
        var labels = Enumerable.Range(0, Sets).Select(i => Tensor.FromArray(Enumerable.Range(0, w.Batch).Select(j => (i + j) % 10).ToArray(), new Shape(w.Batch), main)).ToArray();
        var single = Enumerable.Range(0, Sets).Select(i => Tensors.Random(new Shape(1, w.Channels, w.ImageSize, w.ImageSize), i + 10, main)).ToArray();
        var capturable = main.CanCapture && placement.BranchContexts(config.Branches) is null;
        foreach (var graphs in capturable ? new[] { false, true } : [false])
        {
            // With graphs, the warm-up's first steps run eagerly and capture; the timed ones replay.
            using var step = new TrainingStep(model, optimizer, new TrainOptions { Graphs = graphs });
            var label = graphs ? $"{mode}, graph" : mode;
            var train = Timing.Measure(main, i =>
            {
                using var inner = TensorScope.Begin();
                step.Run(images[i % Sets], labels[i % Sets], full);
            }, budgetSeconds);
            yield return Item($"{w} training step, batch {w.Batch}", label, train, w.Batch);
            if (w.SmallBatch is { } small)
            {
                var few = images.Select(x => x.NarrowView(0, small)).ToArray();
                var fewLabels = labels.Select(x => x.NarrowView(0, small)).ToArray();
                var smallTrain = Timing.Measure(main, i =>
                {
                    using var inner = TensorScope.Begin();
                    step.Run(few[i % Sets], fewLabels[i % Sets], full);
                }, budgetSeconds);
                yield return Item($"{w} training step, batch {small}", label, smallTrain, small);
            }
        }

        using (model.InferenceMode())
        {
            foreach (var (batch, inputs) in new[] { (1, single), (w.Batch, images) })
            {
                var stats = Timing.Measure(main, i =>
                {
                    using var inner = TensorScope.Begin();
                    model.Forward(inputs[i % Sets]);
                }, budgetSeconds);
                yield return Item($"{w} inference, batch {batch}", mode, stats, batch);
                if (capturable)
                {
                    yield return Item($"{w} inference, batch {batch}", $"{mode}, graph", Replayed(model, inputs, main), batch);
                }
            }
        }
    }

    /// <summary>The forward captured once as a graph, timed as a replay after copying each input into its static one.</summary>
    private Stats Replayed(VisionModel model, Tensor[] inputs, ComputeContext main)
    {
        using var unscoped = TensorScope.Unscoped();
        using var input = Tensor.Empty(inputs[0].Shape, DType.Float32, main);
        main.Ops.Copy(inputs[0], input);
        using (TensorScope.Begin())
        {
            model.Forward(input);
        }

        Tensor? output = null;
        using var graph = main.Capture(() =>
        {
            using var scope = TensorScope.Begin();
            output = scope.Keep(model.Forward(input));
        });
        try
        {
            return Timing.Measure(main, i =>
            {
                main.Ops.Copy(inputs[i % Sets], input);
                graph.Replay();
            }, budgetSeconds);
        }
        finally
        {
            output?.Dispose();
        }
    }

    /// <summary>One <c>lpa</c> epoch of <paramref name="config"/> on <paramref name="data"/> (training only; evaluation is not timed).</summary>
    public static Result Epoch(string name, ModelConfig config, TrainOptions options, ImageDataset data, Placement placement, string mode)
    {
        ArgumentNullException.ThrowIfNull(placement);
        var directory = Directory.CreateTempSubdirectory("paracuda-perf-epoch-").FullName;
        try
        {
            using var model = ModelFactory.Create(config, ModuleInit.Create(1, placement.Main, placement.BranchContexts(config.Branches), placement.BatchedBranches));
            var eval = Transform.Reference(config.Channels, config.ImageSize, train: false);
            var empty = data.Subset([]);
            using var trainer = new Trainer(model, options with { Epochs = 1, ValidationFraction = 0 }, new TrainData(data, empty, data.Subset([0]), Transform.Reference(config.Channels, config.ImageSize, options.Augment), eval), directory);
            var clock = Stopwatch.StartNew();
            var metrics = trainer.Run().Epochs[0];
            var stats = new Stats(metrics.EpochSeconds * 1000, metrics.EpochSeconds * 1000, metrics.EpochSeconds * 1000, 1);
            return new Result("epoch", name, mode, "f32", stats, data.Count, "images/s", data.Count / metrics.EpochSeconds, null, $"{clock.Elapsed.TotalSeconds:F1} s with evaluation", null);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static Result Item(string name, string mode, Stats stats, int images) =>
        new("model", name, mode, "f32", stats, images, "images/s", images * 1000 / stats.MedianMs, null);
}
