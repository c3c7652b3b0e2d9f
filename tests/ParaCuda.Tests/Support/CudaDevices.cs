using ParaCuda.Backends.Cuda;
using ParaCuda.Backends.Cuda.Emulator;
using ParaCuda.Native;

namespace ParaCuda.Tests.Support;

/// <summary>
/// The CUDA devices tests run on: the emulated device (CI, category "Emulator") and a real GPU (category
/// "Gpu"). Without g++ the emulated fixtures skip, unless PARACUDA_REQUIRE_EMULATOR=1 (as CI sets) turns the
/// skip into a failure; without a driver the GPU fixtures skip with the driver's reason.
/// </summary>
internal static class CudaDevices
{
    public const string RequireEmulatorVariable = "PARACUDA_REQUIRE_EMULATOR";

    /// <summary>Why the emulated device cannot run here, or null; fails when CI requires it.</summary>
    public static string? EmulatorUnavailable()
    {
        if (EmulatedGpu.UnavailableReason is not { } reason)
        {
            EmulatedGpu.Prepare(KernelSources.Load());
            return null;
        }

        return Environment.GetEnvironmentVariable(RequireEmulatorVariable) == "1"
            ? throw new InvalidOperationException($"{RequireEmulatorVariable}=1 but {reason}")
            : $"emulated CUDA device skipped: {reason}";
    }

    public static string? GpuUnavailable() => CudaDriver.IsAvailable ? null : $"GPU test skipped: {CudaDriver.UnavailableReason}";

    public static CudaBackend Emulated(ulong seed, GemmPrecision precision = GemmPrecision.Fp32, int index = 0) =>
        CudaBackend.Open(EmulatedGpu.Create(new EmulatorOptions { Seed = seed }), index, precision);

    public static CudaBackend Gpu(GemmPrecision precision = GemmPrecision.Fp32, int index = 0) =>
        CudaBackend.Open(DriverGpu.Open(0), index, precision);
}

/// <summary>The base of tests that run the same code on the emulated device and on a GPU.</summary>
public abstract class CudaDeviceTests
{
    private protected CudaBackend Backend { get; private set; } = null!;

    /// <summary>Why this fixture cannot run here, or null.</summary>
    private protected abstract string? UnavailableReason { get; }

    /// <summary>A backend on this fixture's kind of device (logical index <paramref name="index"/>).</summary>
    private protected abstract CudaBackend Open(GemmPrecision precision = GemmPrecision.Fp32, int index = 0);

    [OneTimeSetUp]
    public void OpenDevice()
    {
        if (UnavailableReason is { } reason)
        {
            Assert.Ignore(reason);
        }

        Backend = Open();
    }

    [OneTimeTearDown]
    public void CloseDevice() => Backend?.Dispose();
}
