using System.CommandLine;
using ParaCuda.Reporting;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary><c>paracuda report</c>: REPORT.md and PNG figures from training runs, compression and continual-learning results.</summary>
internal static class ReportCommand
{
    private static readonly Option<string[]> s_runs = new("--runs") { Description = "Run folders, folders holding runs, or report .json files", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> s_out = new("--out") { Description = "Folder for REPORT.md and its figures", DefaultValueFactory = _ => "report" };

    public static Command Create()
    {
        var command = new Command("report", "Write REPORT.md with plots from metrics, compression and continual-learning results") { s_runs, s_out };
        command.SetAction(parse => Cli.Run(() =>
        {
            var path = Report.Write(parse.GetValue(s_runs)!, parse.GetValue(s_out)!);
            AnsiConsole.WriteLine($"wrote {path}");
            return 0;
        }));
        return command;
    }
}
