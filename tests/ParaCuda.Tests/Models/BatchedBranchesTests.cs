using ParaCuda.Autograd;
using ParaCuda.Backends.Cpu;
using ParaCuda.Compression;
using ParaCuda.Continual;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Models;

/// <summary>
/// Branches run as one batch (--branch-exec batched): the same initial weights as separate branches, the same
/// logits for every prefix, the same losses and parameters after every step of an lpa batch and a prefix step,
/// per-branch gradients that respect prefixes and frozen branches, and parameters that stay views of one packed
/// allocation through checkpoints, compression and expansion.
/// </summary>
public class BatchedBranchesTests
{
    private static readonly ModelConfig s_config = SmallModels.Fmnist(3) with { BranchDepth = 2 };

    private static ParaFormer Model(bool batched) => (ParaFormer)ModelFactory.Create(s_config, ModuleInit.Create(5, batchedBranches: batched));

    private static Tensor Images(int n, int seed) => Tensor.FromArray(Rand.Values(n * 784, seed).Select(v => (float)v).ToArray(), new Shape(n, 1, 28, 28));

    private static void AssertPacked(ParaFormer model)
    {
        Assert.That(model.Batched);
        var first = model.Branches[0].Parameters().ToList();
        for (var b = 0; b < model.Branches.Count; b++)
        {
            var own = model.Branches[b].Parameters().ToList();
            for (var i = 0; i < own.Count; i++)
            {
                Assert.That(own[i].Packed, Is.SameAs(first[i].Packed).And.Not.Null, $"branch {b}, parameter {i} is a slot of the packed allocation");
            }
        }
    }

    [Test]
    public void The_same_weights_and_logits_as_separate_branches()
    {
        using var scope = TensorScope.Begin();
        using var separate = Model(batched: false);
        using var batched = Model(batched: true);
        AssertPacked(batched);
        var images = Images(6, 1);
        Assert.Multiple(() =>
        {
            foreach (var (name, tensor) in separate.StateDict())
            {
                Assert.That(batched.StateDict()[name].ToArray<float>(), Is.EqualTo(tensor.ToArray<float>()), $"initial {name}");
            }

            using var inference = batched.InferenceMode();
            using var inference2 = separate.InferenceMode();
            for (var k = 1; k <= 3; k++)
            {
                Close.Check(batched.Forward(images, k).ToArray<float>(), separate.Forward(images, k).ToDoubles(), 1e-6, $"logits of prefix {k}");
            }

            var all = batched.ForwardAllPrefixes(images);
            var reference = separate.ForwardAllPrefixes(images);
            for (var k = 0; k < 3; k++)
            {
                Close.Check(all[k].ToArray<float>(), reference[k].ToDoubles(), 1e-6, $"all prefixes, k = {k + 1}");
            }
        });
    }

    [Test]
    public void Every_step_of_an_lpa_batch_and_a_prefix_step_matches_separate_branches()
    {
        var steps = new LpaSchedule().Passes(0, 1, 1, StepSnapshots.Tiny.Branches).Concat(new PrefixSchedule().Passes(0, 1, 1, StepSnapshots.Tiny.Branches)).SelectMany(p => p.Steps).ToList();
        var cpu = CpuBackend.Instance.DefaultContext;
        StepSnapshots.AssertClose(StepSnapshots.Train(cpu, null, steps, batched: true), StepSnapshots.Train(cpu, null, steps), steps, 1e-5, "batched against separate branches");
    }

    [Test]
    public void Gradients_reach_the_prefix_and_skip_frozen_branches()
    {
        using var scope = TensorScope.Begin();
        using var model = Model(batched: true);
        var labels = Tensor.FromArray([1, 2, 3, 4], new Shape(4));
        foreach (var p in model.Branches[0].Parameters())
        {
            p.RequiresGrad = false;
        }

        F.CrossEntropy(model.Forward(Images(4, 2), 2), labels).Backward();
        Assert.Multiple(() =>
        {
            Assert.That(model.Branches[0].Parameters().Select(p => p.Grad), Has.All.Null, "branch 1 is frozen");
            Assert.That(model.Branches[1].Parameters().Select(p => p.Grad), Has.None.Null, "branch 2 is in the prefix");
            Assert.That(model.Branches[2].Parameters().Select(p => p.Grad), Has.All.Null, "branch 3 is beyond it");
        });

        // Against the same step with separate branches.
        using var separate = Model(batched: false);
        foreach (var p in separate.Branches[0].Parameters())
        {
            p.RequiresGrad = false;
        }

        F.CrossEntropy(separate.Forward(Images(4, 2), 2), labels).Backward();
        var expected = separate.Branches[1].NamedParameters().ToList();
        var actual = model.Branches[1].NamedParameters().ToList();
        for (var i = 0; i < expected.Count; i++)
        {
            Close.Check(actual[i].Parameter.Grad!.ToArray<float>(), expected[i].Parameter.Grad!.ToDoubles(), 1e-5, $"gradient of {expected[i].Name}");
        }

        model.ZeroGrad();
        Assert.That(model.Parameters().Select(p => p.Grad), Has.All.Null, "ZeroGrad forgets every slot's gradient");
    }

    [Test]
    public void Parameters_stay_slots_through_checkpoints_compression_and_expansion()
    {
        var dir = Directory.CreateTempSubdirectory("paracuda-batched-").FullName;
        try
        {
            using var scope = TensorScope.Begin();
            using var model = Model(batched: true);
            var path = Path.Combine(dir, "model.safetensors");
            Checkpoint.SaveModel(path, model);
            using var loaded = (ParaFormer)Checkpoint.LoadModel(path, batchedBranches: true);
            AssertPacked(loaded);
            using var separate = (ParaFormer)Checkpoint.LoadModel(path);
            Assert.That(separate.Batched, Is.False);
            var images = Images(3, 3);
            using (loaded.InferenceMode())
            using (separate.InferenceMode())
            {
                Close.Check(loaded.Forward(images).ToArray<float>(), separate.Forward(images).ToDoubles(), 1e-6, "a batched checkpoint loads either way");
            }

            using var kept = Compressor.Keep(loaded, [0, 2]);
            AssertPacked(kept);
            using var grown = Expansion.AddBranches(loaded, 2, seed: 4);
            AssertPacked(grown);
            Assert.That(grown.Branches.Count, Is.EqualTo(5));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
