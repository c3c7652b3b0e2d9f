using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// Whole training steps of the <c>tiny</c> ParaFormer (4 branches of 1 block, width 64, batch 16) on the
/// device against the CPU, in strict float32: after every step of an <c>lpa</c> batch (k = 1..4, clipped,
/// then the full model) and of a <c>prefix</c> step, the loss and every parameter agree within 1e-4
/// relative. And the placements of the branches (one stream, a stream each, two devices) give the same
/// numbers bit for bit: the kernels are deterministic and nothing depends on which stream finished first.
/// </summary>
public abstract class TrainingParityTests : CudaDeviceTests
{
    private const double Tolerance = 1e-4;

    private static readonly ModelConfig s_tiny = StepSnapshots.Tiny;

    [Test]
    public void An_lpa_batch_matches_the_cpu_after_every_step() =>
        CompareWithCpu(new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList());

    [Test]
    public void A_prefix_step_matches_the_cpu() =>
        CompareWithCpu(new PrefixSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList());

    [Test]
    public void Two_runs_on_one_stream_give_identical_results()
    {
        var steps = new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList();
        var first = StepSnapshots.Train(Backend.DefaultContext, null, steps);
        StepSnapshots.AssertIdentical(StepSnapshots.Train(Backend.DefaultContext, null, steps), first, "a second run");
    }

    [Test]
    public void One_stream_a_stream_per_branch_and_two_devices_give_identical_results()
    {
        var steps = new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList();
        var main = Backend.DefaultContext;
        var oneStream = StepSnapshots.Train(main, null, steps);
        var ownStreams = StepSnapshots.Train(main, Enumerable.Range(0, s_tiny.Branches).Select(b => Backend.CreateContext($"branch {b}")).ToList(), steps);
        using var second = Open(index: 1);
        var twoDevices = StepSnapshots.Train(main, [main, second.DefaultContext], steps);
        // Round-robin over two devices, each branch on a stream of its own: device 1's update runs on one
        // branch's stream, which the other branch there must wait for.
        var twoDevicesOwnStreams = StepSnapshots.Train(main, Enumerable.Range(0, s_tiny.Branches).Select(b => (b % 2 == 0 ? Backend : second).CreateContext($"branch {b}")).ToList(), steps);
        Assert.Multiple(() =>
        {
            foreach (var (name, run) in new[] { ("a stream per branch", ownStreams), ("two devices", twoDevices), ("two devices, a stream per branch", twoDevicesOwnStreams) })
            {
                StepSnapshots.AssertIdentical(run, oneStream, name);
            }
        });
    }

