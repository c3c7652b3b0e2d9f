using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Nn;

public class ModuleTests
{
    private static readonly BlockConfig s_config = new(Dim: 16, Heads: 2, MlpDim: 32, Dropout: 0.1f);

    [Test]
    public void Parameters_are_named_by_dotted_paths()
    {
        using var block = new TransformerBlock(s_config, ModuleInit.Create(1));
        var names = block.NamedParameters().Select(e => e.Name).ToArray();
        Assert.That(names, Is.EqualTo(new[]
        {
            "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
            "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
        }));

        // LN: 2·D, qkv: 3·D·D (no bias), proj: D·D + D, MLP: D·M + M + M·D + D, twice for the two norms.
        const int d = 16, m = 32;
        Assert.That(block.ParameterCount(), Is.EqualTo((2 * 2 * d) + (3 * d * d) + (d * d) + d + (d * m) + m + (m * d) + d));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Inference_mode_switches_off_dropout_and_the_tape_then_restores_the_mode(bool training)
    {
        using var block = new TransformerBlock(s_config, ModuleInit.Create(1));
        block.Train(training);
        using (block.InferenceMode())
        {
            Assert.Multiple(() =>
            {
                Assert.That(block.Training, Is.False);
                Assert.That(block.Mlp.Training, Is.False, "children too");
                Assert.That(ParaCuda.Autograd.GradMode.IsEnabled, Is.False);
            });
        }

        Assert.Multiple(() =>
        {
            Assert.That(block.Training, Is.EqualTo(training));
            Assert.That(block.Mlp.Training, Is.EqualTo(training));
            Assert.That(ParaCuda.Autograd.GradMode.IsEnabled, Is.True);
        });
    }

    [Test]
    public void State_dict_round_trips_into_a_fresh_module()
    {
        using var scope = TensorScope.Begin();
        using var a = new TransformerBlock(s_config, ModuleInit.Create(1));
        using var b = new TransformerBlock(s_config, ModuleInit.Create(2));
        a.Eval();
        b.Eval();
        var x = Rand.Tensor(new Shape(2, 5, 16), 3);
        Assert.That(b.Forward(x).ToArray<float>(), Is.Not.EqualTo(a.Forward(x).ToArray<float>()));
        b.LoadStateDict(a.StateDict());
        Assert.That(b.Forward(x).ToArray<float>(), Is.EqualTo(a.Forward(x).ToArray<float>()));
    }

    [Test]
    public void A_mismatched_state_dict_is_rejected_and_changes_nothing()
    {
        using var scope = TensorScope.Begin();
        using var block = new TransformerBlock(s_config, ModuleInit.Create(1));
        var before = block.Norm1.Weight.ToArray<float>();
        var state = new Dictionary<string, Tensor>(block.StateDict())
        {
            ["norm1.weight"] = Tensor.Ones(new Shape(16)),
            ["mlp.fc2.bias"] = Tensor.Zeros(new Shape(15)),
            ["extra"] = Tensor.Zeros(new Shape(1)),
        };
        state.Remove("attn.qkv.weight");
        var e = Assert.Throws<InvalidDataException>(() => block.LoadStateDict(state));
        Assert.That(e!.Message, Does.Contain("missing 'attn.qkv.weight'").And.Contain("'mlp.fc2.bias' is [15]").And.Contain("unexpected 'extra'"));
        Assert.That(block.Norm1.Weight.ToArray<float>(), Is.EqualTo(before));
    }

    [Test]
    public void Dropout_is_active_in_training_mode_only()
    {
        using var scope = TensorScope.Begin();
        using var block = new TransformerBlock(s_config, ModuleInit.Create(1));
        var x = Rand.Tensor(new Shape(2, 5, 16), 3);
        var first = block.Forward(x).ToArray<float>();
        Assert.That(block.Forward(x).ToArray<float>(), Is.Not.EqualTo(first));
        block.Eval();
        Assert.That(block.Training, Is.False);
        Assert.That(block.Mlp.Training, Is.False);
        var evaluated = block.Forward(x).ToArray<float>();
        Assert.That(block.Forward(x).ToArray<float>(), Is.EqualTo(evaluated));
    }

    [Test]
    public void The_two_skip_connections_compute_their_formulas()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(1, 3, 16), 4);
        using var input = new TransformerBlock(s_config with { Dropout = 0, Skip = SkipConnection.Input }, ModuleInit.Create(7));
        using var normalized = new TransformerBlock(s_config with { Dropout = 0, Skip = SkipConnection.Normalized }, ModuleInit.Create(7));

        // With the same weights: Input adds x, Normalized adds LN(x); after the attention sub-layer they differ by x − LN(x).
        var n1 = input.Norm1.Forward(x);
        var a = input.Attn.Forward(n1);
        var hInput = ParaCuda.Autograd.F.Add(x, a).ToArray<float>();
        var hNorm = ParaCuda.Autograd.F.Add(n1, normalized.Attn.Forward(normalized.Norm1.Forward(x))).ToArray<float>();
        var yInput = ParaCuda.Autograd.F.Add(Tensor.FromArray(hInput, x.Shape), input.Mlp.Forward(input.Norm2.Forward(Tensor.FromArray(hInput, x.Shape))));
        var n2 = normalized.Norm2.Forward(Tensor.FromArray(hNorm, x.Shape));
        var yNorm = ParaCuda.Autograd.F.Add(n2, normalized.Mlp.Forward(n2));
        Assert.That(input.Forward(x).ToArray<float>(), Is.EqualTo(yInput.ToArray<float>()));
        Assert.That(normalized.Forward(x).ToArray<float>(), Is.EqualTo(yNorm.ToArray<float>()));
    }

    [Test]
    public void Patch_embedding_rejects_images_of_the_wrong_size()
    {
        using var scope = TensorScope.Begin();
        using var embed = new PatchEmbedding(28, 1, 7, 16, 0f, ModuleInit.Create(1));
        Assert.That(embed.Forward(Rand.Tensor(new Shape(2, 1, 28, 28), 1)).Shape, Is.EqualTo(new Shape(2, 17, 16)));
        Assert.That(
            () => embed.Forward(Rand.Tensor(new Shape(2, 3, 32, 32), 1)),
            Throws.TypeOf<ParaCuda.Backends.TensorOpException>().With.Message.Contains("[2, 3, 32, 32]").And.Message.Contains("[B, 1, 28, 28]"));
    }
}
