using ParaCuda.Backends.Cuda;
using ParaCuda.Native;

namespace ParaCuda.Tests.Kernels;

/// <summary>
/// Every kernel compiles with NVRTC for sm_80 and sm_90, without a warning, and exports the entry points
/// its source declares. NVRTC needs no GPU, so CI runs these (it installs Debian's libnvrtc11.2 and sets
/// PARACUDA_REQUIRE_NVRTC=1, which turns a missing NVRTC into a failure instead of a skip).
/// </summary>
[Category("Nvrtc")]
public class KernelCompileTests
{
    private static readonly int[] s_architectures = [80, 90];

    private static IEnumerable<TestCaseData> KernelsByArchitecture() =>
        KernelSources.Load().Kernels.Keys.SelectMany(file => s_architectures.Select(arch => new TestCaseData(file, arch).SetName($"{file} compiles for sm_{arch}")));

    [OneTimeSetUp]
    public void RequireNvrtc()
    {
        if (Nvrtc.IsAvailable)
        {
            return;
        }

        if (Environment.GetEnvironmentVariable("PARACUDA_REQUIRE_NVRTC") == "1")
        {
            Assert.Fail($"PARACUDA_REQUIRE_NVRTC=1 but {Nvrtc.UnavailableReason}");
        }

        Assert.Ignore($"NVRTC compile check skipped: {Nvrtc.UnavailableReason}");
    }

    [TestCaseSource(nameof(KernelsByArchitecture))]
    public void Kernel_compiles_cleanly_and_exports_its_entry_points(string file, int architecture)
    {
        var sources = KernelSources.Load();
        var output = KernelCompiler.Compile(sources, file, architecture);
        var entries = KernelSources.EntryPoints(sources.Kernels[file]);
        Assert.Multiple(() =>
        {
            Assert.That(output.Log, Is.Empty, "NVRTC warnings count as failures");
            Assert.That(output.Ptx, Does.Contain($".target sm_{architecture}"));
            Assert.That(entries, Is.Not.Empty, $"{file} declares no extern \"C\" __global__ function");
            foreach (var entry in entries)
            {
                Assert.That(output.Ptx, Does.Contain($".entry {entry}("), $"{entry} is not exported under its own name");
            }
        });
    }

