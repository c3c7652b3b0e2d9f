using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Training;

public class TrainerTests
{
    private const int Branches = 3;
    private string _dir = "";

    private static readonly ModelConfig s_model = SmallModels.Fmnist(Branches);

    private static readonly TrainOptions s_options = new() { Epochs = 2, BatchSize = 50, LearningRate = 3e-3f, Seed = 7, Workers = 1 };

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"paracuda-train-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static TrainData Data(int train = 400, int test = 200)
    {
        // One synthetic set split three ways: its class patterns come from the seed, so all parts share them.
        var (rest, testSet) = Synthetic.Create(train + test, 10, 1, 28, seed: 3).Split((double)test / (train + test), 3);
        var (t, v) = rest.Split(0.1, 3);
        return new TrainData(t, v, testSet, Transform.Reference(1, 28, train: true), Transform.Reference(1, 28, train: false));
    }

    private static VisionModel Model(ModelConfig? config = null) => ModelFactory.Create(config ?? s_model, ModuleInit.Create(11));

    private TrainResult Train(string name, TrainOptions options, ModelConfig? config = null, bool resume = false, TrainData? data = null)
    {
        using var model = Model(config);
        using var trainer = new Trainer(model, options, data ?? Data(), Path.Combine(_dir, name));
        return trainer.Run(resume);
    }

    private static Dictionary<string, float[]> Tensors(string path)
    {
        using var file = SafeTensors.Read(path);
        return file.Tensors.ToDictionary(t => t.Key, t => t.Value.ToArray<float>());
    }

    private static IReadOnlyList<long> ParameterSteps(string path, VisionModel model)
    {
        using var optimizer = new Optim.Adam(model.NamedParameters(), new Backends.AdamParameters(1e-3f));
        return Checkpoint.Restore(path, model, optimizer).ParameterSteps;
    }

    [Test]
    public void Lpa_takes_B_steps_per_batch_then_one_per_batch_in_the_full_pass()
    {
        var data = Data();
        var batches = (data.Train.Count + 49) / 50;
        var result = Train("lpa", s_options with { Epochs = 1 }, data: data);

        Assert.That(result.Steps, Is.EqualTo((Branches + 1) * batches), "B progressive steps + 1 full step per batch");
        using var model = Model();
        var names = model.NamedParameters().Select(p => p.Name).ToList();
        var steps = ParameterSteps(result.LastCheckpoint, model);
        Assert.Multiple(() =>
        {
            // Branch b (1-based) has a gradient at the progressive steps k ≥ b and at the full step.
            Assert.That(steps[names.IndexOf("embed.proj.weight")], Is.EqualTo((Branches + 1) * batches));
            Assert.That(steps[names.IndexOf("head.fc.weight")], Is.EqualTo((Branches + 1) * batches));
            for (var b = 1; b <= Branches; b++)
            {
                Assert.That(steps[names.IndexOf($"branches.{b - 1}.blocks.0.attn.qkv.weight")], Is.EqualTo(((Branches - b + 1) * batches) + batches), $"branch {b}");
            }
        });
    }

    [Test]
    public void Joint_takes_one_step_per_batch()
    {
        var data = Data();
        var result = Train("joint", s_options with { Epochs = 1, Schedule = "joint" }, data: data);
        Assert.That(result.Steps, Is.EqualTo((data.Train.Count + 49) / 50));
    }

    [Test]
    public void Prefix_takes_one_step_per_batch_that_updates_every_branch()
    {
        var data = Data();
        var batches = (data.Train.Count + 49) / 50;
        var result = Train("prefix", s_options with { Epochs = 1, Schedule = "prefix" }, data: data);

        Assert.That(result.Steps, Is.EqualTo(batches));
        using var model = Model();
        Assert.That(ParameterSteps(result.LastCheckpoint, model), Is.All.EqualTo(batches));
    }

    [Test]
    public void Lpa_on_a_synthetic_task_ends_with_test_loss_non_increasing_in_k()
    {
        var result = Train("curve", s_options with { Epochs = 4 }, data: Data(train: 1500));
        var losses = result.Epochs[^1].Prefixes.Select(p => p.TestLoss).ToList();

        Assert.That(result.Epochs[^1].TestAccuracy, Is.GreaterThan(0.5), "the task is learnable");
        for (var k = 1; k < losses.Count; k++)
        {
            Assert.That(losses[k], Is.LessThanOrEqualTo(losses[k - 1]), $"test loss by k: {string.Join(", ", losses)}");
        }
    }

