using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json;
using System.Text.RegularExpressions;
using ParaCuda.Backends;
using ParaCuda.Backends.Cuda;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>Turns what can go wrong in a command into one line on stderr and an exit code.</summary>
internal static partial class Cli
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
            // Spectre assumes 80 columns when it cannot ask a terminal and wraps lines there, mid-word; a log's
            // lines are as long as they are.
            AnsiConsole.Profile.Width = 4096;
        }

        var root = new RootCommand("paracuda: train, evaluate, compress, expand and report on ParaFormer models")
        {
            TrainCommand.Create(),
            EvalCommand.Create(),
            CompressCommand.Create(),
            ExpandCommand.Create(),
            ReportCommand.Create(),
            InteropCommands.Export(),
            InteropCommands.Import(),
            InfoCommand.Create(),
        };
        root.Options.Add(Options.Threads);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One line and exit code 2, rather than the whole help text.
            var command = parse.CommandResult.Command == root ? "paracuda" : $"paracuda {parse.CommandResult.Command.Name}";
            Error($"{Describe(parse, root)} (see: {command} --help)");
            return UserErrorCode;
        }

        var threads = Engine.Threads;
        try
        {
            Engine.Threads = parse.GetValue(Options.Threads) ?? threads;
            return parse.Invoke();
        }
        finally
        {
            // The setting belongs to this command line: a host that runs commands in process keeps its own.
            Engine.Threads = threads;
        }
    }

    /// <summary>A parse error in the user's words: the option and the value, never a .NET type name or a line break.</summary>
    private static string Describe(ParseResult parse, RootCommand root)
    {
        var commands = string.Join(", ", root.Subcommands.Select(c => c.Name));
        if (parse.CommandResult.Command == root)
        {
            return parse.UnmatchedTokens.Count > 0 ? $"unknown command '{parse.UnmatchedTokens[0]}'; the commands are {commands}" : $"give a command: {commands}";
        }

        if (parse.UnmatchedTokens.Count > 0)
        {
            return $"unexpected argument '{parse.UnmatchedTokens[0]}': options take the form --name value";
        }

        var error = parse.Errors[0];
        var option = (error.SymbolResult as OptionResult ?? error.SymbolResult?.Parent as OptionResult)?.Option.Name;
        var cannotParse = CannotParse().Match(error.Message);
        if (cannotParse.Success)
        {
            var type = cannotParse.Groups[3].Value;
            var kind = type.Contains("Int", StringComparison.Ordinal) ? "a whole number" : "a number";
            return $"{cannotParse.Groups[2].Value}: '{cannotParse.Groups[1].Value}' is not {kind}";
        }

        var notRecognized = NotRecognized().Match(error.Message);
        if (notRecognized.Success)
        {
            var choices = Quoted().Matches(notRecognized.Groups[2].Value).Select(m => m.Groups[1].Value);
            return $"{option ?? "a value"}: '{notRecognized.Groups[1].Value}' is not one of {string.Join(", ", choices)}";
        }

        return string.Join(' ', error.Message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [GeneratedRegex("Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'")]
    private static partial Regex CannotParse();

    [GeneratedRegex("Argument '(.*)' not recognized\\. Must be one of:(.*)", RegexOptions.Singleline)]
    private static partial Regex NotRecognized();

    [GeneratedRegex("'([^']*)'")]
    private static partial Regex Quoted();

    public static int Run(Func<int> command)
    {
        try
        {
            return command();
        }
        catch (Exception e) when (e is UserError or ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or TensorOpException or JsonException
            or InsufficientMemoryException or DeviceOutOfMemoryException)
        {
            // DataNotFoundException, DataFormatException and CheckpointFormatException are IOExceptions
            // whose messages already name the file and the problem.
            Error(UserMessage(e));
            return UserErrorCode;
        }
        catch (TrainingDivergedException e)
        {
            Error(e.Message);
            return DivergedCode;
        }
    }

    public static void Error(string message) => Console.Error.WriteLine($"error: {message}");

    /// <summary>An exception's message for a user: an argument check's first line without its "(Parameter 'x')" suffix.</summary>
    private static string UserMessage(Exception e) => e is ArgumentException { ParamName: { } name } argument
        ? argument.Message.Split('\n')[0].Replace($" (Parameter '{name}')", "", StringComparison.Ordinal).Trim()
        : e.Message;

    /// <summary>A side remark (which device was picked) in grey; plain text, so paths and colons print as they are.</summary>
    public static void Notice(string message)
    {
        AnsiConsole.Write(new Text(message, new Style(Color.Grey)));
        AnsiConsole.WriteLine();
    }
}
