using ParaCuda.Autograd;
using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// The stream-ordered caching allocator on the emulated device, whose streams run concurrently and can be
/// held back: memory another stream still reads is not handed out again until that stream is done with it.
/// </summary>
[Category("Emulator")]
public class AllocatorTests
{
    [OneTimeSetUp]
    public void RequireEmulator()
    {
        if (CudaDevices.EmulatorUnavailable() is { } reason)
        {
            Assert.Ignore(reason);
        }
    }

    [Test]
    public void A_block_another_stream_still_reads_is_not_reused_before_that_stream_is_done()
    {
        using var backend = CudaDevices.Emulated(1);
        var gpu = (EmulatedGpu)backend.Gpu;
        var (a, b) = ((CudaContext)backend.DefaultContext, (CudaContext)backend.CreateContext("reader"));
        using var scope = TensorScope.Begin();
        var read = Tensor.Empty(new Shape(1024), DType.Float32, b);
        ulong first;
        using (gpu.HoldStream(b.Stream))
        {
            var t = Tensor.Full(new Shape(1024), 3f, DType.Float32, a);
            first = Pointer(t);
            var alias = F.Transfer(t, b);
            b.Ops.Scale(alias, 2f, read);
            alias.Dispose();
            t.Dispose();

            // Stream b has not run its read yet: the block must not come back on stream a, where a write to
            // it would race with that read (the emulated device would refuse the write).
            var next = Tensor.Empty(new Shape(1024), DType.Float32, a);
            Assert.That(Pointer(next), Is.Not.EqualTo(first), "the block is held back while stream b may still read it");
            a.Ops.Fill(next, 7f);
            next.Dispose();
        }

        Assert.That(read.ToArray<float>(), Is.All.EqualTo(6f), "stream b read what stream a wrote before the free");
        b.Synchronize();
        var later = Tensor.Empty(new Shape(1024), DType.Float32, a);
        Assert.That(Pointer(later), Is.EqualTo(first), "once stream b is done the block comes back");
        a.Ops.Fill(later, 1f);
        a.Synchronize();
    }

    [Test]
    public void A_block_used_by_its_own_stream_only_is_reused_at_once_and_counted()
    {
        using var backend = CudaDevices.Emulated(1);
        var ctx = backend.DefaultContext;
        var t = Tensor.Empty(new Shape(256), DType.Float32, ctx);
        var first = Pointer(t);
        var stats = backend.Memory;
        Assert.That((stats.Allocated, stats.Reserved), Is.EqualTo((1024L, 1024L)));
        t.Dispose();
        Assert.That(backend.Memory.Allocated, Is.EqualTo(0), "released");
        Assert.That(backend.Memory.Reserved, Is.EqualTo(1024), "and cached");
        using var again = Tensor.Empty(new Shape(256), DType.Float32, ctx);
        Assert.That(Pointer(again), Is.EqualTo(first), "the same stream's next request of that size gets the block back");
        Assert.That(backend.Memory.PeakAllocated, Is.EqualTo(1024));
    }

    [Test]
    public void Out_of_memory_empties_the_cache_retries_and_then_names_the_numbers()
    {
        using var backend = CudaBackend.Open(EmulatedGpu.Create(new EmulatorOptions { MemoryBytes = 1 << 20 }), precision: GemmPrecision.Fp32);
        var ctx = backend.DefaultContext;
        Tensor.Empty(new Shape(150_000), DType.Float32, ctx).Dispose();
        using (var fits = Tensor.Empty(new Shape(200_000), DType.Float32, ctx))
        {
            Assert.That(backend.Memory.Reserved, Is.EqualTo(800_000), "the cached 600 kB block was given back to make room");
        }

        var error = Assert.Throws<DeviceOutOfMemoryException>(() => Tensor.Empty(new Shape(1_000_000), DType.Float32, ctx))!;
        Assert.That(error.Message, Does.Contain("out of memory").And.Contain("3.8 MiB").And.Contain("free of 1.0 MiB").And.Contain("smaller --batch"));
    }

    private static ulong Pointer(Tensor t) => ((CudaStorage)t.Storage).Pointer;
}
