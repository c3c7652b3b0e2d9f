using ParaCuda.Compression;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Compression;

public class CompressionTests
{
    private static readonly ModelConfig s_model = SmallModels.Fmnist(4);

    private static readonly Transform s_eval = Transform.Reference(1, 28, train: false);

    private string _dir = "";

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"paracuda-compress-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static (ImageDataset Train, ImageDataset Validation) Data()
    {
        var data = Synthetic.Create(500, 10, 1, 28, seed: 5);
        return data.Split(0.2, 5);
    }

    /// <summary>A ParaFormer trained for one lpa epoch, so its branches differ in what they contribute.</summary>
    private ParaFormer Trained()
    {
        var (train, validation) = Data();
        var model = (ParaFormer)ModelFactory.Create(s_model, ModuleInit.Create(21));
        var data = new TrainData(train, validation, validation, s_eval, s_eval);
        using var trainer = new Trainer(model, new TrainOptions { Epochs = 1, BatchSize = 50, LearningRate = 3e-3f, Workers = 1 }, data, Path.Combine(_dir, "run"));
        trainer.Run();
        return model;
    }

    private static float[] Logits(VisionModel model, Tensor images, int? prefix = null)
    {
        using var inference = model.InferenceMode();
        using var logits = prefix is { } k ? model.Forward(images, k) : model.Forward(images);
        return logits.ToArray<float>();
    }

    private static Tensor Images(int count)
    {
        var (_, validation) = Data();
        using var loader = new DataLoader(validation, count, s_eval, shuffle: false, seed: 0);
        foreach (var batch in loader.Epoch(0))
        {
            return Tensor.FromArray(batch.Images.Span, new Shape(batch.Count, 1, 28, 28));
        }

        throw new InvalidOperationException("no validation images");
    }

    [Test]
    public void First_k_compressed_and_reloaded_gives_the_prefix_logits_exactly()
    {
        using var model = Trained();
        using var images = Images(16);
        for (var k = 1; k <= s_model.Branches; k++)
        {
            var path = Path.Combine(_dir, $"first{k}.safetensors");
            using (var kept = Compressor.Keep(model, Enumerable.Range(0, k).ToArray()))
            {
                Checkpoint.SaveModel(path, kept);
            }

            using var loaded = Checkpoint.LoadModel(path);
            Assert.Multiple(() =>
            {
                Assert.That(loaded.Config.Branches, Is.EqualTo(k));
                Assert.That(Logits(loaded, images), Is.EqualTo(Logits(model, images, k)), $"k={k}: bit-identical logits");
                if (k < s_model.Branches)
                {
                    Assert.That(loaded.ParameterCount(), Is.LessThan(model.ParameterCount()));
                }
            });
        }

        var full = Path.Combine(_dir, "full.safetensors");
        Checkpoint.SaveModel(full, model);
        Assert.That(new FileInfo(Path.Combine(_dir, "first1.safetensors")).Length, Is.LessThan(new FileInfo(full).Length / 2));
    }

    [Test]
    public void Keeping_chosen_branches_runs_them_in_the_given_order()
    {
        using var model = Trained();
        using var kept = Compressor.Keep(model, [2, 0]);
        var source = model.StateDict();
        var copy = kept.StateDict();
        Assert.Multiple(() =>
        {
            Assert.That(copy["branches.0.blocks.0.mlp.fc1.weight"].ToArray<float>(), Is.EqualTo(source["branches.2.blocks.0.mlp.fc1.weight"].ToArray<float>()));
            Assert.That(copy["branches.1.blocks.0.mlp.fc1.weight"].ToArray<float>(), Is.EqualTo(source["branches.0.blocks.0.mlp.fc1.weight"].ToArray<float>()));
            Assert.That(copy["head.fc.weight"].ToArray<float>(), Is.EqualTo(source["head.fc.weight"].ToArray<float>()));
            Assert.That(copy.Keys.Count(k => k.StartsWith("branches.", StringComparison.Ordinal)), Is.EqualTo(source.Keys.Count(k => k.StartsWith("branches.", StringComparison.Ordinal)) / 2));
        });
    }

    [Test]
    public void Keep_rejects_repeated_or_missing_branches()
    {
        using var model = (ParaFormer)ModelFactory.Create(s_model, ModuleInit.Create(1));
        Assert.Multiple(() =>
        {
            Assert.That(() => Compressor.Keep(model, [1, 1]), Throws.ArgumentException.With.Message.Contains("distinct"));
            Assert.That(() => Compressor.Keep(model, [4]), Throws.ArgumentException.With.Message.Contains("1..4"));
            Assert.That(() => Compressor.Keep(model, []), Throws.ArgumentException);
        });
    }

    [Test]
    public void Scores_from_pooled_features_match_running_the_kept_model()
    {
        using var model = Trained();
        var (_, validation) = Data();
        var features = BranchFeatures.Extract(model, validation, s_eval, 64);
        foreach (int[] subset in new[] { new[] { 0 }, [1, 3], [0, 1, 2, 3] })
        {
            var fromFeatures = BranchSelection.Score(model.Head, features, subset);
            using var kept = Compressor.Keep(model, subset);
            var direct = Evaluation.Run(kept, validation, s_eval, 64)[^1];
            Assert.Multiple(() =>
            {
                Assert.That(fromFeatures.Accuracy, Is.EqualTo(direct.Accuracy), $"subset {fromFeatures.Describe()}");
                Assert.That(fromFeatures.Loss, Is.EqualTo(direct.Loss).Within(1e-5), $"subset {fromFeatures.Describe()}");
            });
        }
    }

    [Test]
    public void Greedy_is_never_worse_than_first_k_on_the_validation_split()
    {
        using var model = Trained();
        var (_, validation) = Data();
        var features = BranchFeatures.Extract(model, validation, s_eval, 64);
        var firstK = BranchSelection.FirstK(model.Head, features);
        var greedy = BranchSelection.Greedy(model.Head, features);
        Assert.That(greedy, Has.Count.EqualTo(s_model.Branches));
        for (var k = 0; k < greedy.Count; k++)
        {
            Assert.Multiple(() =>
            {
                Assert.That(greedy[k].Branches, Has.Count.EqualTo(k + 1));
                Assert.That(greedy[k].Branches.Distinct().Count(), Is.EqualTo(k + 1));
                Assert.That(!BranchSelection.Better(firstK[k], greedy[k]), $"k={k + 1}: greedy {greedy[k]} vs first-k {firstK[k]}");
            });
        }
    }

    [Test]
    public void Refitting_the_head_lowers_its_training_loss_and_leaves_the_branches_alone()
    {
        using var model = Trained();
        var (train, _) = Data();
        var features = BranchFeatures.Extract(model, train, s_eval, 64);
        using var kept = Compressor.Keep(model, [0]);
        var branchBefore = kept.Branches[0].Parameters().Select(p => p.ToArray<float>()).ToList();
        var before = BranchSelection.Score(kept.Head, features, [0]);
        Compressor.RefitHead(kept, features, [0], epochs: 5, learningRate: 3e-3f, batchSize: 50, seed: 1);
        var after = BranchSelection.Score(kept.Head, features, [0]);
        Assert.Multiple(() =>
        {
            Assert.That(after.Loss, Is.LessThan(before.Loss));
            Assert.That(kept.Branches[0].Parameters().Select(p => p.ToArray<float>()), Is.EqualTo(branchBefore));
        });
    }
}
