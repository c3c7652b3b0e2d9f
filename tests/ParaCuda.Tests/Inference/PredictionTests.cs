using ParaCuda.Autograd;
using ParaCuda.Backends.Cpu;
using ParaCuda.Data;
using ParaCuda.Inference;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Data;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Inference;

/// <summary>
/// What a host program does with the engine: predict any number of images in one call (the same logits as the
/// model's own forward, in bounded memory), evaluate, load only the test set, transform without a generator,
/// and say how many threads the engine may use.
/// </summary>
[NonParallelizable]
public class PredictionTests
{
    private static readonly ModelConfig s_config = SmallModels.Fmnist(3);

    /// <summary>Logits of <paramref name="data"/>'s images by the model's forward, transformed image by image as a caller would.</summary>
    private static float[] ForwardLogits(VisionModel model, ImageDataset data, int prefix)
    {
        var transform = Transform.Reference(data.Channels, model.Config.ImageSize, train: false);
        var length = transform.OutputLength(data.Channels);
        var floats = new float[data.Count * length];
        for (var i = 0; i < data.Count; i++)
        {
            transform.Apply(data.Image(i), data.Channels, data.Height, data.Width, floats.AsSpan(i * length, length));
        }

        using var scope = TensorScope.Begin();
        using var inference = model.InferenceMode();
        var size = model.Config.ImageSize;
        return model.Forward(Tensor.FromArray(floats, new Shape(data.Count, data.Channels, size, size)), prefix).ToArray<float>();
    }

    [TestCase(0)]
    [TestCase(2)]
    public void Predict_on_stored_bytes_gives_the_forward_logits_in_any_batch_size(int prefix)
    {
        using var model = ModelFactory.Create(s_config, ModuleInit.Create(3));
        var data = Synthetic.Create(37, 10, 1, 28, seed: 5);
        var expected = ForwardLogits(model, data, prefix == 0 ? 3 : prefix);

        var predictions = model.Predict(data.Pixels, data.Count, 28, 28, prefix, batchSize: 8);
        Assert.Multiple(() =>
        {
            Assert.That((predictions.Count, predictions.Classes, predictions.Prefix), Is.EqualTo((37, 10, prefix == 0 ? 3 : prefix)));
            Close.Check(predictions.Logits, expected.Select(v => (double)v).ToList(), 1e-6, "logits");
            Assert.That(model.Training, "the model's mode comes back");
        });
    }

    [Test]
    public void Predict_on_a_tensor_of_model_input_matches_predict_on_bytes()
    {
        using var model = ModelFactory.Create(s_config, ModuleInit.Create(3));
        var data = Synthetic.Create(20, 10, 1, 28, seed: 6);
        var transform = Transform.Reference(1, 28, train: false);
        var floats = new float[20 * 784];
        for (var i = 0; i < 20; i++)
        {
            transform.Apply(data.Image(i), 1, 28, 28, floats.AsSpan(i * 784, 784));
        }

        using var images = Tensor.FromArray(floats, new Shape(20, 1, 28, 28));
        var fromTensor = model.Predict(images, batchSize: 7);
        var fromBytes = model.Predict(data);
        Assert.That(fromTensor.Logits, Is.EqualTo(fromBytes.Logits).Within(1e-6f));
    }

    [Test]
    public void Labels_are_the_first_largest_logit_of_each_row()
    {
        using var model = ModelFactory.Create(s_config, ModuleInit.Create(3));
        var predictions = model.Predict(Synthetic.Create(50, 10, 1, 28, seed: 7));
        var labels = predictions.Labels();
        for (var i = 0; i < predictions.Count; i++)
        {
            var row = predictions.Row(i).ToArray();
            Assert.That(labels[i], Is.EqualTo(Array.IndexOf(row, row.Max())), $"image {i}");
        }
    }

    [Test]
    public void Predict_names_a_request_that_does_not_fit()
    {
        using var model = ModelFactory.Create(s_config, ModuleInit.Create(3));
        var pixels = new byte[10 * 784];
        Assert.Multiple(() =>
        {
            Assert.That(() => model.Predict(pixels, 11, 28, 28), Throws.ArgumentException.With.Message.Contains("11 images of 1×28×28 bytes need 8624 bytes, got 7840"));
            Assert.That(() => model.Predict(pixels, 10, 28, 28, prefix: 4), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("prefix 4 is outside 1..3"));
            Assert.That(() => model.Predict(pixels, 10, 28, 28, batchSize: 0), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => model.Predict(Synthetic.Create(4, 10, 3, 28, seed: 1)), Throws.ArgumentException.With.Message.Contains("3 channels but the model takes 1"));
            using var wrong = Tensor.Zeros(new Shape(2, 1, 32, 32));
            Assert.That(() => model.Predict(wrong), Throws.ArgumentException.With.Message.Contains("[N, 1, 28, 28]"));
        });
    }

    [Test]
    public void Predicting_ten_thousand_images_of_the_tiny_preset_stays_under_500_MB()
    {
        using var model = ModelFactory.Create(Presets.ForData(Presets.Get("tiny").Model, 28, 1, 10), ModuleInit.Create(1));
        var data = Synthetic.Create(10_000, 10, 1, 28, seed: 2);
        var pixelBytes = data.Pixels.Length;
        HostMemoryPool.ResetPeak();
        var before = HostMemoryPool.InUseBytes;
        var managedBefore = GC.GetTotalMemory(forceFullCollection: true);

        var predictions = model.Predict(data);
        var engine = HostMemoryPool.PeakInUseBytes - before;
        var managed = GC.GetTotalMemory(forceFullCollection: false) - managedBefore;
        TestContext.Out.WriteLine($"10,000 images ({pixelBytes / 1e6:F1} MB of pixels): engine peak {engine / 1e6:F1} MB, managed growth {managed / 1e6:F1} MB");
        Assert.Multiple(() =>
        {
            Assert.That(predictions.Count, Is.EqualTo(10_000));
            Assert.That(engine + Math.Max(managed, 0), Is.LessThan(500L << 20));
        });
    }

