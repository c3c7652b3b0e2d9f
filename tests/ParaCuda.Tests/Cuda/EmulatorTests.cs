using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Native;
using ParaCuda.Tensors;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Cuda;

/// <summary>
/// The emulated device is stricter than kind: each test plants a bug that a friendlier emulator (blocks in
/// order, threads in order, zeroed memory, no limits) lets pass, and that a GPU shows only sometimes, and
/// checks that the emulated device catches it and says what it caught. The kernels are launched through the
/// backend's own launch code.
/// </summary>
[Category("Emulator")]
public class EmulatorTests
{
    private const string PlantedKernels = """
        #include "common.cuh"

        // Block b writes partial[b]; the last block assumes all others are done and sums them. Wrong: blocks
        // run in any order, and nothing orders one block's writes before another's reads.
        extern "C" __global__ void last_block_sums(const float* __restrict__ x, int n, float* __restrict__ partial, float* __restrict__ total)
        {
            const float s = block_sum(x[blockIdx.x * blockDim.x + threadIdx.x]);
            if (threadIdx.x == 0)
                partial[blockIdx.x] = s;
            if (blockIdx.x == gridDim.x - 1 && threadIdx.x == 0)
            {
                float sum = 0.0f;
                for (int b = 0; b < gridDim.x; ++b)
                    sum += partial[b];
                total[0] = sum;
            }
        }

        // Each thread reads its neighbour's shared-memory write without a barrier in between.
        extern "C" __global__ void neighbour_without_barrier(float* out)
        {
            __shared__ float s[256];
            s[threadIdx.x] = (float)threadIdx.x;
            out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
        }

        // Adds into out as if fresh memory were zero.
        extern "C" __global__ void accumulate_into_fresh(const float* __restrict__ x, int n, float* __restrict__ out)
        {
            const int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i < n)
                out[i] += x[i];
        }

        // Writes one element past the end of its n-element output.
        extern "C" __global__ void one_past_the_end(int n, float* out)
        {
            const int i = blockIdx.x * blockDim.x + threadIdx.x;
            if (i <= n)
                out[i] = 1.0f;
        }

        // Half the warp returns, then the rest shuffle with a full mask.
        extern "C" __global__ void shuffle_after_exit(float* out)
        {
            if (threadIdx.x >= 16)
                return;
            out[threadIdx.x] = warp_sum(1.0f);
        }

        // Lanes 0-15 reach a block barrier while lanes 16-31 reach a full-warp shuffle.
        extern "C" __global__ void diverged_collectives(float* out)
        {
            if (threadIdx.x < 16)
                __syncthreads();
            else
                out[threadIdx.x] = warp_sum(1.0f);
        }

        // One warp: d = a·b for a 16×16 and b 16×8 (row-major float32) on the bf16 tensor cores. With wrong set,
        // the slip of taking the second register for the second k-half (it holds rows 8-15) instead of the third.
        extern "C" __global__ void bf16_tile(const float* __restrict__ a, const float* __restrict__ b, int wrong, float* __restrict__ d)
        {
            const int g = threadIdx.x / 4, t = threadIdx.x % 4;
            unsigned int fa[4] = {
                pack_bf16x2(a[g * 16 + 2 * t], a[g * 16 + 2 * t + 1]),
                pack_bf16x2(a[(g + 8) * 16 + 2 * t], a[(g + 8) * 16 + 2 * t + 1]),
                pack_bf16x2(a[g * 16 + 2 * t + 8], a[g * 16 + 2 * t + 9]),
                pack_bf16x2(a[(g + 8) * 16 + 2 * t + 8], a[(g + 8) * 16 + 2 * t + 9])};
            if (wrong)
            {
                const unsigned int swap = fa[1];
                fa[1] = fa[2];
                fa[2] = swap;
            }
            const unsigned int fb[2] = {pack_bf16x2(b[2 * t * 8 + g], b[(2 * t + 1) * 8 + g]), pack_bf16x2(b[(2 * t + 8) * 8 + g], b[(2 * t + 9) * 8 + g])};
            const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float out[4];
            mma_bf16_m16n8k16(out, fa, fb, zero);
            d[g * 8 + 2 * t] = out[0];
            d[g * 8 + 2 * t + 1] = out[1];
            d[(g + 8) * 8 + 2 * t] = out[2];
            d[(g + 8) * 8 + 2 * t + 1] = out[3];
        }

        // Uses as much dynamic shared memory as it is launched with.
        extern "C" __global__ void big_shared(int words, float* out)
        {
            PC_DYNAMIC_SHARED(float, tile);
            for (int i = threadIdx.x; i < words; i += blockDim.x)
                tile[i] = (float)i;
            __syncthreads();
            if (threadIdx.x == 0)
                out[0] = tile[words - 1];
        }
        """;

