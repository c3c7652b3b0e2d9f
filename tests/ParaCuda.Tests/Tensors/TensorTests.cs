using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Tensors;

public class TensorTests
{
    [Test]
    public void Views_share_storage_and_keep_it_alive()
    {
        var liveBefore = Storage.LiveCount;
        var x = Tensor.FromArray(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), new Shape(3, 4));
        var view = x.View(2, -1);
        var rows = x.NarrowView(1, 2);
        Assert.That(view.Shape, Is.EqualTo(new Shape(2, 6)));
        Assert.That(rows.ToArray<float>(), Is.EqualTo(Enumerable.Range(4, 8).Select(i => (float)i)));
        x.Dispose();
        Assert.That(view.ToArray<float>()[11], Is.EqualTo(11f), "a view outlives its parent");
        view.Dispose();
        rows.Dispose();
        Assert.That(Storage.LiveCount, Is.EqualTo(liveBefore));
    }

    [Test]
    public void A_scope_frees_its_temporaries_but_not_what_it_keeps()
    {
        var liveBefore = Storage.LiveBytes;
        Tensor kept;
        using (var scope = TensorScope.Begin())
        {
            var a = Tensor.Ones(new Shape(1000));
            var b = a.View(10, 100);
            kept = scope.Keep(Tensor.Full(new Shape(5), 2f));
            Assert.That(scope.Count, Is.EqualTo(2));
        }

        Assert.That(Storage.LiveBytes, Is.EqualTo(liveBefore + (5 * sizeof(float))));
        Assert.That(kept.ToArray<float>(), Is.All.EqualTo(2f));
        kept.Dispose();
        Assert.That(Storage.LiveBytes, Is.EqualTo(liveBefore));
    }

    [Test]
    public void Scopes_must_close_innermost_first()
    {
        var outer = TensorScope.Begin();
        var inner = TensorScope.Begin();
        Assert.That(outer.Dispose, Throws.InvalidOperationException.With.Message.Contains("out of order"));
        inner.Dispose();
        outer.Dispose();
    }

    [Test]
    public void Using_a_disposed_tensor_names_it()
    {
        var x = Tensor.Zeros(new Shape(2, 2));
        x.Name = "weights";
        x.Dispose();
        Assert.That(() => x.ToArray<float>(), Throws.TypeOf<ObjectDisposedException>().With.Message.Contains("'weights'"));
    }

    [Test]
    public void Host_copies_check_dtype_and_length()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros(new Shape(4));
        Assert.That(() => x.ToArray<int>(), Throws.ArgumentException.With.Message.Contains("Float32"));
        Assert.That(() => x.CopyFrom<float>([1f, 2f]), Throws.ArgumentException.With.Message.Contains("4 elements"));
        Assert.That(() => x.View(3, 2), Throws.ArgumentException.With.Message.Contains("[3, 2]"));
    }

    [Test]
    public void Devices_parse_from_their_names()
    {
        Assert.That(Device.Parse("cpu"), Is.EqualTo(Device.Cpu));
        Assert.That(Device.Parse("cuda"), Is.EqualTo(Device.Cuda(0)));
        Assert.That(Device.Parse("CUDA:3"), Is.EqualTo(Device.Cuda(3)));
        Assert.That(() => Device.Parse("gpu"), Throws.TypeOf<FormatException>().With.Message.Contains("cuda:N"));
    }

    [Test]
    public void Clone_copies_and_item_reads_scalars()
    {
        using var scope = TensorScope.Begin();
        var x = Rand.Tensor(new Shape(1), 3);
        var y = x.Clone();
        x.Context.Ops.Fill(x, 5f);
        Assert.That(x.Item(), Is.EqualTo(5f));
        Assert.That(y.Item(), Is.Not.EqualTo(5f));
    }
}
