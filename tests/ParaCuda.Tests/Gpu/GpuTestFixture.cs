using ParaCuda.Native;

namespace ParaCuda.Tests.Gpu;

/// <summary>
/// Base of every test that needs a CUDA device (category "Gpu"). Without a driver and a device the
/// whole fixture is skipped, and the skip message says why.
/// </summary>
[Category("Gpu")]
public abstract class GpuTestFixture
{
    [OneTimeSetUp]
    public void RequireCudaDevice()
    {
        if (!CudaDriver.IsAvailable)
        {
            Assert.Ignore($"GPU test skipped: {CudaDriver.UnavailableReason}");
        }
    }
}
