using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Training;

/// <summary>
/// A checkpoint's header is believed only as far as the file backs it: its checksum covers the header, and
/// its model config must describe exactly the tensors the file holds, before any model is built from it.
/// </summary>
public class CheckpointTrustTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("paracuda-trust-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void The_parameter_count_formula_matches_the_models_it_describes()
    {
        ModelConfig[] configs =
        [
            SmallModels.Fmnist(3),
            Presets.ForData(Presets.Get("tiny").Model, 28, 1, 10),
            Presets.ForData(Presets.Get("paper").Model, 32, 3, 100),
            SmallModels.Fmnist(2) with { Kind = ModelKind.Vit, Depth = 3 },
            SmallModels.Fmnist(2) with { HeadDim = 12, BranchDepth = 2 },
        ];
        foreach (var config in configs)
        {
            using var model = ModelFactory.Create(config, ModuleInit.Create(1));
            Assert.That(config.ParameterCount(), Is.EqualTo(model.ParameterCount()), config.ToJson());
        }

        Assert.That((SmallModels.Fmnist(2) with { Branches = int.MaxValue, BranchDepth = int.MaxValue, Dim = int.MaxValue }).ParameterCount(), Is.EqualTo(long.MaxValue), "absurd configs saturate instead of overflowing");
    }

    [Test]
    public void A_config_that_promises_more_than_the_tensors_hold_is_refused_before_building()
    {
        using var model = ModelFactory.Create(SmallModels.Fmnist(2), ModuleInit.Create(1));
        var path = Path.Combine(_dir, "lying.safetensors");
        var lie = SmallModels.Fmnist(2) with { Branches = 100_000_000 };
        SafeTensors.Write(path, model.StateDict(), new Dictionary<string, string> { [Checkpoint.KindKey] = "model", [Checkpoint.ConfigKey] = lie.ToJson() });

        var before = GC.GetTotalAllocatedBytes(precise: true);
        var error = Assert.Throws<CheckpointFormatException>(() => Checkpoint.LoadModel(path))!;
        Assert.That(error.Message, Does.Contain("describes 217,600,001,290 parameters but its tensors hold 5,642").And.Contain(path));
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - before, Is.LessThan(64L << 20), "refused without allocating the model");
    }

    [Test]
    public void A_checkpoint_whose_header_was_edited_is_refused_as_corrupted()
    {
        using var model = ModelFactory.Create(SmallModels.Fmnist(2), ModuleInit.Create(1));
        var path = Path.Combine(_dir, "edited.safetensors");
        Checkpoint.SaveModel(path, model);
        var bytes = File.ReadAllBytes(path);
        var field = System.Text.Encoding.UTF8.GetBytes("\\\"branches\\\":2");
        var at = bytes.AsSpan().IndexOf(field);
        Assert.That(at, Is.GreaterThan(0), "the config is in the header");
        bytes[at + field.Length - 1] = (byte)'9';
        File.WriteAllBytes(path, bytes);

        Assert.That(() => Checkpoint.ReadConfig(path), Throws.TypeOf<CheckpointFormatException>().With.Message.Contains("checksum mismatch"));
    }
}
