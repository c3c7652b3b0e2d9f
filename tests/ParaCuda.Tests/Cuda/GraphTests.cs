using System.Runtime.InteropServices;
using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Data;
using ParaCuda.Inference;
using ParaCuda.Models;
using ParaCuda.Native;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// CUDA graphs: work captured on one stream replays on new inputs with the eager results; waiting for a stream
/// while it is captured is refused (and the stream works again after); the memory a graph's capture used goes
/// to no other tensor while the graph lives; and prediction through graphs gives eager prediction's logits.
/// </summary>
public abstract class GraphTests : CudaDeviceTests
{
    private ComputeContext Gpu => Backend.DefaultContext;

    private Tensor Up(float[] values, params int[] dims) => Tensor.FromArray(values, new Shape(dims), Gpu);

    [Test]
    public void Ops_that_read_pointer_tables_replay_on_the_current_inputs()
    {
        // Multi-tensor ops pass their tensors through a table uploaded as they launch. A capture uploads each table
        // once, after it ends, so the table must sit where no captured work writes: here a block the capture
        // filled with a decoy table (one that points at w) and freed just before the sum's table is made.
        using var scope = TensorScope.Begin();
        var (x, z, w) = (Up([1, 2, 3, 4], 4), Up([5, 6], 2), Up([100, 100, 100, 100], 4));
        var granularity = Backend.Gpu.Properties.AllocationGranularity;
        var decoyTable = new int[(Marshal.SizeOf<TensorSlice>() + granularity - 1) / granularity * granularity / 4];
        MemoryMarshal.Write(MemoryMarshal.AsBytes(decoyTable.AsSpan()), new TensorSlice { Data = ((CudaStorage)w.Storage).Pointer, Count = 4 });
        var decoy = Tensor.FromArray(decoyTable, new Shape(decoyTable.Length), Gpu);
        Tensor? sum = null;
        Tensor? squares = null;
        using var graph = Gpu.Capture(() =>
        {
            using var inner = TensorScope.Begin();
            using (var scratch = Tensor.Empty(decoy.Shape, DType.Int32, Gpu))
            {
                Gpu.Ops.Copy(decoy, scratch);
            }

            sum = inner.Keep(Tensor.Empty(new Shape(1), DType.Float32, Gpu));
            Gpu.Ops.SumAll(x, sum);
            squares = inner.Keep(Tensor.Empty(new Shape(2), DType.Float32, Gpu));
            Gpu.Ops.SumOfSquares([x, z], [squares.NarrowView(0, 1), squares.NarrowView(1, 1)]);
        });

        for (var round = 1; round <= 3; round++)
        {
            x.CopyFrom<float>([round, 0, 0, 1]);
            z.CopyFrom<float>([round, round]);
            graph.Replay();
            Assert.That(sum!.ToArray<float>(), Is.EqualTo(new[] { round + 1f }), $"replay {round}: sum");
            Assert.That(squares!.ToArray<float>(), Is.EqualTo(new[] { (round * round) + 1f, 2f * round * round }), $"replay {round}: sums of squares");
        }
    }

    [Test]
    public void A_replay_runs_the_captured_work_on_the_current_inputs()
    {
        using var scope = TensorScope.Begin();
        var x = Up([1, 2, 3, 4], 4);
        var b = Up([10, 20, 30, 40], 4);
        Tensor? y = null;
        using var graph = Gpu.Capture(() =>
        {
            using var inner = TensorScope.Begin();
            var doubled = Tensor.Empty(x.Shape, DType.Float32, Gpu);
            Gpu.Ops.Scale(x, 2f, doubled);
            y = inner.Keep(Tensor.Empty(x.Shape, DType.Float32, Gpu));
            Gpu.Ops.Add(doubled, b, y);
        });

        graph.Replay();
        Assert.That(y!.ToArray<float>(), Is.EqualTo(new float[] { 12, 24, 36, 48 }));
        x.CopyFrom<float>([5, 6, 7, 8]);
        graph.Replay();
        graph.Replay();
        Assert.That(y.ToArray<float>(), Is.EqualTo(new float[] { 20, 32, 44, 56 }), "each replay reads the input as it is then");
    }

    [Test]
    public void Waiting_for_a_captured_stream_is_refused_and_the_stream_works_after()
    {
        using var scope = TensorScope.Begin();
        var x = Up([1, 2, 3], 3);
        var error = Assert.Throws<CudaException>(() => Gpu.Capture(() =>
        {
            Gpu.Ops.Scale(x, 2f, x);
            _ = x.ToArray<float>();
        }))!;
        Assert.Multiple(() =>
        {
            Assert.That(error.Status, Is.EqualTo(CudaDriver.StreamCaptureUnsupported), error.Message);
            Assert.That(x.ToArray<float>(), Is.EqualTo(new float[] { 1, 2, 3 }), "the captured work never ran, and the stream answers again");
        });
    }

