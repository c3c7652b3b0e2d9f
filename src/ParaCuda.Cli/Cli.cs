using System.CommandLine;
using System.Text.Json;
using ParaCuda.Backends;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>Turns what can go wrong in a command into one line on stderr and an exit code.</summary>
internal static class Cli
{
    /// <summary>Exit code for a mistake in the input: bad arguments, missing or malformed files.</summary>
    public const int UserErrorCode = 2;

    /// <summary>Exit code for training that diverged (NaN or infinite loss).</summary>
    public const int DivergedCode = 3;

    /// <summary>Exit code for a device whose self-check found an op that disagrees with the CPU.</summary>
    public const int CheckFailedCode = 4;

    /// <summary>Parses and runs one command line; returns the process exit code.</summary>
    public static int Main(string[] args)
    {
        if (Console.IsOutputRedirected)
        {
            // Spectre assumes 80 columns when it cannot ask a terminal; logs read better unwrapped.
            AnsiConsole.Profile.Width = 160;
        }

        var root = new RootCommand("paracuda: train, evaluate, compress, expand and report on ParaFormer models")
        {
            TrainCommand.Create(),
            EvalCommand.Create(),
            CompressCommand.Create(),
            ExpandCommand.Create(),
            ReportCommand.Create(),
            InfoCommand.Create(),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line and exit code 2, rather than the whole help text.
            var command = parse.CommandResult.Command == root ? "paracuda" : $"paracuda {parse.CommandResult.Command.Name}";
            Error($"{parse.Errors[0].Message} (see: {command} --help)");
            return UserErrorCode;
        }

        return parse.Invoke();
    }

    public static int Run(Func<int> command)
    {
        try
        {
            return command();
        }
        catch (Exception e) when (e is UserError or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or TensorOpException or JsonException)
        {
            // DataNotFoundException, DataFormatException and CheckpointFormatException are IOExceptions
            // whose messages already name the file and the problem.
            Error(e.Message);
            return UserErrorCode;
        }
        catch (TrainingDivergedException e)
        {
            Error(e.Message);
            return DivergedCode;
        }
    }

    public static void Error(string message) => Console.Error.WriteLine($"error: {message}");

    /// <summary>A side remark (which device was picked) in grey; plain text, so paths and colons print as they are.</summary>
    public static void Notice(string message)
    {
        AnsiConsole.Write(new Text(message, new Style(Color.Grey)));
        AnsiConsole.WriteLine();
    }
}
