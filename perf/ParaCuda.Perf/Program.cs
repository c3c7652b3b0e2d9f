using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using ParaCuda.Backends;
using ParaCuda.Backends.Cpu;
using ParaCuda.Backends.Cuda;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Perf;
using ParaCuda.Training;
using Spectre.Console;

if (Console.IsOutputRedirected)
{
    // A log's table is as wide as it is; Spectre would wrap it at 80 columns.
    AnsiConsole.Profile.Width = 4096;
}

var suite = new Option<string>("--suite") { Description = "What to measure, comma-separated: cpu (the CPU backend's ops), kernels (every op at S1 and S2), model (training step and inference), epoch (an lpa epoch), all (kernels, model and epoch); default: cpu on the CPU, all on a CUDA device", DefaultValueFactory = _ => "auto" };
var device = new Option<string>("--device") { Description = "cpu | cuda | emu (the emulated CUDA device: checks that every mode runs; its times mean nothing)", DefaultValueFactory = _ => "cpu" };
device.AcceptOnlyFromAmong("cpu", "cuda", "emu");
var modes = new Option<string>("--branch-exec") { Description = "Branch execution modes to compare in the model suite, comma-separated", DefaultValueFactory = _ => "serial,streams,batched" };
var reference = new Option<string>("--reference") { Description = "auto: run the PyTorch reference (perf/reference/bench.py) in the same invocation when a Python with torch is found; off", DefaultValueFactory = _ => "auto" };
reference.AcceptOnlyFromAmong("auto", "off");
var python = new Option<string?>("--python") { Description = "The Python for the reference (default: PARACUDA_PYTHON, else the first of python3 and /usr/bin/python3 that imports torch)" };
var compile = new Option<bool>("--torch-compile") { Description = "Also time the reference under torch.compile (minutes of compilation per variant)" };
var data = new Option<string?>("--data") { Description = "Fashion-MNIST folder for the epoch suite (default: its standard location)" };
var quick = new Option<bool>("--quick") { Description = "The tiny workload instead of S1 and S2 (the default on the emulated device)" };
var json = new Option<FileInfo?>("--json") { Description = "Also write the results as JSON to this file" };
var precisionOption = new Option<string?>("--precision") { Description = "Products on the device: tf32 (the default where the device has tensor cores), bf16 (mixed precision: bf16 activations and tensor-core products; compared with PyTorch's bf16 autocast) or fp32" };
precisionOption.AcceptOnlyFromAmong("fp32", "tf32", "bf16");
var linearOption = new Option<string>("--linear-kernels") { Description = "Linear layers' forward and the MLP's backward in the model and epoch suites: library (cuBLAS, the default), hand-written (linear_tc.cu) or fastest (per shape, timed on first use); the kernel suite times library and hand-written side by side", DefaultValueFactory = _ => "library" };
linearOption.AcceptOnlyFromAmong("library", "hand-written", "fastest");
var budget = new Option<double>("--seconds") { Description = "Timing budget per item, seconds (median of all repeats in it)", DefaultValueFactory = _ => 1.0 };

var root = new RootCommand("ParaCuda perf harness: times the engine and reports each item against ceilings and the PyTorch reference measured in the same run.")
{
    suite, device, modes, reference, python, compile, data, quick, json, budget, precisionOption, linearOption,
};