    private static string s_folder = null!;

    [OneTimeSetUp]
    public void WriteKernels()
    {
        if (CudaDevices.EmulatorUnavailable() is { } reason)
        {
            Assert.Ignore(reason);
        }

        s_folder = Directory.CreateTempSubdirectory("paracuda-planted-").FullName;
        var kernels = KernelSources.Load();
        foreach (var (name, text) in kernels.Headers.Concat(kernels.Kernels))
        {
            File.WriteAllText(Path.Combine(s_folder, name), text);
        }

        File.WriteAllText(Path.Combine(s_folder, "planted.cu"), PlantedKernels);
    }

    [OneTimeTearDown]
    public void DeleteKernels()
    {
        if (s_folder is not null)
        {
            Directory.Delete(s_folder, recursive: true);
        }
    }

    [TestCase(1UL)]
    [TestCase(2UL)]
    public void A_block_that_reads_other_blocks_output_sees_them_unfinished(ulong seed)
    {
        using var backend = Planted(seed);
        using var scope = TensorScope.Begin();
        var ctx = Context(backend);
        const int blocks = 64;
        var x = Tensor.Full(new Shape(blocks * 256), 1f, DType.Float32, ctx);
        var partial = Tensor.Full(new Shape(blocks), 0f, DType.Float32, ctx);
        var total = Tensor.Full(new Shape(1), 0f, DType.Float32, ctx);
        Launch(backend, "last_block_sums", blocks, 256, P(x), blocks * 256, P(partial), P(total));
        Assert.That(total.Item(), Is.Not.EqualTo(blocks * 256f), "blocks run in a random order, so the last block sums before others wrote");
    }

    [TestCase(1UL)]
    [TestCase(2UL)]
    public void A_thread_that_reads_shared_memory_before_the_barrier_sees_garbage(ulong seed)
    {
        using var backend = Planted(seed);
        using var scope = TensorScope.Begin();
        var ctx = Context(backend);
        var output = Tensor.Empty(new Shape(4 * 256), DType.Float32, ctx);
        Launch(backend, "neighbour_without_barrier", 4, 256, P(output));
        var expected = Enumerable.Range(0, 4 * 256).Select(i => (float)((i % 256 + 1) % 256)).ToArray();
        var wrong = output.ToArray<float>().Zip(expected).Count(p => p.First != p.Second);
        Assert.That(wrong, Is.GreaterThan(0), "threads run in a random order over shared memory that starts as NaN");
    }

    [Test]
    public void A_kernel_that_adds_into_fresh_memory_reads_nan()
    {
        using var backend = Planted(1);
        using var scope = TensorScope.Begin();
        var ctx = Context(backend);
        var x = Tensor.Full(new Shape(100), 1f, DType.Float32, ctx);
        var output = Tensor.Empty(new Shape(100), DType.Float32, ctx);
        Launch(backend, "accumulate_into_fresh", 1, 128, P(x), 100, P(output));
        Assert.That(output.ToArray<float>(), Is.All.NaN, "fresh allocations hold NaN, as a GPU's hold garbage");
    }

    [Test]
    public void A_write_past_the_end_names_the_kernel_and_the_buffer()
    {
        using var backend = Planted(1);
        var ctx = Context(backend);
        using var output = Tensor.Empty(new Shape(100), DType.Float32, ctx);
        Launch(backend, "one_past_the_end", 1, 128, 100, P(output));
        var error = Assert.Throws<CudaException>(ctx.Synchronize)!;
        Assert.That(error.Message, Does.Contain("one_past_the_end").And.Contain("past the end of the 400-byte buffer").And.Contain("argument 1"));
        Assert.That(() => Tensor.Empty(new Shape(1), DType.Float32, ctx), Throws.TypeOf<CudaException>().With.Message.Contains("sticky"), "the error is sticky, as on a GPU");
    }