    [Test]
    public void Resuming_a_stopped_run_reproduces_the_uninterrupted_run_exactly()
    {
        var options = s_options with { Epochs = 2 };
        var full = Train("full", options);

        // Stop in the middle of the first epoch's progressive pass, then again in the second epoch.
        var first = Train("split", options with { MaxSteps = 13 });
        var second = Train("split", options with { MaxSteps = 45 }, resume: true);
        var rest = Train("split", options, resume: true);

        Assert.That((first.Completed, second.Completed, rest.Completed), Is.EqualTo((false, false, true)));
        Assert.That(rest.Steps, Is.EqualTo(full.Steps));
        var expected = Tensors(full.LastCheckpoint);
        var actual = Tensors(rest.LastCheckpoint);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, values) in expected)
        {
            Assert.That(actual[name], Is.EqualTo(values), $"{name} differs bitwise (weights or optimizer moments)");
        }

        var expectedLines = File.ReadAllLines(Path.Combine(_dir, "full", Trainer.MetricsFile)).Length;
        Assert.That(File.ReadAllLines(Path.Combine(_dir, "split", Trainer.MetricsFile)), Has.Length.EqualTo(expectedLines));
        Assert.That(EpochMetrics.ReadFile(Path.Combine(_dir, "split", Trainer.MetricsFile))[^1].TestAccuracy, Is.EqualTo(full.Epochs[^1].TestAccuracy));
    }

    [Test]
    public void A_fresh_run_refuses_a_folder_that_holds_a_run()
    {
        Train("once", s_options with { Epochs = 1, MaxSteps = 2 });
        var error = Assert.Throws<IOException>(() => Train("once", s_options with { Epochs = 1 }));
        Assert.That(error!.Message, Does.Contain("--resume"));
    }

    [Test]
    public void Resume_rejects_changed_training_options_and_a_missing_checkpoint()
    {
        Train("run", s_options with { MaxSteps = 2 });
        var changed = Assert.Throws<ArgumentException>(() => Train("run", s_options with { LearningRate = 1e-2f }, resume: true));
        Assert.That(changed!.Message, Does.Contain("lr 0.003").And.Contain("lr 0.01"));
        Assert.Throws<FileNotFoundException>(() => Train("nothing", s_options, resume: true));
    }

    [Test]
    public void Resume_rejects_a_checkpoint_of_another_architecture()
    {
        Train("run", s_options with { MaxSteps = 2 });
        var error = Assert.Throws<CheckpointFormatException>(() => Train("run", s_options, s_model with { Dim = 32, MlpDim = 64 }, resume: true));
        Assert.That(error!.Message, Does.Contain("dim: 16 → 32"));
    }

    [Test]
    public void A_nan_loss_stops_training_naming_the_step_and_the_last_checkpoint()
    {
        using var model = Model();
        var weight = model.Head.Fc.Weight;
        weight.CopyFrom<float>(Enumerable.Repeat(float.NaN, (int)weight.NumElements).ToArray());
        using var trainer = new Trainer(model, s_options, Data(), Path.Combine(_dir, "nan"));

        var error = Assert.Throws<TrainingDivergedException>(() => trainer.Run());
        Assert.That(error!.Message, Does.Contain("step 1").And.Contain("last good checkpoint: none yet"));
    }

    [Test]
    public void The_best_checkpoint_loads_into_a_model_with_identical_prefix_logits()
    {
        var result = Train("best", s_options with { Epochs = 1 });
        using var saved = Checkpoint.LoadModel(result.BestCheckpoint);
        using var again = Checkpoint.LoadModel(result.BestCheckpoint);
        using var scope = TensorScope.Begin();
        var images = Tensor.FromArray(Enumerable.Range(0, 2 * 28 * 28).Select(i => (float)Math.Sin(i)).ToArray(), new Shape(2, 1, 28, 28));
        saved.Eval();
        again.Eval();
        for (var k = 1; k <= Branches; k++)
        {
            Assert.That(again.Forward(images, k).ToArray<float>(), Is.EqualTo(saved.Forward(images, k).ToArray<float>()));
        }

        Assert.That(Checkpoint.ReadConfig(result.BestCheckpoint), Is.EqualTo(s_model));
    }

    [Test]
    public void A_truncated_checkpoint_is_rejected_with_its_path()
    {
        var result = Train("cut", s_options with { Epochs = 1, MaxSteps = 1 });
        var bytes = File.ReadAllBytes(result.LastCheckpoint);
        var cut = Path.Combine(_dir, "cut.safetensors");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);

        var error = Assert.Throws<CheckpointFormatException>(() => Checkpoint.LoadModel(cut));
        Assert.That(error!.Message, Does.Contain(cut));
    }
}
