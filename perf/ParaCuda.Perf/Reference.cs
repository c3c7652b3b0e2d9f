using System.Diagnostics;
using System.Text.Json;
using ParaCuda.Inference;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Perf;

/// <summary>One PyTorch timing from perf/reference/bench.py.</summary>
public sealed record ReferenceResult(string Workload, bool Compiled, string Precision, bool Streams, double MedianMs, double P10Ms, double P90Ms, int Repeats, double ImagesPerSecond)
{
    public string Variant => $"PyTorch {(Compiled ? "compile" : "eager")} {Precision}{(Streams ? " streams" : "")}";
}

/// <summary>
/// The PyTorch side, run in the same invocation: bench.py on the same device, and the weights check (our
/// checkpoint loaded into the reference, logits compared with ours).
/// </summary>
public sealed class Reference(string python, string directory)
{
    private static readonly string[] s_pythons = ["python3", "/usr/bin/python3"];

    /// <summary>perf/reference beside the binaries (the GPU kit) or above them (a source tree); null when absent.</summary>
    public static string? FindDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "reference"), Path.Combine(dir.FullName, "perf", "reference") })
            {
                if (File.Exists(Path.Combine(candidate, "bench.py")))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    /// <summary>PARACUDA_PYTHON, else the first of python3 and /usr/bin/python3 that imports torch and numpy (python3 when none does).</summary>
    public static string FindPython()
    {
        if (Environment.GetEnvironmentVariable("PARACUDA_PYTHON") is { Length: > 0 } chosen)
        {
            return chosen;
        }

        return s_pythons.FirstOrDefault(p => new Reference(p, Environment.CurrentDirectory).Run(["-c", "import torch, numpy"]).Code == 0) ?? "python3";
    }

    /// <summary>Times the workloads in PyTorch; null and a reason when it could not run.</summary>
    public (IReadOnlyList<ReferenceResult>? Results, string Device, string Problem) Bench(string device, IEnumerable<Workload> workloads, double seconds, bool compile)
    {
        var json = Path.Combine(Path.GetTempPath(), $"paracuda-reference-{Guid.NewGuid():N}.json");
        try
        {
            string[] args = ["bench.py", "--device", device, "--shapes", string.Join(',', workloads.Select(w => w.Name)), "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json", json];
            var (code, output) = Run(compile ? [.. args, "--compile"] : args);
            if (code != 0 || !File.Exists(json))
            {
                return (null, "", $"bench.py failed: {Last(output)}");
            }

            using var document = JsonDocument.Parse(File.ReadAllText(json));
            var root = document.RootElement;
            var results = root.GetProperty("results").EnumerateArray().Select(r => new ReferenceResult(
                r.GetProperty("workload").GetString()!, r.GetProperty("compiled").GetBoolean(), r.GetProperty("precision").GetString()!, r.GetProperty("streams").GetBoolean(),
                r.GetProperty("median_ms").GetDouble(), r.GetProperty("p10_ms").GetDouble(), r.GetProperty("p90_ms").GetDouble(), r.GetProperty("repeats").GetInt32(), r.GetProperty("images_per_second").GetDouble())).ToList();
            return (results, $"{root.GetProperty("device").GetString()}, torch {root.GetProperty("torch").GetString()}", "");
        }
        finally
        {
            File.Delete(json);
        }
    }

    /// <summary>
    /// Saves a <paramref name="config"/> model with random weights in ParaCuda's own layout, has the reference load it
    /// and compute logits on random images in float32 on the CPU, and compares with ours: the relative error, or a reason.
    /// </summary>
    public (double? Error, string Problem) CheckWeights(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var dir = Directory.CreateTempSubdirectory("paracuda-weights-").FullName;
        try
        {
            using var model = ModelFactory.Create(config, ModuleInit.Create(5));
            var checkpoint = Path.Combine(dir, "model.safetensors");
            Checkpoint.SaveModel(checkpoint, model);
            var size = config.ImageSize;
            using var scope = TensorScope.Begin();
            var images = Tensors.Random(new Shape(4, config.Channels, size, size), 9, model.Context);
            Npy.Write(Path.Combine(dir, "input.npy"), images.ToArray<float>(), 4, config.Channels, size, size);
            var logits = model.Predict(images);
            Npy.Write(Path.Combine(dir, "logits.npy"), logits.Logits, logits.Count, logits.Classes);
            var (_, output) = Run(["bench.py", "--check", checkpoint, Path.Combine(dir, "input.npy"), Path.Combine(dir, "logits.npy")]);
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith('{'));
            return line is null ? (null, $"bench.py --check failed: {Last(output)}") : (JsonDocument.Parse(line).RootElement.GetProperty("relative_error").GetDouble(), "");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private (int Code, string Output) Run(string[] args)
    {
        var start = new ProcessStartInfo(python) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, stdout + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"{python}: {e.Message}");
        }
    }

    private static string Last(string output) => output.Trim().Split('\n').LastOrDefault() ?? "no output";
}