    [Test]
    public void A_shuffle_whose_mask_names_exited_lanes_is_an_error()
    {
        using var backend = Planted(1);
        var ctx = Context(backend);
        using var output = Tensor.Empty(new Shape(32), DType.Float32, ctx);
        Launch(backend, "shuffle_after_exit", 1, 32, P(output));
        Assert.That(ctx.Synchronize, Throws.TypeOf<CudaException>().With.Message.Contains("shuffle_after_exit").And.Message.Match("exited|returned"));
    }

    [Test]
    public void Lanes_that_meet_at_different_collectives_are_an_error()
    {
        using var backend = Planted(1);
        var ctx = Context(backend);
        using var output = Tensor.Empty(new Shape(32), DType.Float32, ctx);
        Launch(backend, "diverged_collectives", 1, 32, P(output));
        Assert.That(ctx.Synchronize, Throws.TypeOf<CudaException>().With.Message.Contains("diverged_collectives").And.Message.Contains("__syncthreads").And.Message.Contains("warp collective"));
    }

    [Test]
    public void Launch_limits_are_enforced_with_the_kernel_and_the_numbers()
    {
        using var backend = Planted(1);
        var ctx = Context(backend);
        using var output = Tensor.Empty(new Shape(32), DType.Float32, ctx);
        var kernel = backend.Kernel("planted.cu", "neighbour_without_barrier");
        Assert.Multiple(() =>
        {
            Assert.That(() => ctx.Launch(kernel, new Dim3(1, 98500), new Dim3(32), 0, P(output)), Throws.TypeOf<CudaException>().With.Message.Contains("neighbour_without_barrier").And.Message.Contains("98500").And.Message.Contains("65535"));
            Assert.That(() => ctx.Launch(kernel, new Dim3(1), new Dim3(2048), 0, P(output)), Throws.TypeOf<CudaException>().With.Message.Contains("2048 threads").And.Message.Contains("1024"));
            Assert.That(() => ctx.Launch(kernel, new Dim3(1), new Dim3(32), 0), Throws.TypeOf<CudaException>().With.Message.Contains("0 arguments for a kernel of 1 parameters"));
        });

        // The device refuses more than 48 KB of dynamic shared memory until the kernel's attribute is raised;
        // the backend's launch raises it itself.
        var big = backend.Kernel("planted.cu", "big_shared");
        const int Words = 16 * 1024;
        Assert.That(() => RawLaunch(backend, big, Words * 4, Words, P(output)), Throws.TypeOf<CudaException>().With.Message.Contains("big_shared").And.Message.Contains("65536 bytes of dynamic shared memory need cuFuncSetAttribute"));
        ctx.Launch(big, new Dim3(1), new Dim3(256), Words * 4, Words, P(output));
        Assert.That(output.ToArray<float>()[0], Is.EqualTo(Words - 1), "the backend raised the attribute and the launch ran");
    }

    [Test]
    public void Work_on_one_stream_reading_another_streams_output_without_a_wait_is_a_race()
    {
        using var backend = Planted(1);
        using var scope = TensorScope.Begin();
        var (a, b) = (backend.DefaultContext, backend.CreateContext("other"));
        var produced = Tensor.Empty(new Shape(1000), DType.Float32, a);
        a.Ops.Fill(produced, 3f);
        var consumed = Tensor.Empty(new Shape(1000), DType.Float32, b);
        using var unordered = produced.Detach();
        Assert.That(() => b.Ops.Scale(unordered, 2f, consumed), Throws.TypeOf<CudaException>().With.Message.Contains("race").And.Message.Contains("wrote"), "the missing wait fails every time, whatever the timing");

        b.WaitFor(a);
        b.Ops.Scale(unordered, 2f, consumed);
        Assert.That(consumed.ToArray<float>(), Is.All.EqualTo(6f), "with the wait the same work is fine");
    }

    [Test]
    public void A_kernel_given_freed_memory_is_refused()
    {
        using var backend = Planted(1);
        var gpu = backend.Gpu;
        var pointer = gpu.Allocate(400);
        gpu.Free(pointer);
        Assert.That(() => Launch(backend, "one_past_the_end", 1, 32, 10, pointer), Throws.TypeOf<CudaException>().With.Message.Contains("no live allocation"));
    }

