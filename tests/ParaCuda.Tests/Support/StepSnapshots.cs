using ParaCuda.Backends;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Optim;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Tests.Support;

/// <summary>Training steps of the <c>tiny</c> ParaFormer, snapshotted after each: what the parity tests compare.</summary>
internal static class StepSnapshots
{
    private const int Batch = 16;

    /// <summary>The <c>tiny</c> preset on 28-pixel one-channel images: 4 branches of 1 block, width 64.</summary>
    public static ModelConfig Tiny { get; } = Presets.ForData(Presets.Get("tiny").Model, 28, 1, 10);

    /// <summary>
    /// The tiny model (or <paramref name="config"/>) trained on two fixed random batches, taken in turn: after each
    /// step, its loss and every parameter. The snapshots are device copies, each on its tensor's own stream, read
    /// only when all steps are issued: the host never synchronises between steps, as in training, so a missing
    /// wait between streams shows. With <paramref name="graphs"/>, steps are captured and replayed where the
    /// context can (and the run fails unless some were).
    /// </summary>
    public static List<(double Loss, List<string> Names, List<float[]> Parameters)> Train(ComputeContext main, IReadOnlyList<ComputeContext>? branches, List<TrainStep> steps, bool batched = false, bool graphs = false, ModelConfig? config = null)
    {
        using var scope = TensorScope.Begin();
        using var model = ModelFactory.Create(config ?? Tiny, ModuleInit.Create(7, main, batchedBranches: batched), branches);
        var options = new TrainOptions { LearningRate = 1e-3f, Graphs = graphs };
        using var optimizer = new Adam(model.NamedParameters(), new AdamParameters(options.LearningRate));
        using var step = new TrainingStep(model, optimizer, options);
        var images = Enumerable.Range(0, 2).Select(i => Tensor.FromArray(Rand.Values(Batch * 28 * 28, 8 + i).Select(v => (float)v).ToArray(), new Shape(Batch, 1, 28, 28), main)).ToArray();
        var labels = Enumerable.Range(0, 2).Select(i => Tensor.FromArray(Rand.Labels(Batch, 10, 9 + i), new Shape(Batch), main)).ToArray();
        var named = model.NamedParameters().ToList();
        var snapshots = new List<(Tensor Loss, List<Tensor> Parameters)>();
        foreach (var (s, i) in steps.Select((s, i) => (s, i)))
        {
            var output = step.Run(images[i % 2], labels[i % 2], s);
            snapshots.Add((output.Loss.Clone(), named.Select(n => n.Parameter.Clone()).ToList()));
        }

        if (graphs && main.CanCapture)
        {
            Assert.That(step.GraphCount, Is.Positive, "no step was captured: the run compared nothing");
        }

        var names = named.Select(n => n.Name).ToList();
        return snapshots.Select(snapshot => ((double)snapshot.Loss.Item(), names, snapshot.Parameters.Select(p => p.ToArray<float>()).ToList())).ToList();
    }

    /// <summary>Every step's loss and parameters of <paramref name="actual"/> within <paramref name="tolerance"/> (relative) of <paramref name="expected"/>'s.</summary>
    public static void AssertClose(List<(double Loss, List<string> Names, List<float[]> Parameters)> actual, List<(double Loss, List<string> Names, List<float[]> Parameters)> expected, List<TrainStep> steps, double tolerance, string what)
    {
        for (var s = 0; s < steps.Count; s++)
        {
            Assert.That(actual[s].Loss, Is.EqualTo(expected[s].Loss).Within(tolerance * Math.Abs(expected[s].Loss)), $"{what}: step {s + 1} ({steps[s]}): loss");
            Assert.That(actual[s].Names, Is.EqualTo(expected[s].Names));
            for (var p = 0; p < expected[s].Parameters.Count; p++)
            {
                Close.Check(actual[s].Parameters[p], expected[s].Parameters[p].Select(v => (double)v).ToArray(), tolerance, $"{what}: step {s + 1} ({steps[s]}): parameter {expected[s].Names[p]}");
            }
        }
    }

    /// <summary>Bit-identical losses and parameters after every step; a failure names every parameter that differs, and by how much.</summary>
    public static void AssertIdentical(List<(double Loss, List<string> Names, List<float[]> Parameters)> run, List<(double Loss, List<string> Names, List<float[]> Parameters)> expected, string name)
    {
        for (var s = 0; s < expected.Count; s++)
        {
            var differing = Enumerable.Range(0, expected[s].Parameters.Count)
                .Select(p => (Name: expected[s].Names[p], Count: expected[s].Parameters[p].Zip(run[s].Parameters[p]).Count(v => v.First != v.Second), Max: expected[s].Parameters[p].Zip(run[s].Parameters[p]).Max(v => Math.Abs(v.First - v.Second))))
                .Where(d => d.Count > 0)
                .Select(d => $"{d.Name} ({d.Count} values, up to {d.Max:E1})")
                .ToList();
            Assert.That(run[s].Loss, Is.EqualTo(expected[s].Loss), $"step {s + 1}: loss with {name}");
            Assert.That(differing, Is.Empty, $"step {s + 1}: parameters that differ with {name}");
            if (differing.Count > 0)
            {
                return;
            }
        }
    }
}
