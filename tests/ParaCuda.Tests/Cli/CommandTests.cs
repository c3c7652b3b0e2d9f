using ParaCuda.Compression;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tests.Data;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Cli;

/// <summary>
/// The commands end-to-end, in process: a user's mistake gives exit code 2 and one "error:" line naming the
/// problem (never a stack trace), and the happy paths write what they promise.
/// </summary>
[NonParallelizable]
public class CommandTests
{
    private static readonly ModelConfig s_model = SmallModels.Fmnist(3);

    private string _dir = "";
    private string _checkpoint = "";

    [OneTimeSetUp]
    public void TrainSmallModel()
    {
        _dir = Path.Combine(Path.GetTempPath(), $"paracuda-cli-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
        // The CLI's synthetic dataset, so compress and eval see the same images the model was trained on.
        var (trainSet, test) = Synthetic.Create(7000, 10, 1, 28, 1).Split(1.0 / 7, 1);
        var (train, validation) = trainSet.Split(0.1, 1);
        var eval = Transform.Reference(1, 28, train: false);
        using var model = ModelFactory.Create(s_model, ModuleInit.Create(1));
        using var trainer = new Trainer(model, new TrainOptions { Epochs = 1, BatchSize = 100, LearningRate = 3e-3f, Workers = 1 }, new TrainData(train, validation, test, eval, eval), Path.Combine(_dir, "run"));
        _checkpoint = trainer.Run().BestCheckpoint;
    }

    [OneTimeTearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Error) Run(params string[] args) => CommandRunner.Run(args);

    private static void AssertUserError((int Code, string Error) result, string expected) => CommandRunner.AssertUserError(result, expected);

    private string Path_(string name) => Path.Combine(_dir, name);

    [Test]
    public void Unknown_options_and_bad_values_are_one_line_errors()
    {
        AssertUserError(Run("train", "--no-such-option"), "--no-such-option");
        AssertUserError(Run("train", "--schedule", "fastest"), "fastest");
        AssertUserError(Run("train", "--dataset", "synthetic", "--patch", "5"), "not divisible");
        AssertUserError(Run("train", "--device", "tpu"), "--device");
    }

    [Test]
    public void Missing_dataset_says_how_to_get_it()
    {
        AssertUserError(Run("train", "--data", Path_("nowhere"), "--out", Path_("t1")), "dataset-fashion-mnist");
    }

    [Test]
    public void Train_runs_the_default_preset_on_cifar_binary_files()
    {
        // The tiny preset is sized for 28-pixel images; 32-pixel CIFAR must work without extra options.
        var data = Directory.CreateDirectory(Path_("cifar")).FullName;
        for (var f = 0; f < 5; f++)
        {
            DataFiles.CifarFile(Path.Combine(data, $"data_batch_{f + 1}.bin"), 40 * f, 40, r => [(byte)(r % 10)]);
        }

        DataFiles.CifarFile(Path.Combine(data, "test_batch.bin"), 200, 20, r => [(byte)(r % 10)]);
        var output = Path_("cifar-run");
        Assert.That(Run("train", "--dataset", "cifar10", "--data", data, "--epochs", "1", "--batch", "50", "--out", output).Code, Is.Zero);
        var config = ModelConfig.FromJson(File.ReadAllText(Path.Combine(output, Trainer.ConfigFile)));
        Assert.Multiple(() =>
        {
            Assert.That((config.ImageSize, config.Channels, config.Classes, config.Patch), Is.EqualTo((32, 3, 10, 8)));
            Assert.That(EpochMetrics.ReadFile(Path.Combine(output, Trainer.MetricsFile)), Has.Count.EqualTo(1));
        });
    }

    [Test]
    public void Eval_names_a_missing_or_corrupt_checkpoint()
    {
        AssertUserError(Run("eval", "--checkpoint", Path_("missing.safetensors"), "--dataset", "synthetic"), "missing.safetensors");
        var corrupt = Path_("corrupt.safetensors");
        var bytes = File.ReadAllBytes(_checkpoint);
        File.WriteAllBytes(corrupt, bytes[..(bytes.Length / 2)]);
        AssertUserError(Run("eval", "--checkpoint", corrupt, "--dataset", "synthetic"), "corrupt.safetensors");
    }

    [Test]
    public void Eval_prints_accuracy_for_every_k()
    {
        Assert.That(Run("eval", "--checkpoint", _checkpoint, "--dataset", "synthetic", "--json").Code, Is.Zero);
    }

    [Test]
    public void Compress_rejects_bad_requests_before_doing_any_work()
    {
        var output = Path_("c.safetensors");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", output, "--dataset", "synthetic"), "exactly one of --keep");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", output, "--dataset", "synthetic", "--keep", "4"), "1..3");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", _checkpoint, "--dataset", "synthetic", "--keep", "1"), "already exists");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", Path_("c.bin"), "--dataset", "synthetic", "--keep", "1"), ".safetensors");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", output, "--dataset", "synthetic", "--target-accuracy-drop", "-1"), "--target-accuracy-drop cannot be negative");
        AssertUserError(Run("compress", "--checkpoint", _checkpoint, "--out", output, "--dataset", "synthetic", "--target-accuracy-drop", "250"), "percentage points");

        var vit = Path_("vit.safetensors");
        using (var model = ModelFactory.Create(ModelFactory.MatchingVit(s_model), ModuleInit.Create(1)))
        {
            Checkpoint.SaveModel(vit, model);
        }

        AssertUserError(Run("compress", "--checkpoint", vit, "--out", output, "--dataset", "synthetic", "--keep", "1"), "only a ParaFormer");
        Assert.That(File.Exists(output), Is.False);
    }

    [Test]
    public void Compress_writes_a_smaller_checkpoint_and_its_trade_off()
    {
        var output = Path_("keep2.safetensors");
        Assert.That(Run("compress", "--checkpoint", _checkpoint, "--out", output, "--dataset", "synthetic", "--keep", "2", "--strategy", "first-k", "--batch", "8").Code, Is.Zero);
        var report = CompressionReport.FromJson(File.ReadAllText(Path.ChangeExtension(output, ".json")));
        Assert.Multiple(() =>
        {
            Assert.That(Checkpoint.ReadConfig(output).Branches, Is.EqualTo(2));
            Assert.That(new FileInfo(output).Length, Is.LessThan(new FileInfo(_checkpoint).Length));
            Assert.That(report.Rows.Select(r => r.K), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(report.Rows[0].CompressionRatio, Is.GreaterThan(report.Rows[1].CompressionRatio));
            Assert.That(report.KeptBranches, Is.EqualTo("1,2"));
            Assert.That(File.Exists(Path.ChangeExtension(output, ".png")));
        });
    }

    [Test]
    public void Expand_rejects_contradictory_requests()
    {
        AssertUserError(Run("expand", "--add-branches", "1", "--dataset", "synthetic"), "--checkpoint");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--dataset", "synthetic"), "--add-branches");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "1", "--dim", "32", "--dataset", "synthetic"), "--dim");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "1", "--classes", "5-12", "--dataset", "synthetic"), "0..9");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "1", "--classes", "five", "--dataset", "synthetic"), "'five'");
        AssertUserError(Run("expand", "--protocol", "split-classes", "--checkpoint", _checkpoint, "--dataset", "synthetic"), "drop --checkpoint");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "1", "--classes", "5-9", "--balance-head", "5", "--dataset", "synthetic"), "--replay");
        AssertUserError(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "1", "--replay", "5", "--dataset", "synthetic"), "--classes");
        AssertUserError(Run("expand", "--protocol", "split-classes", "--balance-head", "-1", "--replay", "10", "--dataset", "synthetic"), "--balance-head cannot be negative");
    }

    [Test]
    public void Expand_appends_branches_and_trains_them()
    {
        var output = Path_("grown");
        Assert.That(Run("expand", "--checkpoint", _checkpoint, "--add-branches", "2", "--freeze-existing", "--classes", "5-9", "--replay", "50", "--balance-head", "2", "--dataset", "synthetic", "--epochs", "1", "--out", output).Code, Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(Checkpoint.ReadConfig(Path.Combine(output, Trainer.LastFile)).Branches, Is.EqualTo(5));
            Assert.That(Checkpoint.ReadConfig(Path.Combine(output, "balanced.safetensors")).Branches, Is.EqualTo(5));
        });
    }

    [Test]
    public void Report_names_inputs_it_cannot_use()
    {
        AssertUserError(Run("report", "--runs", Path_("absent"), "--out", Path_("r1")), "absent");
        var empty = Directory.CreateDirectory(Path_("empty")).FullName;
        AssertUserError(Run("report", "--runs", empty, "--out", Path_("r2")), "nothing to report");
        var broken = Directory.CreateDirectory(Path_("broken")).FullName;
        File.WriteAllText(Path.Combine(broken, Trainer.MetricsFile), "{not json\n");
        AssertUserError(Run("report", "--runs", broken, "--out", Path_("r3")), "metrics.jsonl:1");
    }

    [Test]
    public void Report_writes_markdown_and_figures_for_runs()
    {
        var output = Path_("report");
        Assert.That(Run("report", "--runs", Path_("run"), "--out", output).Code, Is.Zero);
        var markdown = File.ReadAllText(Path.Combine(output, "REPORT.md"));
        Assert.Multiple(() =>
        {
            Assert.That(markdown, Does.Contain("| run | ParaFormer 3×1"));
            Assert.That(File.Exists(Path.Combine(output, "accuracy_vs_epoch.png")));
            Assert.That(File.Exists(Path.Combine(output, "accuracy_vs_k.png")));
        });
    }

    [Test]
    public void Report_describes_a_run_kept_without_its_checkpoints()
    {
        // Published results keep metrics.jsonl and config.json, not the weights.
        var stripped = Directory.CreateDirectory(Path_("stripped")).FullName;
        foreach (var file in new[] { Trainer.MetricsFile, Trainer.ConfigFile })
        {
            File.Copy(Path.Combine(Path_("run"), file), Path.Combine(stripped, file));
        }

        using var model = ModelFactory.Create(s_model, ModuleInit.Create(1));
        var output = Path_("report-stripped");
        Assert.That(Run("report", "--runs", stripped, "--out", output).Code, Is.Zero);
        Assert.That(File.ReadAllText(Path.Combine(output, "REPORT.md")), Does.Contain($"| stripped | ParaFormer 3×1, d16, p7 | lpa | {model.ParameterCount():N0} |"));
    }
}