root.SetAction(parse =>
{
    var target = parse.GetValue(device)!;
    var requested = parse.GetValue(suite)!;
    var chosen = (requested == "auto" ? (target == "cpu" ? "cpu" : "all") : requested).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
    if (chosen.Remove("all"))
    {
        chosen.UnionWith(["kernels", "model", "epoch"]);
    }

    if (chosen.Except(["cpu", "kernels", "model", "epoch"]).FirstOrDefault() is { } unknown)
    {
        AnsiConsole.MarkupLine($"[red]error:[/] --suite: '{Markup.Escape(unknown)}' is not one of cpu, kernels, model, epoch, all");
        return 2;
    }

    var seconds = parse.GetValue(budget);
    if (target == "cpu")
    {
        if (!chosen.SetEquals(["cpu"]))
        {
            AnsiConsole.MarkupLine("[red]error:[/] --suite kernels|model|epoch time a CUDA device: add --device cuda (or emu)");
            return 2;
        }

        return CpuRun(seconds, parse.GetValue(json), args);
    }

    if (chosen.Contains("cpu"))
    {
        AnsiConsole.MarkupLine("[red]error:[/] --suite cpu times the CPU backend: use --device cpu");
        return 2;
    }

    var emulated = target == "emu";
    // Without --precision the backend's default (TF32 where the device has it); PyTorch's TF32 rows are the reference.
    var precisionName = parse.GetValue(precisionOption) ?? "tf32";
    var gemmPrecision = parse.GetValue(precisionOption) is { } given ? Enum.Parse<GemmPrecision>(given, ignoreCase: true) : (GemmPrecision?)null;
    var linearKernels = Enum.Parse<LinearKernels>(parse.GetValue(linearOption)!.Replace("-", "", StringComparison.Ordinal), ignoreCase: true);
    if (!emulated && ParaCuda.Native.CudaDriver.UnavailableReason is { } noGpu)
    {
        AnsiConsole.MarkupLine($"[red]error:[/] --device cuda: {Markup.Escape(noGpu)}");
        return 2;
    }

    var executions = new List<BranchExecution>();
    foreach (var name in parse.GetValue(modes)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
    {
        if (!Enum.TryParse<BranchExecution>(name, ignoreCase: true, out var mode))
        {
            AnsiConsole.MarkupLine($"[red]error:[/] --branch-exec: '{Markup.Escape(name)}' is not one of {string.Join(", ", Enum.GetNames<BranchExecution>()).ToLowerInvariant()}");
            return 2;
        }

        executions.Add(mode);
    }

    var small = emulated || parse.GetValue(quick);
    Workload[] workloads = small ? [Workload.Tiny] : [Workload.S1, Workload.S2];
    var results = new List<Result>();
    var ceilings = new Dictionary<string, double>();
    var references = new Dictionary<string, string>();
    var description = "";
    var output = parse.GetValue(json);
    Run Snapshot() => new(
        DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        description,
        $"{CpuModel()}{(emulated ? " (emulated CUDA device: times are not GPU times)" : "")}",
        RuntimeInformation.FrameworkDescription,
        ceilings,
        results,
        "paracuda-perf " + string.Join(' ', args),
        references);

    // Each item is printed and saved as it is measured, so a run stopped at a time limit keeps what it measured.
    void Add(IEnumerable<Result> measured)
    {
        foreach (var r in measured)
        {
            results.Add(r);
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"  {r.Suite} | {r.Name} | {r.Shape} | {r.Time.MedianMs:F4} ms")));
            if (output is not null)
            {
                Report.WriteJson(Snapshot() with { Notes = new Dictionary<string, string>(references) { ["partial"] = "the run had not finished when this was written" } }, output.FullName);
            }
        }
    }

    using (var placement = Placement.Cuda([0], emulated, executions.FirstOrDefault(BranchExecution.Streams), gemmPrecision))
    {
        description = placement.Describe();
        var main = placement.Main;
        AnsiConsole.MarkupLine("[grey]measuring ceilings…[/]");
        var copy = ceilings["copy_gbps"] = DeviceCeilings.CopyGBps(main, small ? 16 : 1024);
        var gemm = ceilings["gemm_gflops"] = DeviceCeilings.GemmGflops(main, small ? 256 : 8192);
        if (chosen.Contains("kernels"))
        {
            foreach (var w in workloads)
            {
                AnsiConsole.MarkupLine($"[grey]suite kernels at {w}…[/]");
                Add(new OpSuite(main, "kernels", seconds).Run(w, w.Batch, gemm, copy));
            }
        }
    }

    if (chosen.Contains("model"))
    {
        foreach (var w in workloads)
        {
            foreach (var mode in executions)
            {
                AnsiConsole.MarkupLine($"[grey]suite model at {w}, branches {mode.ToString().ToLowerInvariant()}…[/]");
                using var placement = Placement.Cuda([0], emulated, mode, gemmPrecision, linearKernels);
                Add(new ModelSuite(seconds).Steps(w, placement, mode.ToString().ToLowerInvariant()));
            }
        }
    }

    if (chosen.Contains("epoch"))
    {
        var epoch = EpochWorkload(small, parse.GetValue(data));
        if (epoch.Problem is { } problem)
        {
            AnsiConsole.MarkupLine($"[yellow]epoch suite skipped:[/] {Markup.Escape(problem)}");
        }
        else
        {
            foreach (var mode in executions)
            {
                AnsiConsole.MarkupLine($"[grey]suite epoch, branches {mode.ToString().ToLowerInvariant()}…[/]");
                using var placement = Placement.Cuda([0], emulated, mode, gemmPrecision, linearKernels);
                Add([ModelSuite.Epoch(epoch.Name, epoch.Config!, epoch.Options!, epoch.Data!, placement, mode.ToString().ToLowerInvariant())]);
                if (mode == BranchExecution.Batched)
                {
                    Add([ModelSuite.Epoch(epoch.Name, epoch.Config!, epoch.Options! with { Graphs = true }, epoch.Data!, placement, "batched, graph")]);
                }
            }
        }
    }

    foreach (var w in chosen.Contains("model") ? workloads : [])
    {
        foreach (var (what, batch, training) in new[] { ("training step", w.Batch, true), ("inference", 1, false), ("inference", w.Batch, false) })
        {
            var (flops, bytes) = w.Work(batch, training);
            references[$"floors, {w} {what}, batch {batch}"] = string.Create(CultureInfo.InvariantCulture,
                $"{flops / 1e9:F1} GFLOP → {flops / (ceilings["gemm_gflops"] * 1e6):F3} ms at the GEMM ceiling; {bytes / 1e9:F2} GB → {bytes / (ceilings["copy_gbps"] * 1e6):F3} ms at the copy ceiling");
        }
    }

    if (parse.GetValue(reference) == "auto")
    {
        CompareWithPyTorch(parse.GetValue(python) ?? Reference.FindPython(), emulated, precisionName, parse.GetValue(compile), workloads, seconds, results, references);
    }

    var run = Snapshot();
    Report.PrintTable(run);
    if (output is not null)
    {
        Report.WriteJson(run, output.FullName);
        AnsiConsole.MarkupLine($"[grey]wrote {Markup.Escape(output.FullName)}[/]");
    }

    return 0;
});

