using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Ops;

/// <summary>
/// Ops with per-group parameters on the CPU, the reference: run once over G groups they give, bit for bit, what
/// they give group by group with plain parameters; a parameter with the wrong number of groups is refused.
/// </summary>
public class GroupedParameterTests
{
    [Test]
    public void Grouped_ops_equal_the_ops_run_group_by_group_bit_for_bit()
    {
        using var scope = TensorScope.Begin();
        var inputs = GroupedCase.Create();
        var context = CpuBackend.Instance.DefaultContext;
        var grouped = GroupedCase.Named(GroupedCase.Grouped(context, inputs)).ToList();
        var alone = GroupedCase.Named(GroupedCase.PerGroup(context, inputs)).ToList();
        Assert.Multiple(() =>
        {
            for (var i = 0; i < grouped.Count; i++)
            {
                Assert.That(grouped[i].Tensor.ToArray<float>(), Is.EqualTo(alone[i].Tensor.ToArray<float>()), grouped[i].Name);
                Assert.That(grouped[i].Tensor.ToArray<float>(), Has.None.NaN, grouped[i].Name);
            }
        });
    }

    [Test]
    public void A_parameter_with_the_wrong_number_of_groups_is_refused_by_name()
    {
        using var scope = TensorScope.Begin();
        var ops = CpuBackend.Instance.DefaultContext.Ops;
        var x = Rand.Tensor(new Shape(3, 5, 8), 1);
        var y = x.EmptyLike();
        var (mean, rstd) = (Tensor.Empty(new Shape(15)), Tensor.Empty(new Shape(15)));
        var twoGroups = Rand.Tensor(new Shape(2, 8), 2);
        Assert.Multiple(() =>
        {
            Assert.That(() => ops.LayerNorm(x, twoGroups, twoGroups, 1e-5f, y, mean, rstd), Throws.TypeOf<TensorOpException>().With.Message.Contains("gamma").And.Message.Contains("3 groups"));
            Assert.That(() => ops.BiasGelu(x, twoGroups, y), Throws.TypeOf<TensorOpException>().With.Message.Contains("bias"));
            Assert.That(() => ops.SumRows(x, new GradOut(Tensor.Empty(new Shape(2, 8)))), Throws.TypeOf<TensorOpException>().With.Message.Contains("out"));
            Assert.That(() => ops.BatchedGemm(x, x, Tensor.Empty(new Shape(3, 5, 5)), transB: true, bias: Tensor.Empty(new Shape(3, 8))), Throws.TypeOf<TensorOpException>().With.Message.Contains("bias"));
        });
    }
}
