using ParaCuda.Native;

namespace ParaCuda.Tests.Gpu;

public class DriverTests : GpuTestFixture
{
    [Test]
    public void The_driver_initialises_and_reports_a_device()
    {
        Assert.That(CudaDriver.IsAvailable, Is.True);
        Assert.That(CudaDriver.UnavailableReason, Is.Null);
    }
}
