using System.Globalization;
using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tests.Support;
using ParaCuda.Training;

namespace ParaCuda.Tests.Embedding;

/// <summary>
/// libparacuda.so as a C and a Python program use it: the library is published with NativeAOT, the C example
/// (native/libparacuda/examples/predict.c) is compiled with gcc against paracuda.h, and both it and the ctypes
/// example load a checkpoint made by <c>paracuda train</c> and print the logits <c>paracuda eval --logits</c>
/// writes. Errors come back as a status and a message, and 10,000 images in one call stay under 500 MB.
/// </summary>
[NonParallelizable]
public class NativeLibraryTests
{
    private string _dir = "";
    private string _library = "";
    private string _predict = "";
    private string _checkpoint = "";
    private string _images = "";
    private float[] _evalLogits = [];

    private static string Examples => Path.Combine(Repository.Root, "native", "libparacuda", "examples");

    [OneTimeSetUp]
    public void BuildLibraryAndExample()
    {
        _dir = Directory.CreateTempSubdirectory("paracuda-native-").FullName;
        _library = ExternalTools.NativeLibrary();
        _predict = Path.Combine(_dir, "predict");
        var gcc = ExternalTools.Run(ExternalTools.Gcc(), ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", _library, Path.Combine(Examples, "predict.c"), "-L", _library, "-lparacuda", $"-Wl,-rpath,{_library}", "-o", _predict]);
        Assert.That(gcc.Code, Is.Zero, gcc.Stderr);

        var run = Path.Combine(_dir, "run");
        var train = Cli.CommandRunner.Run("train", "--dataset", "synthetic", "--branches", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32", "--batch", "200", "--max-steps", "20", "--workers", "1", "--out", run);
        Assert.That(train.Code, Is.Zero, train.Error);
        _checkpoint = Path.Combine(run, Trainer.LastFile);
        var logits = Path.Combine(_dir, "eval.npy");
        var eval = Cli.CommandRunner.Run("eval", "--checkpoint", _checkpoint, "--dataset", "synthetic", "--logits", logits);
        Assert.That(eval.Code, Is.Zero, eval.Error);
        _evalLogits = Npy.ReadFloat32(logits).Values;

        // eval's test set, as the bytes a C program would have.
        var test = ParaCuda.Cli.Setup.LoadTest("synthetic", null, seed: 1);
        _images = Path.Combine(_dir, "test.u8");
        File.WriteAllBytes(_images, test.Pixels.ToArray());
    }

    [OneTimeTearDown]
    public void DeleteDirectory()
    {
        if (_dir.Length > 0)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static float[] Parse(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).SelectMany(l => l.Split(' ')).Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray();

    [Test]
    public void The_c_example_prints_evals_logits()
    {
        var (code, stdout, stderr) = ExternalTools.Run(_predict, [_checkpoint, _images, "1000", "28", "28"]);
        Assert.That(code, Is.Zero, stderr);
        Assert.Multiple(() =>
        {
            Assert.That(stderr, Does.Contain($"paracuda {Engine.Version}: 10 classes, 2 branches, 1 channels, 5642 parameters"));
            Assert.That(Parse(stdout), Is.EqualTo(_evalLogits).Within(1e-6f));
        });
    }

    [Test]
    public void The_python_ctypes_example_prints_evals_logits()
    {
        var python = ExternalTools.Run("python3", ["--version"]).Code == 0 ? "python3" : "/usr/bin/python3";
        var (code, stdout, stderr) = ExternalTools.Run(python, [Path.Combine(Examples, "predict.py"), Path.Combine(_library, "libparacuda.so"), _checkpoint, _images, "1000", "28", "28"]);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(Parse(stdout), Is.EqualTo(_evalLogits).Within(1e-6f));
    }

    /// <summary>Float input, labels only, on the CPU and (when the emulator can run) on the emulated CUDA device in strict float32, and a bad prefix, through ctypes.</summary>
    [Test]
    public void Float_input_gives_the_same_predictions_on_every_device()
    {
        var devices = CudaDevices.EmulatorUnavailable() is null ? "cpu emu+fp32" : "cpu";
        var script = $$"""
            import ctypes, random, sys
            lib = ctypes.CDLL(sys.argv[1])
            lib.paracuda_last_error.restype = ctypes.c_char_p
            random.seed(5)
            images = (ctypes.c_float * (6 * 784))(*[random.uniform(-2.5, 2.5) for _ in range(6 * 784)])
            for device in "{{devices}}".split():
                model = ctypes.c_void_p()
                assert lib.paracuda_load(sys.argv[2].encode(), device.encode(), ctypes.byref(model)) == 0, lib.paracuda_last_error()
                logits = (ctypes.c_float * 60)()
                labels = (ctypes.c_int32 * 6)()
                assert lib.paracuda_predict_f32(model, images, 6, 0, 4, logits, None) == 0, lib.paracuda_last_error()
                assert lib.paracuda_predict_f32(model, images, 6, 1, 0, None, labels) == 0, lib.paracuda_last_error()
                print(device, " ".join(repr(v) for v in logits), "|", " ".join(str(v) for v in labels))
                status = lib.paracuda_predict_f32(model, images, 6, 3, 0, logits, None)
                print("prefix 3:", status, lib.paracuda_last_error().decode())
                lib.paracuda_free(model)
            """;
        var path = Path.Combine(_dir, "floats.py");
        File.WriteAllText(path, script);
        var (code, stdout, stderr) = ExternalTools.Run("python3", [path, Path.Combine(_library, "libparacuda.so"), _checkpoint]);
        Assert.That(code, Is.Zero, stdout + stderr);

        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var rows = lines.Where(l => !l.StartsWith("prefix", StringComparison.Ordinal)).Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1].Split(" | "));
        var cpu = Parse(rows["cpu"][0]);
        Assert.Multiple(() =>
        {
            Assert.That(cpu, Has.Length.EqualTo(60));
            Assert.That(rows.Keys, Is.EqualTo(devices.Split(' ')));
            foreach (var (device, row) in rows)
            {
                Close.Check(Parse(row[0]), cpu.Select(v => (double)v).ToList(), 1e-5, $"{device} logits against the CPU's");
                Assert.That(row[1].Split(' ').Select(int.Parse), Has.All.InRange(0, 9), device);
            }

            Assert.That(lines.Where(l => l.StartsWith("prefix", StringComparison.Ordinal)), Has.All.EqualTo("prefix 3: 1 prefix 3 is outside 1..2 (0 for all branches)"));
        });
    }

    [Test]
    public void Ten_thousand_images_of_the_tiny_preset_in_one_call_stay_under_500_MB()
    {
        var tiny = Path.Combine(_dir, "tiny.safetensors");
        using (var model = ModelFactory.Create(Presets.ForData(Presets.Get("tiny").Model, 28, 1, 10), ModuleInit.Create(1)))
        {
            Checkpoint.SaveModel(tiny, model);
        }

        var images = Path.Combine(_dir, "ten-thousand.u8");
        File.WriteAllBytes(images, Synthetic.Create(10_000, 10, 1, 28, seed: 3).Pixels.ToArray());
        var (code, stdout, stderr) = ExternalTools.Run(_predict, [tiny, images, "10000", "28", "28"]);
        Assert.That(code, Is.Zero, stderr);
        var peakKb = long.Parse(stderr.Split("peak memory:")[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        TestContext.Out.WriteLine($"peak resident memory of the C example over 10,000 images: {peakKb / 1024.0:F0} MB");
        Assert.Multiple(() =>
        {
            Assert.That(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(10_000));
            Assert.That(peakKb, Is.LessThan(500 * 1024), "the whole process, data included");
        });
    }

    [Test]
    public void Errors_are_a_status_and_a_message_never_a_crash()
    {
        var (code, _, stderr) = ExternalTools.Run(_predict, [Path.Combine(_dir, "missing.safetensors"), _images, "1", "28", "28"]);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(1));
            Assert.That(stderr, Does.StartWith("load: ").And.Contain("missing.safetensors"));
        });

        var corrupt = ExternalTools.Run(_predict, [_images, _images, "1", "28", "28"]);
        Assert.That(corrupt.Stderr, Does.StartWith("load: ").And.Contain("not a safetensors file"));

        // More images than the file holds never reaches the library; a size the model cannot take does.
        var (wrongCode, _, wrong) = ExternalTools.Run(_predict, [_checkpoint, _images, "1", "0", "28"]);
        Assert.Multiple(() =>
        {
            Assert.That(wrongCode, Is.EqualTo(1));
            Assert.That(wrong, Does.Contain("predict: ").And.Contain("sizes must be positive"));
        });
    }
}
