using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Optim;
using ParaCuda.Tensors;

namespace ParaCuda.Tests.Nn;

public class TrainingTests
{
    /// <summary>
    /// A synthetic task that needs attention: each sequence holds one "key" token whose position is
    /// random; the class is which of 4 prototypes that token is closest to. Token 0 alone cannot tell.
    /// </summary>
    private static (float[] X, int[] Y) Task(int n, int tokens, int dim, int seed)
    {
        var rng = new Random(seed);
        var prototypes = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, dim).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray()).ToArray();
        var x = new float[n * tokens * dim];
        var y = new int[n];
        for (var i = 0; i < n; i++)
        {
            y[i] = rng.Next(4);
            var key = rng.Next(tokens);
            for (var t = 0; t < tokens; t++)
            {
                for (var j = 0; j < dim; j++)
                {
                    var noise = (float)(((rng.NextDouble() * 2) - 1) * 0.3);
                    x[(((i * tokens) + t) * dim) + j] = t == key ? (2 * prototypes[y[i]][j]) + noise : noise;
                }
            }
        }

        return (x, y);
    }

    [Test]
    public void A_transformer_block_learns_a_synthetic_task()
    {
        const int n = 64, tokens = 8, dim = 16;
        var (xs, ys) = Task(n, tokens, dim, 1);
        var init = ModuleInit.Create(3);
        using var block = new TransformerBlock(new BlockConfig(dim, 2, 32), init);
        using var head = new Linear(dim, 4, init);
        using var optimizer = new Adam(block.NamedParameters().Concat(head.NamedParameters("head.")), new AdamParameters(3e-3f));
        using var x = Tensor.FromArray(xs, new Shape(n, tokens, dim));
        using var y = Tensor.FromArray(ys, new Shape(n));

        float Step()
        {
            using var scope = TensorScope.Begin();
            var loss = F.CrossEntropy(head.Forward(F.PoolTokens(block.Forward(x), Pooling.Mean)), y);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.ClipGradNorm(1f);
            optimizer.Step();
            return loss.Item();
        }

        var first = Step();
        var last = first;
        for (var i = 0; i < 150; i++)
        {
            last = Step();
        }

        Assert.That(first, Is.GreaterThan(1.0f), "starts near chance (ln 4 ≈ 1.39)");
        Assert.That(last, Is.LessThan(0.25f * first), $"loss went from {first} to {last}");
    }
}
