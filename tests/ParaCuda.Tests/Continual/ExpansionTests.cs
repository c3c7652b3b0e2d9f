using ParaCuda.Continual;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Continual;

public class ExpansionTests
{
    private static readonly ModelConfig s_model = SmallModels.Fmnist(2);

    private static readonly Transform s_eval = Transform.Reference(1, 28, train: false);
    private static readonly TrainOptions s_options = new() { Epochs = 1, BatchSize = 50, LearningRate = 3e-3f, Workers = 1, Augment = false };

    private string _dir = "";

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"paracuda-expand-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static TrainData Data()
    {
        var (rest, test) = Synthetic.Create(600, 10, 1, 28, seed: 9).Split(0.25, 9);
        var (train, validation) = rest.Split(0.1, 9);
        return new TrainData(train, validation, test, s_eval, s_eval);
    }

    private static Dictionary<string, float[]> Weights(Module model, string prefix) =>
        model.NamedParameters().Where(p => p.Name.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(p => p.Name, p => p.Parameter.ToArray<float>());

    private static float[] Logits(VisionModel model, int prefix)
    {
        using var inference = model.InferenceMode();
        using var images = Tensor.FromArray(Enumerable.Range(0, 4 * 784).Select(i => MathF.Sin(i * 0.37f)).ToArray(), new Shape(4, 1, 28, 28));
        using var logits = model.Forward(images, prefix);
        return logits.ToArray<float>();
    }

    [Test]
    public void Added_branches_leave_the_old_prefixes_unchanged()
    {
        using var source = new ParaFormer(s_model, ModuleInit.Create(3));
        using var grown = Expansion.AddBranches(source, 2, seed: 4);
        Assert.Multiple(() =>
        {
            Assert.That(grown.Branches, Has.Count.EqualTo(4));
            Assert.That(Logits(grown, 1), Is.EqualTo(Logits(source, 1)));
            Assert.That(Logits(grown, 2), Is.EqualTo(Logits(source, 2)));
            Assert.That(Weights(grown, "branches.2.")["branches.2.blocks.0.mlp.fc1.weight"], Is.Not.EqualTo(Weights(grown, "branches.0.")["branches.0.blocks.0.mlp.fc1.weight"]), "new branches start from fresh weights");
        });
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Training_new_branches_keeps_frozen_weights_bit_exact(bool freeze)
    {
        using var source = new ParaFormer(s_model, ModuleInit.Create(3));
        using var grown = Expansion.AddBranches(source, 1, seed: 4);
        var before = Weights(grown, "");
        var options = Expansion.ForNewBranches(s_options, existingBranches: 2, freezeExisting: freeze);
        using (var trainer = new Trainer(grown, options, Data(), Path.Combine(_dir, "run")))
        {
            trainer.Run();
        }

        var after = Weights(grown, "");
        bool Same(string prefix) => before.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).All(e => e.Value.SequenceEqual(after[e.Key]));
        Assert.Multiple(() =>
        {
            Assert.That(Same("branches.0."), Is.EqualTo(freeze), "old branch 1");
            Assert.That(Same("branches.1."), Is.EqualTo(freeze), "old branch 2");
            Assert.That(Same("embed."), Is.EqualTo(freeze), "shared embedding");
            Assert.That(Same("branches.2."), Is.False, "the new branch trains");
            Assert.That(Same("head."), Is.False, "the head trains");
        });
    }

    [Test]
    public void Progressive_training_of_new_branches_steps_only_the_prefixes_that_include_them()
    {
        using var grown = Expansion.AddBranches(new ParaFormer(s_model, ModuleInit.Create(3)), 2, seed: 4);
        var data = Data();
        using var trainer = new Trainer(grown, Expansion.ForNewBranches(s_options, 2, freezeExisting: false), data, Path.Combine(_dir, "run"));
        var result = trainer.Run();
        var batches = (data.Train.Count + 49) / 50;
        Assert.That(result.Steps, Is.EqualTo(3 * batches), "k = 3, 4 progressive steps + 1 full step per batch");
    }

    [Test]
    public void New_data_holds_the_new_classes_and_the_asked_replay()
    {
        var train = Data().Train;
        var mixed = Expansion.NewData(train, label => label >= 5, replay: 17, seed: 1);
        var labels = mixed.Labels.ToArray();
        var newCount = train.Labels.ToArray().Count(l => l >= 5);
        Assert.Multiple(() =>
        {
            Assert.That(labels, Has.Length.EqualTo(newCount + 17));
            Assert.That(labels.Count(l => l < 5), Is.EqualTo(17));
            Assert.That(() => Expansion.NewData(train, l => l >= 5, -1, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void Split_classes_protocol_reports_every_method_with_forgetting_against_phase_one()
    {
        var protocol = new SplitClassesProtocol { Model = s_model, Options = s_options, AddBranches = 1, FreezeExisting = true, Replay = 20 };
        var report = protocol.Run(Data(), _dir, ModuleInit.Create(5));
        Assert.Multiple(() =>
        {
            Assert.That(report.Rows, Has.Count.EqualTo(4));
            Assert.That(report.OldClasses, Is.EqualTo(new[] { 0, 1, 2, 3, 4 }));
            Assert.That(report.Rows[0].NewAccuracy, Is.Zero, "phase 1 never saw the new classes");
            Assert.That(report.Rows[1].Forgetting, Is.EqualTo(report.Rows[0].OldAccuracy - report.Rows[1].OldAccuracy).Within(1e-12));
            Assert.That(report.Rows[1].Parameters, Is.GreaterThan(report.Rows[0].Parameters));
            Assert.That(File.Exists(Path.Combine(_dir, ContinualReport.FileName)));
            Assert.That(ContinualReport.FromJson(File.ReadAllText(Path.Combine(_dir, ContinualReport.FileName))).Rows, Has.Count.EqualTo(4));
            foreach (var run in new[] { "phase1", "expand", "finetune", "scratch" })
            {
                Assert.That(File.Exists(Path.Combine(_dir, run, Trainer.MetricsFile)), run);
            }
        });
    }

    [Test]
    public void Split_classes_protocol_scores_both_phase_two_methods_again_after_balancing_the_head()
    {
        var protocol = new SplitClassesProtocol { Model = s_model, Options = s_options, AddBranches = 1, FreezeExisting = true, Replay = 20, BalanceHeadEpochs = 3 };
        var report = protocol.Run(Data(), _dir, ModuleInit.Create(5));
        Assert.Multiple(() =>
        {
            Assert.That(report.Rows.Select(r => r.Method).ToArray(), Has.Length.EqualTo(6));
            Assert.That(report.Rows[2].Method, Is.EqualTo(report.Rows[1].Method + " + balanced head"));
            Assert.That(report.Rows[4].Method, Is.EqualTo(report.Rows[3].Method + " + balanced head"));
            Assert.That(report.Rows[2].Forgetting, Is.EqualTo(report.Rows[0].OldAccuracy - report.Rows[2].OldAccuracy).Within(1e-12));
            Assert.That(report.Rows[2].Parameters, Is.EqualTo(report.Rows[1].Parameters), "balancing re-fits, it adds nothing");
            Assert.That(report.BalanceHeadEpochs, Is.EqualTo(3));
        });
        var noReplay = new SplitClassesProtocol { Model = s_model, Options = s_options, AddBranches = 1, BalanceHeadEpochs = 3 };
        Assert.That(() => noReplay.Run(Data(), Path.Combine(_dir, "no-replay"), ModuleInit.Create(5)), Throws.ArgumentException.With.Message.Contains("replay"));
    }

    [Test]
    public void Class_balanced_draw_keeps_as_many_of_each_class_as_the_rarest_has()
    {
        var mixed = Expansion.NewData(Data().Train, label => label >= 5, replay: 23, seed: 1);
        var balanced = Expansion.ClassBalanced(mixed, seed: 2);
        var counts = balanced.Labels.ToArray().GroupBy(l => l).ToDictionary(g => g.Key, g => g.Count());
        var rarest = mixed.Labels.ToArray().GroupBy(l => l).Min(g => g.Count());
        Assert.Multiple(() =>
        {
            Assert.That(rarest, Is.LessThan(10), "the replayed classes are the rare ones");
            Assert.That(counts.Keys, Is.EquivalentTo(mixed.Labels.ToArray().Distinct()));
            Assert.That(counts.Values, Is.All.EqualTo(rarest));
        });
    }

    [Test]
    public void Balancing_the_head_moves_old_class_images_back_towards_old_classes_and_touches_only_the_head()
    {
        var data = Data();
        using var grown = Expansion.AddBranches(new ParaFormer(s_model, ModuleInit.Create(3)), 1, seed: 4);
        var phase2 = data with { Train = Expansion.NewData(data.Train, label => label >= 5, replay: 30, seed: 1) };
        using (var trainer = new Trainer(grown, Expansion.ForNewBranches(s_options with { Epochs = 2 }, 2, freezeExisting: true), phase2, Path.Combine(_dir, "run")))
        {
            trainer.Run();
        }

        var oldTest = data.Test.WhereLabel(label => label < 5);
        var before = Weights(grown, "");
        var massBefore = OldClassMass(grown, oldTest);
        Expansion.BalanceHead(grown, phase2.Train, s_eval, epochs: 60, seed: 5);
        var after = Weights(grown, "");
        var massAfter = OldClassMass(grown, oldTest);
        Assert.Multiple(() =>
        {
            Assert.That(massBefore, Is.LessThan(0.5), "trained on 30 old images against hundreds of new ones, the head favours new classes");
            Assert.That(massAfter, Is.GreaterThan(massBefore + 0.1));
            Assert.That(before.Where(e => !e.Key.StartsWith("head.", StringComparison.Ordinal)).All(e => e.Value.SequenceEqual(after[e.Key])), "branches and embedding stay fixed");
            Assert.That(before.Where(e => e.Key.StartsWith("head.", StringComparison.Ordinal)).Any(e => !e.Value.SequenceEqual(after[e.Key])), "the head re-fits");
        });
    }

    /// <summary>Mean softmax probability that the model gives to classes 0–4, over the images given.</summary>
    private static double OldClassMass(VisionModel model, ImageDataset images)
    {
        using var inference = model.InferenceMode();
        var input = new BatchInput(model, s_eval);
        using var loader = input.Loader(images, images.Count, shuffle: false, seed: 0);
        var mass = 0.0;
        foreach (var batch in loader.Epoch(0))
        {
            using var scope = TensorScope.Begin();
            var values = model.Forward(input.ToDevice(batch).Images).ToArray<float>();
            for (var i = 0; i < batch.Count; i++)
            {
                var row = values.AsSpan(i * 10, 10);
                var max = System.Numerics.Tensors.TensorPrimitives.Max(row);
                double total = 0, old = 0;
                for (var c = 0; c < 10; c++)
                {
                    var e = Math.Exp(row[c] - max);
                    total += e;
                    old += c < 5 ? e : 0;
                }

                mass += old / total;
            }
        }

        return mass / images.Count;
    }
}
