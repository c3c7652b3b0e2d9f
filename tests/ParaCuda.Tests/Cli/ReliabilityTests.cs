using ParaCuda.Backends;
using ParaCuda.Cli;
using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Optim;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Cli;

/// <summary>
/// Runs that were cut short, tampered with or asked for the impossible, through the CLI in process: every one
/// can be resumed or restarted, and every mistake is one "error:" line that names it, caught before any file
/// is written or any memory is taken.
/// </summary>
[NonParallelizable]
public class ReliabilityTests
{
    /// <summary>A model small enough that an epoch of the synthetic set takes a few seconds.</summary>
    private static readonly string[] s_small = ["--dataset", "synthetic", "--branches", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32", "--batch", "200", "--workers", "1"];

    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("paracuda-reliability-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Error) Run(params string[] args) => CommandRunner.Run(args);

    private static void AssertUserError((int Code, string Error) result, string expected) => CommandRunner.AssertUserError(result, expected);

    private string Dir(string name) => Path.Combine(_dir, name);

    /// <summary>Starts a small synthetic run in <paramref name="name"/> and stops it after <paramref name="steps"/> steps.</summary>
    private string Started(string name, int steps, params string[] more)
    {
        var output = Dir(name);
        var result = Run(["train", .. Small(more), "--max-steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", output]);
        Assert.That(result.Code, Is.Zero, result.Error);
        return output;
    }

    /// <summary>The small model's options, with those in <paramref name="changes"/> (option, value pairs) replaced or added.</summary>
    private static string[] Small(params string[] changes)
    {
        var options = new List<string>(s_small);
        for (var i = 0; i < changes.Length; i += 2)
        {
            var at = options.IndexOf(changes[i]);
            if (at >= 0)
            {
                options[at + 1] = changes[i + 1];
            }
            else
            {
                options.AddRange([changes[i], changes[i + 1]]);
            }
        }

        return [.. options];
    }

    private static IReadOnlyList<EpochMetrics> Metrics(string run) => EpochMetrics.ReadFile(Path.Combine(run, Trainer.MetricsFile));

    [Test]
    public void Eval_refuses_a_checkpoint_whose_config_promises_more_than_its_tensors_hold()
    {
        using var model = ModelFactory.Create(SmallModels.Fmnist(2), ModuleInit.Create(1));
        var path = Dir("lying.safetensors");
        // Written with a valid checksum, as a buggy or hostile writer would: only the tensor index contradicts it.
        SafeTensors.Write(path, model.StateDict(), new Dictionary<string, string>
        {
            [Checkpoint.KindKey] = "model",
            [Checkpoint.ConfigKey] = (SmallModels.Fmnist(2) with { Branches = 100_000_000 }).ToJson(),
        });

        var before = GC.GetTotalAllocatedBytes(precise: true);
        AssertUserError(Run("eval", "--checkpoint", path, "--dataset", "synthetic"), "describes 217,600,001,290 parameters but its tensors hold 5,642");
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(256L << 20), "refused before the model was built");
    }

    [Test]
    public void Expand_refuses_an_absurd_number_of_branches_naming_the_memory_it_needs()
    {
        var run = Started("small", 2);
        var output = Dir("grown");
        var result = Run("expand", "--checkpoint", Path.Combine(run, Trainer.LastFile), "--add-branches", "100000000", "--dataset", "synthetic", "--out", output);
        AssertUserError(result, "217,600,005,642 parameters (2 + 100,000,000 branches)");
        Assert.Multiple(() =>
        {
            Assert.That(result.Error, Does.Match("needs at least [0-9,]+ GiB but cpu has [0-9.,]+ GiB available"));
            Assert.That(Directory.Exists(output), Is.False, "nothing written");
        });
    }

    [Test]
    public void Train_refuses_a_batch_that_cannot_fit_before_writing_anything()
    {
        var output = Dir("huge-batch");
        var result = Run(["train", .. Small("--batch", "2000000000"), "--out", output]);
        AssertUserError(result, "on batches of 2000000000 (lower --batch");
        Assert.That(Directory.Exists(output), Is.False);
    }

    [TestCase("Batch", "batch 100000 is outside 0..27")]
    [TestCase("Pass", "pass 7 is outside 0..2")]
    [TestCase("Epoch", "epoch -1 is outside 0..3")]
    [TestCase("Correct", "the sums of the epoch in progress are impossible")]
    public void Resume_refuses_an_impossible_training_state(string field, string expected)
    {
        var run = Started("tampered", 4);
        var last = Path.Combine(run, Trainer.LastFile);
        using (var model = Checkpoint.LoadModel(last))
        using (var optimizer = new Adam(model.NamedParameters(), new AdamParameters(1e-3f)))
        {
            var state = Checkpoint.Restore(last, model, optimizer);
            // Saved through the API, so the checksum is valid: only the state itself is wrong.
            var tampered = field switch
            {
                "Batch" => state with { Batch = 100_000 },
                "Pass" => state with { Pass = 7 },
                "Epoch" => state with { Epoch = -1 },
                _ => state with { Partial = state.Partial with { Correct = state.Partial.Seen + 1 } },
            };
            Checkpoint.SaveTraining(last, model, optimizer, tampered);
        }

        AssertUserError(Run("train", "--resume", "--out", run), "its training state cannot be resumed: " + expected);
    }

    [Test]
    public void A_run_that_stopped_before_its_first_checkpoint_can_be_started_over()
    {
        var run = Started("early", 2);
        // What a crash or a full disk between the first metrics line and the first checkpoint leaves.
        File.Delete(Path.Combine(run, Trainer.LastFile));
        Assert.That(Metrics(run), Is.Not.Empty);

        AssertUserError(Run("train", "--resume", "--out", run), "run the same command without --resume to start it over");
        var again = Run(["train", .. s_small, "--max-steps", "2", "--out", run]);
        Assert.That(again.Code, Is.Zero, again.Error);
        Assert.Multiple(() =>
        {
            Assert.That(Checkpoint.ReadState(Path.Combine(run, Trainer.LastFile)).Steps, Is.EqualTo(2), "started from step 0");
            Assert.That(Metrics(run).Select(m => (m.Epoch, m.Partial)), Is.EqualTo(new[] { (1, true) }));
        });
    }

    [Test]
    public void A_torn_last_metrics_line_does_not_stop_a_resume()
    {
        var run = Started("torn", 6);
        File.AppendAllText(Path.Combine(run, Trainer.MetricsFile), "{\"epoch\":1,\"schedule\":\"lp");
        var result = Run("train", "--resume", "--out", run, "--max-steps", "12");
        Assert.That(result.Code, Is.Zero, result.Error);
        var metrics = Metrics(run);
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllLines(Path.Combine(run, Trainer.MetricsFile)), Has.All.EndsWith("}"), "the torn line is gone");
            Assert.That(metrics.Select(m => (m.Epoch, m.Partial, m.Steps)), Is.EqualTo(new[] { (1, true, 12L) }));
        });
    }

    [Test]
    public void Resume_continues_on_the_runs_own_model_and_dataset_and_names_conflicting_options()
    {
        var run = Started("own", 2, "--dim", "8", "--mlp-dim", "24", "--lr", "0.002");
        // No model, training or dataset options: all of them come from the checkpoint.
        var resumed = Run("train", "--resume", "--out", run, "--max-steps", "4");
        Assert.That(resumed.Code, Is.Zero, resumed.Error);
        var state = Checkpoint.ReadState(Path.Combine(run, Trainer.LastFile));
        Assert.Multiple(() =>
        {
            Assert.That(state.Steps, Is.EqualTo(4));
            Assert.That(state.Options.Dataset, Is.EqualTo("synthetic"));
            Assert.That(state.Options.LearningRate, Is.EqualTo(0.002f));
            Assert.That(Checkpoint.ReadConfig(Path.Combine(run, Trainer.LastFile)).Dim, Is.EqualTo(8));
        });

        var conflict = Run("train", "--resume", "--out", run, "--dim", "32", "--dataset", "fashion-mnist", "--lr", "0.002");
        AssertUserError(conflict, "--dim 32 (the run has 8)");
        Assert.Multiple(() =>
        {
            Assert.That(conflict.Error, Does.Contain("--dataset fashion-mnist (the run has synthetic)"));
            Assert.That(conflict.Error, Does.Not.Contain("--lr"), "an option that agrees is no conflict");
        });
    }

    [Test]
    public void Stale_temporary_files_of_the_run_are_removed_on_resume()
    {
        var run = Started("stale", 2);
        var stale = Path.Combine(run, $".{Trainer.LastFile}.{Guid.NewGuid():N}.tmp");
        var foreign = Path.Combine(run, "notes.tmp");
        File.WriteAllBytes(stale, new byte[4096]);
        File.WriteAllText(foreign, "the user's own file");
        Assert.That(Run("train", "--resume", "--out", run, "--max-steps", "4").Code, Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(stale), Is.False);
            Assert.That(File.Exists(foreign), "only the run's own temporaries go");
        });
    }

    [Test]
    public void A_run_stopped_inside_its_first_epoch_records_a_partial_epoch_that_report_shows()
    {
        var run = Started("partial", 6);
        var line = Metrics(run).Single();
        Assert.Multiple(() =>
        {
            Assert.That(line.Partial);
            Assert.That(line.Steps, Is.EqualTo(6));
            Assert.That(line.TrainLoss, Is.GreaterThan(0).And.LessThan(10));
            Assert.That(double.IsNaN(line.TestAccuracy), "nothing evaluated");
        });

        var report = Dir("report");
        var result = Run("report", "--runs", run, "--out", report);
        Assert.That(result.Code, Is.Zero, result.Error);
        Assert.That(File.ReadAllText(Path.Combine(report, "REPORT.md")), Does.Contain("partial"));
    }

    [Test]
    public void A_stop_that_lands_while_a_batch_is_prepared_still_ends_with_a_checkpoint()
    {
        var (train, test) = Synthetic.Create(600, 10, 1, 28, 1).Split(1.0 / 6, 1);
        var eval = Transform.Reference(1, 28, train: false);
        using var model = ModelFactory.Create(SmallModels.Fmnist(2), ModuleInit.Create(1));
        var output = Dir("cancelled");
        using var trainer = new Trainer(model, new TrainOptions { Epochs = 1, BatchSize = 50, Workers = 1 }, new TrainData(train, test, test, eval, eval), output);
        // Cancelled before the first batch is taken from the loader: the worst moment for a stop to arrive.
        var result = trainer.Run(ct: new CancellationToken(canceled: true));
        Assert.Multiple(() =>
        {
            Assert.That(result.Completed, Is.False);
            Assert.That(result.Steps, Is.EqualTo(2), "the batch in hand finishes");
            Assert.That(File.Exists(result.LastCheckpoint));
        });
    }

    [Test]
    public void A_runaway_loss_stops_training_like_a_nan()
    {
        var output = Dir("runaway");
        var result = Run(["train", .. s_small, "--lr", "1000", "--epochs", "1", "--out", output]);
        Assert.Multiple(() =>
        {
            Assert.That(result.Code, Is.EqualTo(3), result.Error);
            Assert.That(result.Error, Does.StartWith("error: loss became").And.Contain("far above the 2.30 of a uniform guess").And.Contain("Try a lower --lr"));
            Assert.That(File.Exists(Path.Combine(output, Trainer.BestFile)), Is.False, "no \"best\" checkpoint of a diverged run");
        });
    }

    [Test]
    public void Every_option_is_checked_before_any_work_or_file()
    {
        var checkpoint = Path.Combine(Started("base", 2), Trainer.LastFile);
        var output = Dir("never");
        AssertUserError(Run("compress", "--checkpoint", checkpoint, "--out", output + ".safetensors", "--dataset", "synthetic", "--target-accuracy-drop", "nan"), "--target-accuracy-drop must be a finite number, got NaN");
        AssertUserError(Run("compress", "--checkpoint", checkpoint, "--out", output + ".safetensors", "--dataset", "synthetic", "--keep", "1", "--batch", "0"), "--batch must be at least 1, got 0");
        AssertUserError(Run("compress", "--checkpoint", checkpoint, "--out", output + ".safetensors", "--dataset", "synthetic", "--keep", "1", "--refit-epochs", "-1"), "--refit-epochs cannot be negative, got -1");
        AssertUserError(Run(["train", .. s_small, "--optimizer", "adamw", "--weight-decay", "-1", "--out", output]), "--weight-decay cannot be negative, got -1");
        AssertUserError(Run(["train", .. Small("--epochs", "0"), "--out", output]), "--epochs must be at least 1, got 0");
        AssertUserError(Run(["train", .. s_small, "--dropout", "1.5", "--out", output]), "--dropout");
        Assert.Multiple(() =>
        {
            Assert.That(Directory.Exists(output), Is.False, "no run folder");
            Assert.That(File.Exists(output + ".safetensors"), Is.False, "no checkpoint");
        });
    }

    [Test]
    public void Parse_errors_are_one_plain_line_without_dotnet_names()
    {
        var errors = new[]
        {
            (Run("trian"), "unknown command 'trian'; the commands are train, eval"),
            (Run("train", "--branches", "abc"), "--branches: 'abc' is not a whole number"),
            (Run("train", "--lr", "fast"), "--lr: 'fast' is not a number"),
            (Run("train", "--preset", "huge"), "--preset: 'huge' is not one of tiny, paper"),
            (Run("eval", "--checkpoint", Path.GetTempPath().TrimEnd('/'), "--dataset", "synthetic"), "is a folder; give a checkpoint file"),
            (Run("train", "--max-steps", "-5"), "--max-steps cannot be negative, got -5"),
            (Run("train", "--augment", "maybe"), "--augment: 'maybe' is not one of true, false"),
            (Run("train", "--epochs", "3", "5"), "unexpected argument '5'"),
        };
        foreach (var (result, expected) in errors)
        {
            AssertUserError(result, expected);
            Assert.Multiple(() =>
            {
                Assert.That(result.Error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), result.Error);
                Assert.That(result.Error, Does.Not.Contain("System.").And.Not.Contain("(Parameter").And.Not.Contain("`1"), result.Error);
            });
        }
    }

    [Test]
    public void Expand_with_max_steps_stops_with_its_model_so_far()
    {
        var checkpoint = Path.Combine(Started("seed", 2), Trainer.LastFile);
        var output = Dir("expanded");
        var result = Run("expand", "--checkpoint", checkpoint, "--add-branches", "1", "--dataset", "synthetic", "--batch", "200", "--max-steps", "3", "--out", output);
        Assert.That(result.Code, Is.Zero, result.Error);
        Assert.Multiple(() =>
        {
            Assert.That(Checkpoint.ReadConfig(Path.Combine(output, Trainer.LastFile)).Branches, Is.EqualTo(3));
            Assert.That(Checkpoint.ReadState(Path.Combine(output, Trainer.LastFile)).Steps, Is.EqualTo(3));
        });
    }

    [Test]
    public void Counts_read_as_english()
    {
        var one = SmallModels.Fmnist(1) with { Heads = 1 };
        Assert.Multiple(() =>
        {
            Assert.That(RunOptions.Describe(one), Does.StartWith("1 branch × 1 block, dim 16, 1 head,"));
            Assert.That(RunOptions.Describe(SmallModels.Fmnist(3) with { BranchDepth = 2 }), Does.StartWith("3 branches × 2 blocks, dim 16, 2 heads,"));
            Assert.That(Count.Of(1234, "epoch"), Is.EqualTo("1,234 epochs"));
        });
    }

    [Test]
    public void A_stop_request_stays_visible_in_the_progress_display()
    {
        var output = new StringWriter();
        var saved = Spectre.Console.AnsiConsole.Console;
        Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Interactive = Spectre.Console.InteractionSupport.Yes,
            Ansi = Spectre.Console.AnsiSupport.No,
            Out = new Spectre.Console.AnsiConsoleOutput(output),
        });
        try
        {
            var display = new TrainingDisplay(_ => { });
            display.Show(() =>
            {
                display.PassStarted(0, 1, "full", 10, 0);
                display.BatchDone(0, 2.3, 0.1, 100);
                display.Stopping("Ctrl+C: stopping after this batch");
                display.BatchDone(1, 2.2, 0.2, 100);
                return 0;
            });
        }
        finally
        {
            Spectre.Console.AnsiConsole.Console = saved;
        }

        // The bar's last frame, the one left on the screen, carries the message rather than drawing over it.
        var text = output.ToString();
        Assert.That(text[text.LastIndexOf("epoch 1/1 full", StringComparison.Ordinal)..], Does.Contain("Ctrl+C: stopping after this batch…"));
    }
}
