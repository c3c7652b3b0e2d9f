using ParaCuda.Inference;
using ParaCuda.Interop;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Embedding;

/// <summary>
/// Weights cross to PyTorch and back: a checkpoint exported by <c>paracuda export --format pytorch</c> loads into
/// the reference model (perf/reference/paraformer.py) with load_state_dict(strict=True) and gives ParaCuda's
/// logits; a model made in PyTorch and saved by the reference comes back through <c>paracuda import</c> with
/// PyTorch's logits. Multi-channel images check the patch permutation.
/// </summary>
[NonParallelizable]
public class PyTorchInteropTests
{
    private static readonly ModelConfig s_base = new()
    {
        ImageSize = 12,
        Channels = 3,
        Patch = 4,
        Classes = 7,
        Dim = 16,
        Heads = 2,
        MlpDim = 24,
        Branches = 2,
        BranchDepth = 2,
    };

    private static IEnumerable<TestCaseData> Configs()
    {
        yield return new TestCaseData(s_base).SetName("ParaFormer, 3 channels, normalized skip, CLS pooling");
        yield return new TestCaseData(s_base with { Channels = 1, Branches = 3, BranchDepth = 1, HeadDim = 12, Skip = SkipConnection.Input, Pool = Backends.Pooling.Mean })
            .SetName("ParaFormer, 1 channel, input skip, mean pooling, head dim 12");
        yield return new TestCaseData(s_base with { Kind = ModelKind.Vit, Depth = 3 }).SetName("ViT, 3 channels");
    }

    [TestCaseSource(nameof(Configs))]
    public void Weights_round_trip_through_the_pytorch_reference_with_equal_logits(ModelConfig config)
    {
        var python = ExternalTools.PythonWithTorch();
        var dir = Directory.CreateTempSubdirectory("paracuda-torch-").FullName;
        try
        {
            using var model = ModelFactory.Create(config, ModuleInit.Create(21));
            var checkpoint = Path.Combine(dir, "model.safetensors");
            Checkpoint.SaveModel(checkpoint, model);
            var exported = Path.Combine(dir, "exported.safetensors");
            Assert.That(Cli.CommandRunner.Run("export", "--checkpoint", checkpoint, "--format", "pytorch", "--out", exported).Code, Is.Zero);

            var random = new Random(3);
            var images = Enumerable.Range(0, 5 * config.Channels * 144).Select(_ => (float)((random.NextDouble() * 4) - 2)).ToArray();
            var input = Path.Combine(dir, "input.npy");
            Npy.Write(input, images, 5, config.Channels, 12, 12);
            using var tensor = Tensor.FromArray(images, new Shape(5, config.Channels, 12, 12));
            var ours = model.Predict(tensor).Logits;

            var torchLogits = Path.Combine(dir, "torch.npy");
            var fresh = Path.Combine(dir, "fresh.safetensors");
            var (code, stdout, stderr) = ExternalTools.Run(python, [Path.Combine(Repository.Root, "perf", "reference", "interop_check.py"), exported, input, torchLogits, fresh, "7"], Path.Combine(Repository.Root, "perf", "reference"));
            Assert.That(code, Is.Zero, stdout + stderr);

            var (theirs, shape) = Npy.ReadFloat32(torchLogits);
            Assert.That(shape, Is.EqualTo(new[] { 5, 7 }));
            Close.Check(ours, theirs.Select(v => (double)v).ToList(), 1e-5, "ParaCuda's logits against PyTorch's on the exported weights");

            // The other way: weights PyTorch initialised, imported, give PyTorch's logits here.
            var imported = Path.Combine(dir, "imported.safetensors");
            var import = Cli.CommandRunner.Run("import", "--format", "pytorch", "--in", fresh, "--out", imported);
            Assert.That(import.Code, Is.Zero, import.Error);
            using var back = Checkpoint.LoadModel(imported);
            var (expected, _) = Npy.ReadFloat32(Path.Combine(dir, "torch.fresh.npy"));
            Close.Check(back.Predict(tensor).Logits, expected.Select(v => (double)v).ToList(), 1e-5, "imported weights against PyTorch's logits");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void The_patch_layouts_are_a_permutation_not_a_reshape()
    {
        var config = s_base with { Branches = 1, BranchDepth = 1 };
        using var model = ModelFactory.Create(config, ModuleInit.Create(1));
        var dir = Directory.CreateTempSubdirectory("paracuda-layout-").FullName;
        try
        {
            var path = Path.Combine(dir, "exported.safetensors");
            PyTorchFormat.Export(path, model);
            using var file = SafeTensors.Read(path);
            var ours = model.Embed.Proj.Weight.ToArray<float>();
            var theirs = file.Tensors["embed.proj.weight"].ToArray<float>();
            Assert.Multiple(() =>
            {
                Assert.That(file.Tensors["embed.proj.weight"].Shape, Is.EqualTo(new Shape(16, 3, 4, 4)));
                Assert.That(file.Tensors["embed.pos"].Shape, Is.EqualTo(new Shape(1, 10, 16)));
                // Output 5, channel 2, row 1, column 3: (row, column, channel) here, (channel, row, column) there.
                Assert.That(theirs[(((5 * 3) + 2) * 16) + (1 * 4) + 3], Is.EqualTo(ours[(5 * 48) + (((1 * 4) + 3) * 3) + 2]));
                Assert.That(() => Checkpoint.LoadModel(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("paracuda import"));
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
