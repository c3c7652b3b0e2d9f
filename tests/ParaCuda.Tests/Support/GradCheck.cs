using ParaCuda.Tensors;

namespace ParaCuda.Tests.Support;

/// <summary>
/// Checks a differentiable function end to end: its float32 forward against the float64 reference,
/// then the gradients autograd delivers for L = Σ w·f(x) (random w) against central finite differences
/// of the reference, input by input.
/// </summary>
internal static class GradCheck
{
    public static void Run(
        string name,
        Shape[] shapes,
        Func<Tensor[], Tensor> forward,
        Func<double[][], double[]> reference,
        int seed = 1,
        double forwardTolerance = 1e-5,
        double gradTolerance = 1e-4,
        bool[]? differentiable = null)
    {
        var values = shapes.Select((s, i) => Rand.Values(s.NumElements, seed + (17 * i))).ToArray();
        using var scope = TensorScope.Begin();
        var inputs = values.Select((v, i) => Rand.Tensor(v, shapes[i], requiresGrad: differentiable?[i] ?? true)).ToArray();
        var y = forward(inputs);
        Close.Check(y.ToArray<float>(), reference(values), forwardTolerance, $"{name} forward");

        var weights = Rand.Values(y.NumElements, seed + 1000);
        y.Backward(Rand.Tensor(weights, y.Shape));
        for (var i = 0; i < inputs.Length; i++)
        {
            if (!(differentiable?[i] ?? true))
            {
                continue;
            }

            var index = i;
            var numeric = FiniteDifference.Gradient(
                x =>
                {
                    var probe = (double[][])values.Clone();
                    probe[index] = x;
                    return FiniteDifference.Dot(weights, reference(probe));
                },
                values[i]);
            Assert.That(inputs[i].Grad, Is.Not.Null, $"{name}: input {i} got no gradient");
            Close.Check(inputs[i].Grad!.ToArray<float>(), numeric, gradTolerance, $"{name} gradient of input {i} {shapes[i]}");
        }
    }
}
