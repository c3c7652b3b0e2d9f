using System.CommandLine;
using ParaCuda.Interop;
using ParaCuda.Models;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>
/// <c>paracuda export</c> and <c>paracuda import</c>: a checkpoint's weights to and from the layout of the PyTorch
/// reference model (perf/reference/paraformer.py), which loads them with load_state_dict(strict=True).
/// </summary>
internal static class InteropCommands
{
    private static readonly Option<string> s_format = Options.Choice("--format", "The layout to convert to or from", "pytorch", ["pytorch"]);

    public static Command Export()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A ParaCuda checkpoint", Required = true };
        var output = new Option<string>("--out") { Description = "The .safetensors file to write, in PyTorch's layout", Required = true };
        var command = new Command("export", "Write a checkpoint's weights in PyTorch's layout (the reference model in perf/reference loads them strictly)") { checkpoint, output, s_format };
        command.SetAction(parse => Cli.Run(() =>
        {
            var source = Setup.CheckpointFile(parse.GetValue(checkpoint)!, "--checkpoint");
            var target = Setup.NewCheckpointFile(parse.GetValue(output)!, "--out");
            using var model = Checkpoint.LoadModel(source);
            PyTorchFormat.Export(target, model);
            AnsiConsole.WriteLine($"wrote {target}: {model.Config.Kind} with {model.ParameterCount():N0} parameters in PyTorch's layout (perf/reference/paraformer.py: paraformer.load(path))");
            return 0;
        }));
        return command;
    }

    public static Command Import()
    {
        var input = new Option<string>("--in") { Description = "A .safetensors file in PyTorch's layout (paracuda export, or paraformer.save in perf/reference)", Required = true };
        var output = new Option<string>("--out") { Description = "The ParaCuda checkpoint to write", Required = true };
        var config = new Option<string?>("--config") { Description = "A config.json the weights were made for, when the file carries none" };
        var command = new Command("import", "Turn weights in PyTorch's layout into a ParaCuda checkpoint") { input, output, config, s_format };
        command.SetAction(parse => Cli.Run(() =>
        {
            var source = Setup.CheckpointFile(parse.GetValue(input)!, "--in");
            var target = Setup.NewCheckpointFile(parse.GetValue(output)!, "--out");
            var given = parse.GetValue(config) is { } file ? ModelConfig.FromJson(File.ReadAllText(Setup.CheckpointFile(file, "--config"))) : null;
            using var model = PyTorchFormat.Import(source, given);
            Checkpoint.SaveModel(target, model);
            AnsiConsole.WriteLine($"wrote {target}: {model.Config.Kind} with {model.ParameterCount():N0} parameters");
            return 0;
        }));
        return command;
    }
}
