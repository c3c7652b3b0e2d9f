using ParaCuda.Autograd;
using ParaCuda.Backends.Cpu;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Models;

public class ModelTests
{
    private static readonly ModelConfig s_small = new()
    {
        ImageSize = 8,
        Channels = 2,
        Patch = 4,
        Classes = 5,
        Dim = 16,
        Heads = 2,
        MlpDim = 24,
        Branches = 3,
        BranchDepth = 2,
    };

    /// <summary>The reference implementation's count, written out term by term.</summary>
    private static long ReferenceParameterCount(int channels, int imageSize, int patch, int dim, int heads, int headDim, int mlp, int blocks, int classes)
    {
        var patches = imageSize / patch * (imageSize / patch);
        var inner = heads * headDim;
        long embedding = (patch * patch * channels * dim) + dim + ((patches + 1) * dim) + dim;
        long block = (2 * 2 * dim) + (dim * 3 * inner) + (inner * dim) + dim + (dim * mlp) + mlp + (mlp * dim) + dim;
        long head = (2 * dim) + (dim * classes) + classes;
        return embedding + (blocks * block) + head;
    }

    [TestCase(28, 7, 7)]
    [TestCase(32, 7, 8)]
    [TestCase(32, 4, 4)]
    [TestCase(30, 7, 6)]
    [TestCase(224, 16, 16)]
    [TestCase(13, 7, 13)]
    public void Patch_keeps_the_preset_s_when_it_tiles_the_image_and_else_the_nearest_that_does(int imageSize, int preferred, int expected)
    {
        Assert.That(Presets.PatchFor(imageSize, preferred), Is.EqualTo(expected));
        Assert.That(imageSize % expected, Is.Zero);
    }

    [TestCase(1, 7_198_282)]
    [TestCase(3, 7_296_586)]
    public void Paper_preset_has_the_reference_parameter_count(int channels, long expected)
    {
        var config = Presets.ForData(Presets.Get("paper").Model, 28, channels, 10);
        using var model = ModelFactory.Create(config, ModuleInit.Create(1));
        Assert.That(model.ParameterCount(), Is.EqualTo(ReferenceParameterCount(channels, 224, 16, 192, 3, 64, 768, 16, 10)));
        Assert.That(model.ParameterCount(), Is.EqualTo(expected), "≈7.2M on Fashion-MNIST, as the paper reports");
        using var vit = ModelFactory.Create(ModelFactory.MatchingVit(config), ModuleInit.Create(1));
        Assert.That(vit.ParameterCount(), Is.EqualTo(model.ParameterCount()), "the ViT baseline at equal parameter count");
    }

    [Test]
    public void Parameters_follow_the_documented_names()
    {
        using var model = new ParaFormer(s_small, ModuleInit.Create(1));
        var names = model.NamedParameters().Select(e => e.Name).ToList();
        Assert.That(names, Does.Contain("embed.proj.weight").And.Contain("embed.cls").And.Contain("embed.pos"));
        Assert.That(names, Does.Contain("branches.2.blocks.1.attn.qkv.weight").And.Contain("head.fc.bias"));
        Assert.That(names, Has.Count.EqualTo(names.Distinct().Count()));
    }

    [Test]
    public void Prefix_forward_equals_the_head_of_the_summed_branches()
    {
        using var scope = TensorScope.Begin();
        using var model = new ParaFormer(s_small, ModuleInit.Create(2));
        model.Eval();
        var images = Rand.Tensor(new Shape(3, 2, 8, 8), 4);
        var tokens = model.Embed.Forward(images);
        var all = model.ForwardAllPrefixes(images);
        for (var k = 1; k <= 3; k++)
        {
            var sum = F.SumMany(model.Branches.Take(k).Select(b => b.Forward(tokens)).ToList());
            var expected = model.Head.Forward(sum).ToDoubles();
            Assert.That(model.Forward(images, k).ToArray<float>(), Is.EqualTo(expected), $"Forward(x, {k})");
            Close.Check(all[k - 1].ToArray<float>(), expected, 1e-6, $"prefix {k} of ForwardAllPrefixes");
        }

        Assert.That(() => model.Forward(images, 4), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("1..3"));
    }

    [Test]
    public void Branches_on_their_own_contexts_give_identical_results_and_gradients()
    {
        using var scope = TensorScope.Begin();
        var contexts = Enumerable.Range(0, 3).Select(i => CpuBackend.Instance.CreateContext($"branch{i}")).ToArray();
        using var single = new ParaFormer(s_small, ModuleInit.Create(5));
        using var placed = new ParaFormer(s_small, ModuleInit.Create(5), contexts);
        Assert.That(placed.Branches[1].Blocks[0].Attn.Qkv.Weight.Context, Is.SameAs(contexts[1]));
        Assert.That(placed.Embed.Proj.Weight.Context, Is.Not.SameAs(contexts[0]));

        var images = Rand.Tensor(new Shape(2, 2, 8, 8), 6);
        var labels = Tensor.FromArray([1, 3], new Shape(2));
        single.Eval();
        placed.Eval();
        F.CrossEntropy(single.Forward(images), labels).Backward();
        F.CrossEntropy(placed.Forward(images), labels).Backward();
        foreach (var ((name, a), (_, b)) in single.NamedParameters().Zip(placed.NamedParameters()))
        {
            Assert.That(b.Grad!.ToArray<float>(), Is.EqualTo(a.Grad!.ToArray<float>()), name);
        }
    }

    [Test]
    public void Invalid_configs_are_refused_with_the_reason()
    {
        Assert.That(() => new ParaFormer(s_small with { Patch = 3 }, ModuleInit.Create(1)), Throws.ArgumentException.With.Message.Contains("not divisible into patches of 3"));
        Assert.That(() => new ParaFormer(s_small with { Branches = 0 }, ModuleInit.Create(1)), Throws.ArgumentException.With.Message.Contains("at least one branch"));
        Assert.That(() => new VisionTransformer(s_small, ModuleInit.Create(1)), Throws.ArgumentException.With.Message.Contains("not a ViT"));
        Assert.That(() => Presets.Get("huge"), Throws.ArgumentException.With.Message.Contains("tiny, paper"));
    }
}
