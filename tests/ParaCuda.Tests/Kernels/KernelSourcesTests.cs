using ParaCuda.Backends.Cuda;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Kernels;

public class KernelSourcesTests
{
    private static string RepositoryKernels() => Path.Combine(Repository.Root, "kernels");

    [Test]
    public void The_embedded_kernels_are_the_repository_s_kernels()
    {
        var embedded = KernelSources.Load();
        var folder = KernelSources.Load(RepositoryKernels());
        Assert.Multiple(() =>
        {
            Assert.That(embedded.Origin, Is.EqualTo("embedded"));
            Assert.That(embedded.Kernels, Is.EquivalentTo(folder.Kernels));
            Assert.That(embedded.Headers, Is.EquivalentTo(folder.Headers));
            Assert.That(embedded.Headers.Keys, Does.Contain("common.cuh"));
        });
    }

    [Test]
    public void A_kernel_folder_replaces_the_embedded_copy()
    {
        var directory = Directory.CreateTempSubdirectory("paracuda-kernels-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(directory, "mine.cu"), "extern \"C\" __global__ void mine(float* x) { x[0] = 1.0f; }\n");
            File.WriteAllText(Path.Combine(directory, "notes.txt"), "not a kernel");
            var sources = KernelSources.Load(directory);
            Assert.Multiple(() =>
            {
                Assert.That(sources.Origin, Is.EqualTo(Path.GetFullPath(directory)));
                Assert.That(sources.Kernels.Keys, Is.EqualTo(new[] { "mine.cu" }));
                Assert.That(sources.Headers, Is.Empty);
            });
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void A_missing_or_empty_kernel_folder_is_named()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"paracuda-no-kernels-{Guid.NewGuid():N}");
        Assert.That(() => KernelSources.Load(missing), Throws.InstanceOf<DirectoryNotFoundException>().With.Message.Contains(missing));
        var empty = Directory.CreateTempSubdirectory("paracuda-kernels-").FullName;
        try
        {
            Assert.That(() => KernelSources.Load(empty), Throws.InstanceOf<FileNotFoundException>().With.Message.Contains("no .cu file"));
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    [Test]
    public void Entry_points_are_the_extern_c_global_functions()
    {
        const string Source = """
            __device__ float helper(float x) { return x; }
            extern "C" __global__ void first(float* x) { }
            extern  "C"  __global__  void second (const float* __restrict__ x, int n) { }
            __global__ void mangled(float* x) { }
            """;
        Assert.That(KernelSources.EntryPoints(Source), Is.EqualTo(new[] { "first", "second" }));
    }
}
