using ParaCuda.Native;
using ParaCuda.Tests.Data;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Cli;

/// <summary>
/// The commands on the emulated CUDA device (--device emu), as a user without a GPU runs them, and the
/// device options' mistakes as one-line errors.
/// </summary>
[Category("Emulator")]
[NonParallelizable]
public class DeviceCommandTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void CreateData()
    {
        if (CudaDevices.EmulatorUnavailable() is { } reason)
        {
            Assert.Ignore(reason);
        }

        _dir = Directory.CreateTempSubdirectory("paracuda-device-cli-").FullName;
        for (var f = 0; f < 5; f++)
        {
            DataFiles.CifarFile(Path.Combine(_dir, $"data_batch_{f + 1}.bin"), 8 * f, 8, r => [(byte)(r % 10)]);
        }

        DataFiles.CifarFile(Path.Combine(_dir, "test_batch.bin"), 40, 10, r => [(byte)(r % 10)]);
    }

    [OneTimeTearDown]
    public void DeleteData()
    {
        if (_dir.Length > 0)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    public void Device_options_that_cannot_work_are_one_line_errors()
    {
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "cpu", "--precision", "tf32"), "--precision applies to CUDA devices");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "emu", "--devices", "0,x"), "'x' is not a device number");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "cuda:1", "--devices", "0,2"), "disagree");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "emu", "--devices", "0,1", "--branch-exec", "batched"), "batched branches run on one device");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "cpu", "--graphs", "on"), "--graphs applies to CUDA devices");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "emu", "--branch-exec", "streams", "--graphs", "on"), "--branch-exec batched or serial with graphs");
        CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "emu", "--devices", "0,1", "--graphs", "on"), "--branch-exec batched or serial with graphs");
        if (!CudaDriver.IsAvailable)
        {
            CommandRunner.AssertUserError(CommandRunner.Run("train", "--device", "cuda"), "--device emu");
        }
    }

    [TestCase("0", "serial")]
    [TestCase("0,0", "streams")]
    [TestCase("0", "batched")]
    [TestCase("0", "batched", "on")]
    public void Train_runs_on_the_emulated_device_and_reports_its_memory(string devices, string execution, string graphs = "off")
    {
        var output = Path.Combine(_dir, $"run-{devices.Replace(',', '-')}-{execution}-{graphs}");
        var result = CommandRunner.Run(
            "train", "--device", "emu", "--devices", devices, "--branch-exec", execution, "--graphs", graphs, "--dataset", "cifar10", "--data", _dir,
            "--branches", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32", "--epochs", "1", "--batch", "18", "--out", output);
        Assert.That(result.Code, Is.Zero, result.Error);
        var epoch = EpochMetrics.ReadFile(Path.Combine(output, Trainer.MetricsFile)).Single();
        Assert.That(epoch.DevicePeakBytes, Is.GreaterThan(0), "peak device memory in the metrics");
        Assert.That(epoch.DeviceReservedBytes, Is.GreaterThanOrEqualTo(epoch.DevicePeakBytes), "held memory covers the peak");
        var logits = Path.Combine(output, "logits.npy");
        var eval = CommandRunner.Run("eval", "--device", "emu", "--checkpoint", Path.Combine(output, Trainer.BestFile), "--dataset", "cifar10", "--data", _dir, "--json", "--batch", "4", "--graphs", graphs, "--logits", logits);
        Assert.That(eval.Code, Is.Zero, eval.Error);
        Assert.That(File.Exists(logits), "--logits wrote its file");
    }

    [Test]
    public void Info_checks_every_op_of_the_emulated_device() =>
        Assert.That(CommandRunner.Run("info", "--device", "emu").Code, Is.Zero);
}
