using System.Diagnostics;
using ParaCuda.Tests.Support;

namespace ParaCuda.Tests.Docs;

/// <summary>
/// The README's first command runs as written for a root user without sudo (a container) and for a user with
/// it; build.ps1 is offered honestly. The commands run against stand-ins for apt-get, sudo and dotnet that
/// record their arguments, so nothing is installed.
/// </summary>
public class ReadmeTests
{
    private static string FirstCommand()
    {
        var lines = File.ReadAllLines(Path.Combine(Repository.Root, "README.md"));
        var fence = Array.FindIndex(lines, l => l.StartsWith("```sh", StringComparison.Ordinal));
        Assert.That(fence, Is.GreaterThanOrEqualTo(0), "the README has a shell block");
        return lines[fence + 1];
    }

    [TestCase(false)]
    [TestCase(true)]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void The_first_command_works_with_and_without_sudo(bool withSudo)
    {
        var stubs = Directory.CreateTempSubdirectory("paracuda-readme-").FullName;
        try
        {
            var log = Path.Combine(stubs, "calls.log");
            Stub(stubs, "apt-get", $"echo \"apt-get $*\" >> {log}");
            Stub(stubs, "dotnet", $"echo \"dotnet $*\" >> {log}");
            if (withSudo)
            {
                Stub(stubs, "sudo", $"echo \"sudo $1\" >> {log}; \"$@\"");
            }

            var shell = new ProcessStartInfo("/bin/sh") { RedirectStandardError = true, WorkingDirectory = stubs };
            shell.ArgumentList.Add("-c");
            shell.ArgumentList.Add(FirstCommand());
            // Only the stand-ins: a real sudo or apt-get on this machine must not be reached.
            shell.Environment["PATH"] = stubs;
            using var process = Process.Start(shell)!;
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();

            var calls = File.Exists(log) ? File.ReadAllLines(log) : [];
            string[] expected = ["apt-get update", "apt-get install -y dataset-fashion-mnist", "dotnet run -c Release --project src/ParaCuda.Cli -- train"];
            Assert.Multiple(() =>
            {
                Assert.That(process.ExitCode, Is.Zero, error);
                Assert.That(calls.Where(c => !c.StartsWith("sudo", StringComparison.Ordinal)), Is.EqualTo(expected));
                Assert.That(calls.Count(c => c.StartsWith("sudo apt-get", StringComparison.Ordinal)), Is.EqualTo(withSudo ? 2 : 0), "sudo only where there is one");
            });
        }
        finally
        {
            Directory.Delete(stubs, recursive: true);
        }
    }

    [Test]
    public void Build_ps1_is_a_runnable_script_and_the_readme_says_what_it_needs()
    {
        var script = Path.Combine(Repository.Root, "build.ps1");
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadLines(script).First(), Is.EqualTo("#!/usr/bin/env pwsh"));
            if (!OperatingSystem.IsWindows())
            {
                Assert.That(File.GetUnixFileMode(script).HasFlag(UnixFileMode.UserExecute), "executable");
            }

            Assert.That(readme, Does.Contain("`build.ps1 build|test|publish|pack|native|kit`").And.Contain("it needs\nPowerShell, `pwsh`"));
        });
    }

    [TestCase("c", "predict.c")]
    [TestCase("python", "predict.py")]
    public void The_embedding_snippets_are_excerpts_of_the_examples_the_tests_run(string language, string example)
    {
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        var embedding = readme[readme.IndexOf("\n## Embedding\n", StringComparison.Ordinal)..];
        embedding = embedding[..embedding.IndexOf("\n## ", 1, StringComparison.Ordinal)];
        var source = File.ReadAllText(Path.Combine(Repository.Root, "native", "libparacuda", "examples", example));
        var blocks = embedding.Split($"```{language}\n").Skip(1).Select(b => b[..b.IndexOf("```", StringComparison.Ordinal)]).ToList();
        Assert.That(blocks, Is.Not.Empty);
        foreach (var block in blocks)
        {
            Assert.That(source, Does.Contain(block), $"README's {language} snippet is not in {example}");
        }
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void Stub(string directory, string name, string body)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, $"#!/bin/sh\n{body}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
