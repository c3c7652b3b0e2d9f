using System.CommandLine;
using ParaCuda.Cli;
using Spectre.Console;

if (Console.IsOutputRedirected)
{
    // Spectre assumes 80 columns when it cannot ask a terminal; logs read better unwrapped.
    AnsiConsole.Profile.Width = 160;
}

var root = new RootCommand("paracuda: train, evaluate and inspect ParaFormer models")
{
    TrainCommand.Create(),
    EvalCommand.Create(),
    InfoCommand.Create(),
};

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // One line and exit code 2, rather than the whole help text.
    var command = parse.CommandResult.Command == root ? "paracuda" : $"paracuda {parse.CommandResult.Command.Name}";
    Cli.Error($"{parse.Errors[0].Message} (see: {command} --help)");
    return Cli.UserErrorCode;
}

return parse.Invoke();