    [Test]
    public void Memory_a_graph_uses_goes_to_no_other_tensor_while_it_lives()
    {
        using var scope = TensorScope.Begin();
        var x = Up(new float[4096], 4096);
        ulong used = 0;
        var graph = Gpu.Capture(() =>
        {
            using var temporary = Tensor.Empty(x.Shape, DType.Float32, Gpu);
            used = Pointer(temporary);
            Gpu.Ops.Scale(x, 3f, temporary);
            Gpu.Ops.Add(temporary, x, x);
        });

        using (var other = Tensor.Empty(x.Shape, DType.Float32, Gpu))
        {
            Assert.That(Pointer(other), Is.Not.EqualTo(used), "the block the capture freed stays the graph's");
        }

        graph.Replay();
        graph.Dispose();
        Gpu.Synchronize();
        var blocks = Enumerable.Range(0, 3).Select(_ => Tensor.Empty(x.Shape, DType.Float32, Gpu)).ToList();
        Assert.That(blocks.Select(Pointer), Does.Contain(used), "once the graph is gone and its last replay done, its memory is everyone's again");
    }

    [Test]
    public void A_tensor_from_before_the_capture_freed_inside_it_stays_with_the_graph()
    {
        using var scope = TensorScope.Begin();
        var x = Up(new float[2048], 2048);
        var earlier = Tensor.Empty(x.Shape, DType.Float32, Gpu);
        var used = Pointer(earlier);
        using var graph = Gpu.Capture(() =>
        {
            Gpu.Ops.Scale(x, 2f, earlier);
            Gpu.Ops.Add(earlier, x, x);
            earlier.Dispose();
        });

        using var other = Tensor.Empty(x.Shape, DType.Float32, Gpu);
        Assert.That(Pointer(other), Is.Not.EqualTo(used), "every replay writes it again, so nobody else may have it");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Prediction_through_graphs_gives_the_eager_logits(bool batched)
    {
        var data = Synthetic.Create(20, 10, 1, 28, seed: 4);
        using var model = ModelFactory.Create(SmallModels.Fmnist(3), ModuleInit.Create(2, Gpu, batchedBranches: batched));
        var eager = model.Predict(data, batchSize: 8);
        var replayed = model.Predict(data, batchSize: 8, graphs: true);
        Assert.That(replayed.Logits, Is.EqualTo(eager.Logits), "20 images: two full batches replayed, the last four eager");
    }

    [Test]
    public void Graphs_refuse_a_model_whose_branches_have_streams_of_their_own()
    {
        var streams = Enumerable.Range(0, 3).Select(b => (ComputeContext)Backend.CreateContext($"branch {b}")).ToList();
        using var model = ModelFactory.Create(SmallModels.Fmnist(3), ModuleInit.Create(2, Gpu, streams));
        Assert.That(() => model.Predict(Synthetic.Create(4, 10, 1, 28, seed: 1), graphs: true), Throws.ArgumentException.With.Message.Contains("--branch-exec serial or batched"));
    }

    private static ulong Pointer(Tensor t) => ((CudaStorage)t.Storage).Pointer;
}

[Category("Emulator")]
public sealed class EmulatedGraphTests : GraphTests
{
    private protected override string? UnavailableReason => CudaDevices.EmulatorUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Emulated(1, precision, index);

    [Test]
    public void A_replay_whose_operand_was_freed_since_capture_fails_naming_it()
    {
        using var scope = TensorScope.Begin();
        var context = Backend.DefaultContext;
        var source = Tensor.FromArray(new float[64], new Shape(64), context);
        var target = Tensor.Empty(new Shape(64), DType.Float32, context);
        using var graph = context.Capture(() => context.Ops.Copy(source, target));
        source.Dispose();
        Backend.Synchronize();
        Backend.Allocator.EmptyCache();
        Assert.That(graph.Replay, Throws.TypeOf<CudaException>().With.Message.Contains("no live allocation"));
    }
}

[Category("Gpu")]
public sealed class GpuGraphTests : GraphTests
{
    private protected override string? UnavailableReason => CudaDevices.GpuUnavailable();

    private protected override CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) => CudaDevices.Gpu(precision, index);
}