    [Test]
    public void Batched_branches_match_separate_branches_after_every_step()
    {
        var steps = new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).Concat(new PrefixSchedule().Passes(0, 1, 1, s_tiny.Branches)).SelectMany(p => p.Steps).ToList();
        var main = Backend.DefaultContext;
        StepSnapshots.AssertClose(StepSnapshots.Train(main, null, steps, batched: true), StepSnapshots.Train(main, null, steps), steps, 1e-5, "batched against one stream");
    }

    [Test]
    public void An_lpa_batch_in_bf16_mixed_precision_keeps_the_losses_within_bf16_rounding_of_the_cpu()
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no bf16 tensor cores");
        }

        // Parameters after Adam can differ by a whole step where a gradient near zero changes sign, so the
        // losses of every step carry the comparison: within 1e-2, and not float32-close (bf16 is in effect).
        var steps = Enumerable.Repeat(new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps), 2).SelectMany(s => s).ToList();
        using var bf16 = Open(GemmPrecision.Bf16, index: 2);
        var device = StepSnapshots.Train(bf16.DefaultContext, null, steps);
        var cpu = StepSnapshots.Train(CpuBackend.Instance.DefaultContext, null, steps);
        var errors = device.Zip(cpu, (d, c) => Math.Abs(d.Loss - c.Loss) / Math.Abs(c.Loss)).ToList();
        Assert.That(errors, Is.All.LessThanOrEqualTo(1e-2), "every step's loss");
        Assert.That(errors.Max(), Is.GreaterThan(1e-5), "bf16 rounding shows");
    }

    [TestCase(GemmPrecision.Tf32)]
    [TestCase(GemmPrecision.Bf16)]
    public void Steps_on_the_hand_written_linear_kernels_keep_the_losses_within_rounding_of_the_cpu(GemmPrecision precision)
    {
        if (!Backend.Gpu.Properties.HasTf32)
        {
            Assert.Ignore($"{Backend.Gpu.Properties.Name} has no tensor cores for TF32 or bf16");
        }

        // Branches batched, so the kernels take their grouped form too; every forward linear runs on them.
        var steps = new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList();
        using var cores = Open(precision, index: 2);
        cores.LinearKernels = LinearKernels.HandWritten;
        var device = StepSnapshots.Train(cores.DefaultContext, null, steps, batched: true);
        var cpu = StepSnapshots.Train(CpuBackend.Instance.DefaultContext, null, steps, batched: true);
        Assert.That(cores.LoadedKernels.Select(k => k.Kernel), Does.Contain("linear_gelu_tc").And.Contain("linear_bias_tc").And.Contain("linear_dgelu_tc"));
        var errors = device.Zip(cpu, (d, c) => Math.Abs(d.Loss - c.Loss) / Math.Abs(c.Loss)).ToList();
        Assert.That(errors, Is.All.LessThanOrEqualTo(1e-2), "every step's loss");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Mixed_precision_on_the_device_is_the_cpus_mixed_precision(bool batched)
    {
        // Under Autocast with float32 arithmetic everywhere else (this fixture's precision): bf16 activations, products
        // of bf16 operands, attention on bf16 q, k, v, as the CPU computes them. The loss and the gradients of one
        // forward and backward of the whole model with dropout (gradients, not weights after Adam, whose first step
        // divides a near-zero gradient by itself) lie much nearer the CPU's mixed precision than float32's. Not to
        // float32 rounding: where the two compute an activation differently in its last float32 bit (a GPU's expf, say)
        // it may round to neighbouring bf16 values, a step of 4e-3 that the backward carries on (on an H100 up to 1e-3
        // in a gradient; 1e-6 on the emulated device).
        List<(string Name, double[] Values)> device, cpu;
        using (Autocast.Bf16())
        {
            device = Gradients(Backend.DefaultContext, batched);
            cpu = Gradients(CpuBackend.Instance.DefaultContext, batched);
        }

        var float32 = Gradients(CpuBackend.Instance.DefaultContext, batched);
        static double Error(List<(string Name, double[] Values)> a, List<(string Name, double[] Values)> b) =>
            Close.RelativeError([.. a.SelectMany(t => t.Values)], [.. b.SelectMany(t => t.Values)]);
        var (againstMixed, againstFloat32) = (Error(device, cpu), Error(device, float32));
        TestContext.Out.WriteLine($"all gradients: {againstMixed:E2} from the CPU's mixed precision, {againstFloat32:E2} from float32");
        Assert.That(againstMixed, Is.LessThanOrEqualTo(2e-3), "near the CPU's mixed precision");
        Assert.That(againstFloat32, Is.InRange(1e-4, 5e-2), "float32 is bf16's rounding away");
        Assert.That(againstMixed, Is.LessThan(againstFloat32 / 4), "and the CPU's mixed precision is much nearer");
    }

    /// <summary>The tiny model's loss (named "loss") and parameter gradients after one forward and backward in training mode on a fixed batch.</summary>
    private static List<(string Name, double[] Values)> Gradients(ComputeContext context, bool batched)
    {
        using var scope = TensorScope.Begin();
        using var model = ModelFactory.Create(s_tiny with { Dropout = 0.1f }, ModuleInit.Create(7, context, batchedBranches: batched));
        model.Train();
        var images = Tensor.FromArray(Rand.Values(16 * 28 * 28, 8).Select(v => (float)v).ToArray(), new Shape(16, 1, 28, 28), context);
        var labels = Tensor.FromArray(Rand.Labels(16, 10, 9), new Shape(16), context);
        var loss = F.CrossEntropy(model.Forward(images), labels);
        loss.Backward();
        return [("loss", [loss.Item()]), .. model.NamedParameters().Select(p => (p.Name, p.Parameter.Grad!.ToDoubles()))];
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Captured_steps_give_the_numbers_of_steps_issued_one_by_one(bool batched)
    {
        // Each kind of step three times (run eagerly, captured, replayed), with dropout everywhere: a replay that
        // reused the capture's step counts, dropout streams or batch would drift from the eager run.
        var batch = new LpaSchedule().Passes(0, 1, 1, s_tiny.Branches).SelectMany(p => p.Steps).ToList();
        var steps = Enumerable.Repeat(batch, 3).SelectMany(s => s).ToList();
        var config = s_tiny with { Dropout = 0.1f, EmbeddingDropout = 0.1f };
        var main = Backend.DefaultContext;
        var eager = StepSnapshots.Train(main, null, steps, batched, config: config);
        StepSnapshots.AssertIdentical(StepSnapshots.Train(main, null, steps, batched, graphs: true, config: config), eager, "graphs");
    }

    [Test]
    public void A_trainer_epoch_with_graphs_equals_the_epoch_without()
    {
        // An lpa epoch of batched branches with dropout: per pass a first batch issued eagerly, a second captured
        // and replayed, a third replayed, and a smaller last one eagerly again; graphs are dropped between passes.
        // Losses, accuracies and the checkpoint (weights, Adam's moments and step counts, the dropout counter)
        // must come out bit for bit as without graphs.
        var (rest, test) = Synthetic.Create(96, 10, 1, 28, seed: 3).Split(32.0 / 96, 3);
        var (train, validation) = rest.Split(0.25, 3);
        var data = new TrainData(train, validation, test, Transform.Reference(1, 28, train: true), Transform.Reference(1, 28, train: false));
        var config = SmallModels.Fmnist(2) with { Dropout = 0.1f, EmbeddingDropout = 0.1f };
        var root = Directory.CreateTempSubdirectory("paracuda-graph-epoch-").FullName;
        try
        {
            EpochMetrics Run(bool graphs)
            {
                var options = new TrainOptions { Epochs = 1, BatchSize = 14, LearningRate = 3e-3f, Seed = 5, Workers = 1, EvalBatchSize = 20, Graphs = graphs };
                using var model = ModelFactory.Create(config, ModuleInit.Create(11, Backend.DefaultContext, batchedBranches: true));
                using var trainer = new Trainer(model, options, data, Path.Combine(root, graphs ? "graphs" : "eager"));
                return trainer.Run().Epochs.Single();
            }

            var eager = Run(graphs: false);
            var captured = Run(graphs: true);
            Assert.That(captured.Steps, Is.EqualTo(eager.Steps));
            Assert.That(captured.TrainLoss, Is.EqualTo(eager.TrainLoss), "train loss");
            Assert.That(captured.TrainAccuracy, Is.EqualTo(eager.TrainAccuracy), "train accuracy");
            Assert.That(captured.Prefixes.Select(p => p.TestLoss), Is.EqualTo(eager.Prefixes.Select(p => p.TestLoss)), "test loss of every prefix");
            using var eagerFile = SafeTensors.Read(Path.Combine(root, "eager", Trainer.LastFile));
            using var capturedFile = SafeTensors.Read(Path.Combine(root, "graphs", Trainer.LastFile));
            Assert.That(capturedFile.Tensors.Keys, Is.EquivalentTo(eagerFile.Tensors.Keys));
            foreach (var (name, tensor) in eagerFile.Tensors)
            {
                Assert.That(capturedFile.Tensors[name].ToArray<float>(), Is.EqualTo(tensor.ToArray<float>()), $"checkpoint tensor {name}");
            }

            var (eagerState, capturedState) = (Checkpoint.ReadState(Path.Combine(root, "eager", Trainer.LastFile)), Checkpoint.ReadState(Path.Combine(root, "graphs", Trainer.LastFile)));
            Assert.That(capturedState.ParameterSteps, Is.EqualTo(eagerState.ParameterSteps), "Adam's step counts");
            Assert.That(capturedState.GeneratorOffset, Is.EqualTo(eagerState.GeneratorOffset), "dropout streams drawn");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public void Graphs_with_a_stream_per_branch_are_refused_before_training()
    {
        using var model = ModelFactory.Create(s_tiny, ModuleInit.Create(1, Backend.DefaultContext), Enumerable.Range(0, s_tiny.Branches).Select(b => Backend.CreateContext($"branch {b}")).ToList());
        var data = Synthetic.Create(8, 10, 1, 28, seed: 1);
        var error = Assert.Throws<ArgumentException>(() => new Trainer(model, new TrainOptions { Graphs = true }, new TrainData(data, data, data, Transform.Reference(1, 28, false), Transform.Reference(1, 28, false)), Path.GetTempPath()));
        Assert.That(error!.Message, Does.Contain("--branch-exec serial or batched"));
    }

    [Test]
    public void An_epoch_of_the_trainer_matches_the_cpu_run()
    {
        // Everything a run does: batches as bytes transformed on the device (with augmentation), the step window,
        // evaluation of every prefix on the device, checkpoints written from device memory.
        var (rest, test) = Synthetic.Create(96, 10, 1, 28, seed: 3).Split(32.0 / 96, 3);
        var (train, validation) = rest.Split(0.25, 3);
        var data = new TrainData(train, validation, test, Transform.Reference(1, 28, train: true), Transform.Reference(1, 28, train: false));
        var options = new TrainOptions { Epochs = 1, BatchSize = 16, LearningRate = 3e-3f, Seed = 5, Workers = 1, EvalBatchSize = 20 };
        var root = Directory.CreateTempSubdirectory("paracuda-device-run-").FullName;
        try
        {
            EpochMetrics Run(ComputeContext context, string name)
            {
                using var model = ModelFactory.Create(SmallModels.Fmnist(2), ModuleInit.Create(11, context));
                using var trainer = new Trainer(model, options, data, Path.Combine(root, name));
                return trainer.Run().Epochs.Single();
            }

            var cpu = Run(CpuBackend.Instance.DefaultContext, "cpu");
            var device = Run(Backend.DefaultContext, "device");
            Assert.That(device.Steps, Is.EqualTo(cpu.Steps));
            Assert.That(device.TrainLoss, Is.EqualTo(cpu.TrainLoss).Within(Tolerance * cpu.TrainLoss), "train loss");
            Assert.That(device.TrainAccuracy, Is.EqualTo(cpu.TrainAccuracy), "train accuracy");
            for (var k = 0; k < cpu.Prefixes.Count; k++)
            {
                Assert.That(device.Prefixes[k].ValLoss, Is.EqualTo(cpu.Prefixes[k].ValLoss).Within(Tolerance * cpu.Prefixes[k].ValLoss), $"k={k + 1}: validation loss");
                Assert.That(device.Prefixes[k].TestLoss, Is.EqualTo(cpu.Prefixes[k].TestLoss).Within(Tolerance * cpu.Prefixes[k].TestLoss), $"k={k + 1}: test loss");
            }

            using var cpuFile = SafeTensors.Read(Path.Combine(root, "cpu", Trainer.LastFile));
            using var deviceFile = SafeTensors.Read(Path.Combine(root, "device", Trainer.LastFile));
            foreach (var (name, tensor) in cpuFile.Tensors)
            {
                Close.Check(deviceFile.Tensors[name].ToArray<float>(), tensor.ToDoubles(), Tolerance, $"checkpoint tensor {name}");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private void CompareWithCpu(List<TrainStep> steps) =>
        StepSnapshots.AssertClose(StepSnapshots.Train(Backend.DefaultContext, null, steps), StepSnapshots.Train(CpuBackend.Instance.DefaultContext, null, steps), steps, Tolerance, "device against the CPU");
}

[Category("Emulator")]
public sealed class EmulatedTrainingParityTests : TrainingParityTests
{
    private protected override string? UnavailableReason => CudaDevices.EmulatorUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Emulated(1, precision, index);
}

[Category("Gpu")]
public sealed class GpuTrainingParityTests : TrainingParityTests
{
    private protected override string? UnavailableReason => CudaDevices.GpuUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Gpu(precision, index);
}
