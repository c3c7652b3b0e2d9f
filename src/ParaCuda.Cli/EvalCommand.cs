using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ParaCuda.Inference;
using ParaCuda.IO;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary><c>paracuda eval</c>: test accuracy of a checkpoint for every prefix k.</summary>
internal static class EvalCommand
{
    private static readonly Option<string> s_checkpoint = new("--checkpoint") { Description = "A .safetensors checkpoint written by paracuda", Required = true };
    private static readonly Option<int> s_batch = new Option<int>("--batch") { Description = "Evaluation batch size", DefaultValueFactory = _ => 1000 }.Positive();
    private static readonly Option<bool> s_json = new("--json") { Description = "Print JSON instead of a table" };
    private static readonly Option<string?> s_logits = new("--logits") { Description = "Also write the full model's logits of every test image to this .npy file (float32 [images, classes])" };
    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var command = new Command("eval", "Evaluate a checkpoint on the test set, for every number of branches k")
        {
            s_checkpoint, Options.Dataset, Options.Data, s_batch, s_json, s_logits, Options.Graphs,
        };
        foreach (var option in Options.Placement)
        {
            command.Options.Add(option);
        }

        command.SetAction(parse => Cli.Run(() => Eval(parse)));
        return command;
    }

    private static int Eval(ParseResult parse)
    {
        var path = Setup.CheckpointFile(parse.GetValue(s_checkpoint)!, "--checkpoint");
        var logitsPath = parse.GetValue(s_logits);
        if (logitsPath is not null && (!logitsPath.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || Directory.Exists(logitsPath)))
        {
            throw new UserError($"--logits: {logitsPath} must be a .npy file name");
        }

        var json = parse.GetValue(s_json);
        using var placement = Setup.Placement(parse, n =>
        {
            if (!json)
            {
                Cli.Notice(n);
            }
        });
        var config = Checkpoint.ReadConfig(path);
        var batch = parse.GetValue(s_batch);
        MemoryBudget.Check($"evaluating {config.ParameterCount():N0} parameters on batches of {batch} (lower --batch)", MemoryBudget.ForInference(config, batch), placement);
        using var model = Checkpoint.LoadModel(path, placement.Main, placement.BranchContexts(config.Branches), placement.BatchedBranches);
        var dataset = parse.GetValue(Options.Dataset)!;
        var test = Setup.LoadTest(dataset, parse.GetValue(Options.Data), seed: 1);
        Setup.CheckFits(model.Config, test, $"{dataset} test set");
        var scores = Evaluation.Run(model, test, Setup.Transform(model.Config, train: false), batch);
        if (logitsPath is not null)
        {
            var predictions = model.Predict(test, batchSize: batch, graphs: parse.GetValue(Options.Graphs) == "on");
            Npy.Write(logitsPath, predictions.Logits, predictions.Count, predictions.Classes);
        }

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(
                new { checkpoint = path, dataset, images = test.Count, prefixes = scores.Select(s => new { k = s.K, accuracy = s.Accuracy, loss = s.Loss }) },
                s_indented));
            return 0;
        }

        var table = new Table().Title(Markup.Escape($"{path}: {dataset} test set, {test.Count:N0} images")).AddColumns("k", "accuracy", "loss");
        foreach (var s in scores)
        {
            table.AddRow(s.K.ToString(CultureInfo.InvariantCulture), (s.Accuracy * 100).ToString("F2", CultureInfo.InvariantCulture) + " %", s.Loss.ToString("F4", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(table);
        return 0;
    }
}
