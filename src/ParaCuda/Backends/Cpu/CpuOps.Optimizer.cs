using ParaCuda.Tensors;

namespace ParaCuda.Backends.Cpu;

internal sealed unsafe partial class CpuOps
{
    protected override void SumOfSquaresCore(IReadOnlyList<Tensor> tensors, IReadOnlyList<Tensor> outputs)
    {
        for (var i = 0; i < tensors.Count; i++)
        {
            F(outputs[i])[0] = (float)Sum(F(tensors[i]), tensors[i].NumElements, squares: true);
        }
    }

    protected override void ClipByNormCore(IReadOnlyList<Tensor> tensors, Tensor norm, float maxNorm)
    {
        var coefficient = maxNorm / (F(norm)[0] + 1e-6f);
        if (coefficient >= 1f)
        {
            return;
        }

        foreach (var t in tensors)
        {
            ScaleCore(t, coefficient, t);
        }
    }

    protected override void AdamUpdateCore(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> m, IReadOnlyList<Tensor> v, AdamParameters hp, IReadOnlyList<Tensor> steps, Tensor? learningRate)
    {
        // torch.optim.Adam's arithmetic: p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps).
        var lr = learningRate is null ? hp.LearningRate : F(learningRate)[0];
        var decay = hp.DecoupledWeightDecay ? 1f - (lr * hp.WeightDecay) : 1f;
        var l2 = hp.DecoupledWeightDecay ? 0f : hp.WeightDecay;
        for (var t = 0; t < parameters.Count; t++)
        {
            var step = ++I(steps[t])[0];
            var bc1 = 1.0 - Math.Pow(hp.Beta1, step);
            var bc2 = 1.0 - Math.Pow(hp.Beta2, step);
            var stepSize = (float)(lr / bc1);
            var bc2Sqrt = (float)Math.Sqrt(bc2);
            float* pp = F(parameters[t]), pg = F(grads[t]), pm = F(m[t]), pv = F(v[t]);
            CpuParallel.For(Count(parameters[t]), 12, (i0, i1) =>
            {
                for (var i = i0; i < i1; i++)
                {
                    var p = pp[i] * decay;
                    var g = pg[i] + (l2 * pp[i]);
                    var mi = (hp.Beta1 * pm[i]) + ((1f - hp.Beta1) * g);
                    var vi = (hp.Beta2 * pv[i]) + ((1f - hp.Beta2) * g * g);
                    pm[i] = mi;
                    pv[i] = vi;
                    pp[i] = p - (stepSize * mi / ((MathF.Sqrt(vi) / bc2Sqrt) + hp.Epsilon));
                }
            });
        }
    }
}