return root.Parse(args).Invoke();

static int CpuRun(double seconds, FileInfo? json, string[] args)
{
    AnsiConsole.MarkupLine("[grey]measuring ceilings…[/]");
    var fma = CpuCeilings.FmaGflops();
    var copy = CpuCeilings.CopyGBps();
    AnsiConsole.MarkupLine($"[grey]running suite cpu ({seconds} s per item)…[/]");
    var results = new OpSuite(CpuBackend.Instance.DefaultContext, "cpu", seconds).Run(Workload.S1, 64, fma, copy);
    var run = new Run(
        DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        CpuBackend.Instance.Description,
        CpuModel(),
        RuntimeInformation.FrameworkDescription,
        new Dictionary<string, double> { ["fma_gflops"] = fma, ["copy_gbps"] = copy },
        results,
        "paracuda-perf " + string.Join(' ', args),
        new Dictionary<string, string>());
    Report.PrintTable(run);
    if (json is not null)
    {
        Report.WriteJson(run, json.FullName);
        AnsiConsole.MarkupLine($"[grey]wrote {Markup.Escape(json.FullName)}[/]");
    }

    return 0;
}

// The paper preset on Fashion-MNIST (its lpa epoch is a target of the perf issue); tiny on synthetic data when small.
static (string Name, ModelConfig? Config, TrainOptions? Options, ImageDataset? Data, string? Problem) EpochWorkload(bool small, string? directory)
{
    var preset = Presets.Get(small ? "tiny" : "paper");
    var options = new TrainOptions { Schedule = "lpa", BatchSize = small ? 16 : preset.Training.BatchSize, LearningRate = preset.Training.LearningRate, Augment = false, Workers = 0 };
    if (small)
    {
        return ("tiny lpa epoch, synthetic 64 images", Presets.ForData(preset.Model, 28, 1, 10), options, Synthetic.Create(64, 10, 1, 28, seed: 1), null);
    }

    try
    {
        var (train, _) = Datasets.Load("fashion-mnist", directory);
        return ("paper lpa epoch, Fashion-MNIST 60,000 images", Presets.ForData(preset.Model, 224, 1, 10), options, train, null);
    }
    catch (DataNotFoundException e)
    {
        return ("", null, null, null, e.Message);
    }
}

// Runs the PyTorch reference on the same device (the CPU for the emulated device, where no ratio is drawn) and the
// weights check; adds its rows, and the ratio to PyTorch eager to each of our model rows.
static void CompareWithPyTorch(string python, bool emulated, string precisionName, bool compile, Workload[] workloads, double seconds, List<Result> results, Dictionary<string, string> notes)
{
    if (Reference.FindDirectory() is not { } directory)
    {
        notes["pytorch"] = "skipped: perf/reference/bench.py not found beside or above the harness";
        return;
    }

    var side = new Reference(python, directory);
    AnsiConsole.MarkupLine("[grey]PyTorch reference…[/]");
    var (bench, torchDevice, problem) = side.Bench(emulated ? "cpu" : "cuda", workloads, seconds, compile);
    if (bench is null)
    {
        notes["pytorch"] = $"skipped: {problem}";
    }
    else
    {
        notes["pytorch"] = torchDevice + (emulated ? " (on the CPU: no ratio against the emulated device)" : "");
        for (var i = 0; i < results.Count; i++)
        {
            var ours = results[i];
            var eager = bench.FirstOrDefault(r => r.Workload == ours.Name && !r.Compiled && !r.Streams && r.Precision == precisionName);
            if (ours.Suite == "model" && eager is not null && !emulated)
            {
                results[i] = ours with { Reference = $"speed-up over {eager.Variant}", Ratio = eager.MedianMs / ours.Time.MedianMs };
            }
        }

        results.AddRange(bench.Select(r => new Result("pytorch", r.Workload, r.Variant, r.Precision, new Stats(r.MedianMs, r.P10Ms, r.P90Ms, r.Repeats), 0, "images/s", r.ImagesPerSecond, null)));
    }

    var (error, failed) = side.CheckWeights(workloads[0].Model);
    notes["weights"] = error is { } e ? $"our checkpoint loaded into the reference: logits within {e:E1} relative ({(e <= 1e-4 ? "pass" : "FAIL")})" : $"skipped: {failed}";
}

static string CpuModel()
{
    const string cpuinfo = "/proc/cpuinfo";
    var line = File.Exists(cpuinfo) ? File.ReadLines(cpuinfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
    return $"{line?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} cores";
}
