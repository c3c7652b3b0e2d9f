using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using ParaCuda.Backends.Cpu;
using ParaCuda.Perf;
using Spectre.Console;

var suite = new Option<string>("--suite") { Description = "What to measure: kernels | model | epoch | cpu | all", DefaultValueFactory = _ => "cpu" };
suite.AcceptOnlyFromAmong("kernels", "model", "epoch", "cpu", "all");
var device = new Option<string>("--device") { Description = "cpu | cuda", DefaultValueFactory = _ => "cpu" };
device.AcceptOnlyFromAmong("cpu", "cuda");
var json = new Option<FileInfo?>("--json") { Description = "Also write the results as JSON to this file" };
var budget = new Option<double>("--seconds") { Description = "Timing budget per item, seconds (median of all repeats in it)", DefaultValueFactory = _ => 1.0 };

var root = new RootCommand("ParaCuda perf harness: times the engine and reports each item against ceilings and references measured in the same run.")
{
    suite, device, json, budget,
};

root.SetAction(parse =>
{
    var chosen = parse.GetValue(suite)!;
    if (parse.GetValue(device) == "cuda" || chosen is "kernels" or "model" or "epoch")
    {
        AnsiConsole.MarkupLine("[red]error:[/] the GPU suites (--suite kernels|model|epoch, --device cuda) and their PyTorch reference are not built yet; only --suite cpu --device cpu runs.");
        return 2;
    }

    AnsiConsole.MarkupLine("[grey]measuring ceilings…[/]");
    var fma = CpuCeilings.FmaGflops();
    var copy = CpuCeilings.CopyGBps();
    AnsiConsole.MarkupLine($"[grey]running suite cpu ({parse.GetValue(budget)} s per item)…[/]");
    var results = new CpuSuite(parse.GetValue(budget)).Run(fma, copy);
    var run = new Run(
        DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        CpuBackend.Instance.Description,
        CpuModel(),
        RuntimeInformation.FrameworkDescription,
        new Dictionary<string, double> { ["fma_gflops"] = fma, ["copy_gbps"] = copy },
        results,
        "paracuda-perf " + string.Join(' ', args));
    Report.PrintTable(run);
    if (parse.GetValue(json) is { } file)
    {
        Report.WriteJson(run, file.FullName);
        AnsiConsole.MarkupLine($"[grey]wrote {Markup.Escape(file.FullName)}[/]");
    }

    return 0;
});

return root.Parse(args).Invoke();

static string CpuModel()
{
    const string cpuinfo = "/proc/cpuinfo";
    var line = File.Exists(cpuinfo) ? File.ReadLines(cpuinfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) : null;
    return $"{line?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} cores";
}