    /// <summary>The attention files are compiled once per head dimension: every per-lane count from 1 to 8, and the partial chunks of head dims that are not multiples of 32.</summary>
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(48)]
    [TestCase(96)]
    [TestCase(128)]
    [TestCase(200)]
    [TestCase(256)]
    public void Attention_compiles_cleanly_for_every_head_dim(int headDim)
    {
        var sources = KernelSources.Load();
        foreach (var file in new[] { "attention_forward.cu", "attention_backward.cu" })
        {
            var output = KernelCompiler.Compile(sources, file, 90, defines: [$"PC_HEAD_DIM={headDim}"]);
            Assert.That(output.Log, Is.Empty, $"{file} with head dim {headDim}: NVRTC warnings count as failures");
        }
    }

    [TestCase(80, 64)]
    [TestCase(90, 32)]
    [TestCase(90, 128)]
    public void The_bf16_tensor_core_kernels_compile_to_bf16_mma(int architecture, int headDim)
    {
        var sources = KernelSources.Load();
        foreach (var file in new[] { "attention_forward_tc.cu", "attention_backward_tc.cu", "linear_tc.cu" })
        {
            var output = KernelCompiler.Compile(sources, file, architecture, defines: [$"PC_HEAD_DIM={headDim}", "PC_BF16=1"]);
            Assert.That(output.Log, Is.Empty, $"{file}: NVRTC warnings count as failures");
            Assert.That(output.Ptx, Does.Contain("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"), $"{file} multiplies in bf16");
            Assert.That(output.Ptx, Does.Contain("cvt.rn.bf16x2.f32"), $"{file} rounds its operands to bf16");
            Assert.That(output.Ptx, Does.Not.Contain(".tf32"), $"{file} has no TF32 product left");
        }
    }

    private static IEnumerable<TestCaseData> FilesWithActivations() =>
        KernelSources.Load().Kernels.Where(k => k.Value.Contains("act* ", StringComparison.Ordinal)).SelectMany(k => s_architectures.Select(arch => new TestCaseData(k.Key, arch).SetName($"{k.Key} compiles with bf16 activations for sm_{arch}")));

    /// <summary>Files whose activations are `act` also build with bf16 storage (-DPC_STORE_BF16=1), the tensor-core ones in both precisions.</summary>
    [TestCaseSource(nameof(FilesWithActivations))]
    public void Kernels_with_activations_compile_their_bf16_storage_build(string file, int architecture)
    {
        var sources = KernelSources.Load();
        var source = sources.Kernels[file] + (file.Contains("_tc", StringComparison.Ordinal) ? sources.Headers["attention_tc.cuh"] : "");
        string[][] builds = file.Contains("_tc", StringComparison.Ordinal) ? [[], ["PC_BF16=1"]] : [[]];
        foreach (var build in builds)
        {
            var output = KernelCompiler.Compile(sources, file, architecture, defines: ["PC_HEAD_DIM=64", "PC_STORE_BF16=1", .. build]);
            Assert.That(output.Log, Is.Empty, $"{file} {string.Join(" ", build)}: NVRTC warnings count as failures");
            if (source.Contains("store_act", StringComparison.Ordinal))
            {
                Assert.That(output.Ptx, Does.Contain("cvt.rn.bf16.f32"), $"{file} {string.Join(" ", build)} rounds what it stores to bf16");
            }
        }
    }

    [Test]
    public void A_head_dim_beyond_the_kernels_fails_to_compile_with_the_reason()
    {
        var error = Assert.Throws<NvrtcException>(() => KernelCompiler.Compile(KernelSources.Load(), "attention_forward.cu", 90, defines: ["PC_HEAD_DIM=300"]));
        Assert.That(error!.Message, Does.Contain("attention head dims run from 1 to 256"));
    }

    [Test]
    public void A_broken_kernel_names_its_file_and_line()
    {
        var directory = Directory.CreateTempSubdirectory("paracuda-kernels-").FullName;
        try
        {
            var common = KernelSources.Load().Headers["common.cuh"];
            File.WriteAllText(Path.Combine(directory, "common.cuh"), common);
            File.WriteAllText(Path.Combine(directory, "broken.cu"), "#include \"common.cuh\"\n\nextern \"C\" __global__ void broken(float* x)\n{\n    x[0] = undefined_name;\n}\n");
            var sources = KernelSources.Load(directory);
            var error = Assert.Throws<NvrtcException>(() => KernelCompiler.Compile(sources, "broken.cu", 80));
            Assert.That(error!.Message, Does.Contain("broken.cu(5)").And.Contain("undefined_name"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void Nvrtc_targets_the_architectures_we_compile_for()
    {
        Assert.That(Nvrtc.SupportedArchitectures, Is.SupersetOf(s_architectures), $"NVRTC {Nvrtc.Version}");
    }

    [Test]
    public void A_gpu_newer_than_nvrtc_gets_ptx_for_the_newest_architecture_nvrtc_knows()
    {
        var newest = Nvrtc.SupportedArchitectures.Max();
        Assert.That(KernelCompiler.Target(80), Is.EqualTo((80, true)), "a known GPU gets its own cubin");
        Assert.That(KernelCompiler.Target(newest + 10), Is.EqualTo((newest, false)), "an unknown newer GPU gets PTX the driver can finish");
        Assert.That(() => KernelCompiler.Target(10), Throws.TypeOf<NvrtcException>().With.Message.Contains("sm_10"));
    }

    [Test]
    public void The_disk_cache_compiles_once_and_recompiles_an_edited_kernel()
    {
        var root = Directory.CreateTempSubdirectory("paracuda-cache-").FullName;
        try
        {
            var kernels = Directory.CreateDirectory(Path.Combine(root, "kernels")).FullName;
            File.WriteAllText(Path.Combine(kernels, "common.cuh"), KernelSources.Load().Headers["common.cuh"]);
            File.WriteAllText(Path.Combine(kernels, "fill.cu"), "#include \"common.cuh\"\nextern \"C\" __global__ void fill(float* x) { x[threadIdx.x] = PC_HEAD_DIM; }\n");
            var cache = new KernelCache(Path.Combine(root, "cache"));

            var first = cache.Get(KernelSources.Load(kernels), "fill.cu", 80);
            var reader = new KernelCache(cache.Directory);
            var again = reader.Get(KernelSources.Load(kernels), "fill.cu", 80);
            var otherArchitecture = cache.Get(KernelSources.Load(kernels), "fill.cu", 90);
            var otherDefine = cache.Get(KernelSources.Load(kernels), "fill.cu", 80, ["PC_HEAD_DIM=32"]);
            File.WriteAllText(Path.Combine(kernels, "fill.cu"), "#include \"common.cuh\"\nextern \"C\" __global__ void fill(float* x) { x[threadIdx.x] = 2.0f; }\n");
            var edited = cache.Get(KernelSources.Load(kernels), "fill.cu", 80);
            File.WriteAllText(Path.Combine(kernels, "common.cuh"), KernelSources.Load().Headers["common.cuh"] + "\n// an edited header\n");
            cache.Get(KernelSources.Load(kernels), "fill.cu", 80);

            Assert.Multiple(() =>
            {
                Assert.That(cache.Misses, Is.EqualTo(5), "first compile, sm_90, another define, edited kernel, edited header");
                Assert.That((reader.Hits, reader.Misses), Is.EqualTo((1, 0)), "a second cache over the same folder reads the cubin from disk");
                Assert.That(first.IsCubin, Is.True, "NVRTC knows sm_80, so the GPU gets a cubin");
                Assert.That(again.Image, Is.EqualTo(first.Image));
                Assert.That(otherArchitecture.Image, Is.Not.EqualTo(first.Image));
                Assert.That(otherDefine.Image, Is.Not.EqualTo(first.Image));
                Assert.That(edited.Image, Is.Not.EqualTo(first.Image));
                Assert.That(Directory.GetFiles(cache.Directory, "*.cubin"), Has.Length.EqualTo(5));
                Assert.That(Directory.GetFiles(cache.Directory, "*.tmp"), Is.Empty);
            });
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