    [Test]
    public void Streams_run_concurrently_on_threads_of_their_own()
    {
        using var backend = Planted(1);
        using var scope = TensorScope.Begin();
        var (a, b) = (Context(backend), (CudaContext)backend.CreateContext("other"));
        var x = Tensor.Full(new Shape(10), 1f, DType.Float32, b);
        var gpu = (EmulatedGpu)backend.Gpu;
        using (gpu.HoldStream(a.Stream))
        {
            var y = Tensor.Empty(new Shape(10), DType.Float32, b);
            b.Ops.Scale(x, 5f, y);
            Assert.That(y.ToArray<float>(), Is.All.EqualTo(5f), "stream b finishes while stream a is held");
        }

        a.Synchronize();
    }

    [Test]
    public void The_epilogues_add_a_bias_per_row_and_sum_op_b_over_k_per_column()
    {
        // cuBLASLt's contract, column-major: op(A) 2×3, op(B) = Bᵀ 3×2 (B stored 2×3), D 2×2.
        using var backend = Planted(1);
        using var scope = TensorScope.Begin();
        var ctx = Context(backend);
        var a = Tensor.FromArray([1f, 4f, 2f, 5f, 3f, 6f], new Shape(6), ctx); // columns (1, 4), (2, 5), (3, 6)
        var b = Tensor.FromArray([1f, 10f, 2f, 20f, 3f, 30f], new Shape(6), ctx); // B = [[1, 2, 3], [10, 20, 30]]
        var call = new GemmCall(false, true, 2, 2, 3, 1f, P(a), 2, 0, P(b), 2, 0, 0f, 0, 2, 0, 1, BlasCompute.Fp32);
        var (d, bias) = (Tensor.Full(new Shape(4), float.NaN, DType.Float32, ctx), Tensor.FromArray([100f, 200f], new Shape(2), ctx));
        Assert.That(backend.Gpu.GemmEpilogue(ctx.Blas, call with { C = P(d) }, LtEpilogue.Bias, P(bias), 0), Is.True);
        Assert.That(d.ToArray<float>(), Is.EqualTo(new[] { 14f + 100f, 32f + 200f, 140f + 100f, 320f + 200f }), "D[i, j] = Σ A[i, l]·B[j, l] + bias[i]");
        var gradient = Tensor.Full(new Shape(2), float.NaN, DType.Float32, ctx);
        Assert.That(backend.Gpu.GemmEpilogue(ctx.Blas, call with { C = P(d) }, LtEpilogue.BiasGradientB, P(gradient), 0), Is.True);
        Assert.That(gradient.ToArray<float>(), Is.EqualTo(new[] { 6f, 60f }), "vector[j] = Σ_k op(B)[k, j], one per column of D");
        Assert.That(d.ToArray<float>(), Is.EqualTo(new[] { 14f, 32f, 140f, 320f }), "and D the plain product");
    }

    [Test]
    public void The_bf16_tensor_core_product_follows_the_ptx_layout_and_rounds_to_nearest_even()
    {
        using var backend = Planted(1);
        using var scope = TensorScope.Begin();
        var ctx = Context(backend);
        var (a, b) = (Rand.Values(16 * 16, 71), Rand.Values(16 * 8, 72));
        // Exact bf16 products summed in double: what the tensor cores compute up to the final rounding.
        var expected = new double[16 * 8];
        for (var i = 0; i < 16; i++)
        {
            for (var j = 0; j < 8; j++)
            {
                for (var k = 0; k < 16; k++)
                {
                    expected[(i * 8) + j] += Bf16((float)a[(i * 16) + k]) * Bf16((float)b[(k * 8) + j]);
                }
            }
        }

        var (ga, gb) = (Rand.Tensor(a, new Shape(256)), Rand.Tensor(b, new Shape(128)));
        double Error(int wrong)
        {
            var d = Tensor.Full(new Shape(128), float.NaN, DType.Float32, ctx);
            Launch(backend, "bf16_tile", 1, 32, P(Tensor.FromArray(ga.ToArray<float>(), ga.Shape, ctx)), P(Tensor.FromArray(gb.ToArray<float>(), gb.Shape, ctx)), wrong, P(d));
            return Close.RelativeError(d.ToArray<float>().Select(v => (double)v).ToArray(), expected);
        }

        Assert.That(Error(0), Is.LessThan(1e-6), "the PTX layout, round to nearest even");
        Assert.That(Error(1), Is.GreaterThan(0.05), "a planted slip in the A fragment is far off");
    }