    [Test]
    public void A_forward_without_gradients_keeps_only_its_result()
    {
        using var model = ModelFactory.Create(s_config with { BranchDepth = 2 }, ModuleInit.Create(3));
        using var images = Tensor.FromArray(new float[4 * 784], new Shape(4, 1, 28, 28));
        int kept;
        using (var scope = TensorScope.Begin())
        using (model.InferenceMode())
        {
            var logits = model.Forward(images);
            kept = scope.Count;
            Assert.That(logits.IsDisposed, Is.False);
        }

        int recorded;
        using (var scope = TensorScope.Begin())
        {
            model.Forward(images);
            recorded = scope.Count;
        }

        Assert.Multiple(() =>
        {
            Assert.That(kept, Is.EqualTo(1), "the logits alone");
            Assert.That(recorded, Is.GreaterThan(30), "with a tape every intermediate stays for the backward");
        });
    }

    [Test]
    public void Results_do_not_depend_on_the_thread_count()
    {
        float[][] Run()
        {
            using var model = ModelFactory.Create(Presets.ForData(Presets.Get("tiny").Model, 28, 1, 10), ModuleInit.Create(4));
            var data = Synthetic.Create(64, 10, 1, 28, seed: 4);
            var transform = Transform.Reference(1, 28, train: false);
            var floats = new float[64 * 784];
            for (var i = 0; i < 64; i++)
            {
                transform.Apply(data.Image(i), 1, 28, 28, floats.AsSpan(i * 784, 784));
            }

            using var scope = TensorScope.Begin();
            var logits = model.Forward(Tensor.FromArray(floats, new Shape(64, 1, 28, 28)));
            F.CrossEntropy(logits, Tensor.FromArray(data.Labels.Span, new Shape(64))).Backward();
            return [logits.ToArray<float>(), .. model.Parameters().Select(p => p.Grad!.ToArray<float>())];
        }

        var saved = Engine.Threads;
        try
        {
            Engine.Threads = 1;
            var one = Run();
            Engine.Threads = Math.Max(2, Environment.ProcessorCount);
            var many = Run();
            Assert.That(many, Is.EqualTo(one), "bit for bit");
        }
        finally
        {
            Engine.Threads = saved;
        }

        Assert.That(() => Engine.Threads = 0, Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void The_cli_takes_a_thread_count_for_its_command_only()
    {
        var saved = Engine.Threads;
        Assert.Multiple(() =>
        {
            Assert.That(Cli.CommandRunner.Run("info", "--threads", "1", "--no-check").Code, Is.Zero);
            Assert.That(Engine.Threads, Is.EqualTo(saved), "restored after the command");
        });
        Cli.CommandRunner.AssertUserError(Cli.CommandRunner.Run("info", "--threads", "0"), "--threads must be at least 1, got 0");
    }

    [Test]
    public void Evaluation_takes_the_models_own_input_transform_by_default()
    {
        using var model = ModelFactory.Create(s_config, ModuleInit.Create(3));
        var data = Synthetic.Create(40, 10, 1, 28, seed: 8);
        var scores = Evaluation.Run(model, data);
        var labels = model.Predict(data).Labels();
        var correct = labels.Where((label, i) => label == data.Labels.Span[i]).Count();
        Assert.Multiple(() =>
        {
            Assert.That(scores.Select(s => s.K), Is.EqualTo(new[] { 1, 2, 3 }));
            Assert.That(scores[^1].Accuracy, Is.EqualTo(correct / 40.0));
        });
    }

    [Test]
    public void The_test_set_loads_without_the_training_files()
    {
        var directory = Directory.CreateTempSubdirectory("paracuda-testset-").FullName;
        try
        {
            DataFiles.IdxSet(directory, gzip: true);
            File.Delete(Path.Combine(directory, "train-images-idx3-ubyte.gz"));
            File.Delete(Path.Combine(directory, "train-labels-idx1-ubyte.gz"));
            var test = Datasets.LoadTest("fashion-mnist", directory);
            Assert.Multiple(() =>
            {
                Assert.That((test.Count, test.Height, test.Width), Is.EqualTo((10, 6, 5)));
                Assert.That(() => Datasets.Load("fashion-mnist", directory), Throws.TypeOf<DataNotFoundException>().With.Message.Contains("train-images-idx3-ubyte"));
            });
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void A_transform_without_random_choices_needs_no_generator()
    {
        var data = Synthetic.Create(1, 10, 1, 28, seed: 9);
        var evaluation = Transform.Reference(1, 32, train: false);
        var plain = new float[evaluation.OutputLength(1)];
        var drawn = new float[plain.Length];
        evaluation.Apply(data.Image(0), 1, 28, 28, plain);
        var random = new SplitMix64(1);
        evaluation.Apply(data.Image(0), 1, 28, 28, drawn, ref random);
        Assert.Multiple(() =>
        {
            Assert.That(plain, Is.EqualTo(drawn));
            Assert.That(() => Transform.Reference(1, 28, train: true).Apply(data.Image(0), 1, 28, 28, plain.AsSpan(0, 784)), Throws.InvalidOperationException.With.Message.Contains("SplitMix64"));
        });
    }
}