    /// <summary>x rounded to bf16, to nearest even.</summary>
    private static double Bf16(float x)
    {
        var bits = BitConverter.SingleToUInt32Bits(x);
        return BitConverter.UInt32BitsToSingle((bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u);
    }

    [Test]
    public void A_tensor_core_kernel_with_the_wrong_fragment_layout_computes_wrong_numbers()
    {
        // The natural slip: handing the scores' accumulator fragment to P·V as if it were in the A layout.
        const string Right = "{to_tf32(c[0]), to_tf32(c[2]), to_tf32(c[1]), to_tf32(c[3])}";
        const string Wrong = "{to_tf32(c[0]), to_tf32(c[1]), to_tf32(c[2]), to_tf32(c[3])}";
        var folder = Directory.CreateTempSubdirectory("paracuda-planted-layout-").FullName;
        try
        {
            var kernels = KernelSources.Load();
            foreach (var (name, text) in kernels.Headers.Concat(kernels.Kernels))
            {
                File.WriteAllText(Path.Combine(folder, name), text);
            }

            var source = kernels.Headers["attention_tc.cuh"];
            Assert.That(source, Does.Contain(Right), "the kernels still build P's fragment this way");
            File.WriteAllText(Path.Combine(folder, "attention_tc.cuh"), source.Replace(Right, Wrong, StringComparison.Ordinal));
            var error = TensorCoreAttentionError(KernelSources.Load(folder));
            Assert.That(error, Is.GreaterThan(0.05), "the planted layout is far off");
            Assert.That(TensorCoreAttentionError(kernels), Is.LessThan(2e-3), "the right one is not");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Relative error of the TF32 attention forward on the emulated device against the CPU.</summary>
    private static double TensorCoreAttentionError(KernelSources sources)
    {
        using var backend = CudaBackend.Open(EmulatedGpu.Create(new EmulatorOptions { Seed = 1 }), sources: sources, precision: GemmPrecision.Tf32);
        using var scope = TensorScope.Begin();
        var qkv = Rand.Tensor(new Shape(1, 24, 3 * 32), 64);
        var output = Tensor.Empty(new Shape(1, 24, 32));
        CpuBackend.Instance.DefaultContext.Ops.Attention(qkv, 1, output, null);
        var ctx = backend.DefaultContext;
        var device = Tensor.Full(output.Shape, float.NaN, DType.Float32, ctx);
        ctx.Ops.Attention(Tensor.FromArray(qkv.ToArray<float>(), qkv.Shape, ctx), 1, device, null);
        return Close.RelativeError(device.ToArray<float>().Select(v => (double)v).ToArray(), output.ToDoubles());
    }

    /// <summary>A backend over the project's kernels plus planted.cu.</summary>
    private static CudaBackend Planted(ulong seed) =>
        CudaBackend.Open(EmulatedGpu.Create(new EmulatorOptions { Seed = seed }), sources: KernelSources.Load(s_folder), precision: GemmPrecision.Fp32);

    private static CudaContext Context(CudaBackend backend) => (CudaContext)backend.DefaultContext;

    /// <summary>A launch straight to the device, past the backend's launch code.</summary>
    private static unsafe void RawLaunch(CudaBackend backend, KernelFunction kernel, int sharedBytes, params ReadOnlySpan<KernelArgument> arguments)
    {
        var slots = stackalloc ulong[arguments.Length];
        var pointers = stackalloc void*[arguments.Length];
        KernelArgument.Pack(arguments, slots, pointers);
        backend.Gpu.Launch(kernel.Handle, new Dim3(1), new Dim3(256), sharedBytes, Context(backend).Stream, pointers, arguments.Length, []);
    }

    private static ulong P(Tensor t) => ((CudaStorage)t.Storage).Pointer;

    private static void Launch(CudaBackend backend, string kernel, uint blocks, uint threads, params ReadOnlySpan<KernelArgument> arguments) =>
        Context(backend).Launch(backend.Kernel("planted.cu", kernel), new Dim3(blocks), new Dim3(threads), 0, arguments);
}
