using System.Diagnostics;
using System.Runtime.InteropServices;
using ParaCuda.Training;

namespace ParaCuda.Tests.Cli;

/// <summary>
/// The CLI as a scheduler and a user at a terminal meet it, in a child process with its output redirected:
/// SIGTERM during <c>train</c> and SIGINT (Ctrl+C) during <c>expand</c> stop after the batch in hand with a
/// checkpoint and say so; redirected lines are not wrapped.
/// </summary>
[NonParallelizable]
public partial class SignalTests
{
    private const int Sigint = 2;
    private const int Sigterm = 15;
    private static readonly string[] s_small = ["--dataset", "synthetic", "--branches", "2", "--dim", "16", "--heads", "2", "--mlp-dim", "32", "--batch", "100", "--workers", "1"];

    private string _dir = "";

    [SetUp]
    public void CreateDirectory()
    {
        Assume.That(OperatingSystem.IsWindows(), Is.False, "POSIX signals");
        _dir = Directory.CreateTempSubdirectory("paracuda-signal-").FullName;
    }

    [TearDown]
    public void DeleteDirectory()
    {
        if (_dir.Length > 0)
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    public void Sigterm_during_train_saves_a_checkpoint_that_resumes()
    {
        var output = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = RunUntilSignalled(Sigterm, ["train", .. s_small, "--epochs", "50", "--out", output]);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, stderr);
            Assert.That(stderr, Does.Contain("SIGTERM: stopping after this batch and saving a checkpoint"));
            Assert.That(stdout, Does.Contain($"Continue with: paracuda train --resume --out {output}"));
            Assert.That(File.Exists(Path.Combine(output, Trainer.LastFile)));
            Assert.That(EpochMetrics.ReadFile(Path.Combine(output, Trainer.MetricsFile))[^1].Partial, "the epoch in progress is recorded as partial");
            // Redirected output is for logs: the run's description stays on one line however long it is.
            Assert.That(stdout.Split('\n'), Has.One.Match("^ParaFormer 'tiny': 2 branches × 1 block, .* \\| out: .*run$"));
        });

        var resumed = CommandRunner.Run("train", "--resume", "--out", output, "--max-steps", "1");
        Assert.That(resumed.Code, Is.Zero, resumed.Error);
    }

    [Test]
    public void Ctrl_c_during_expand_saves_the_model_so_far_and_says_so()
    {
        Assume.That(SignalIgnored(Sigint), Is.False, "SIGINT is ignored in this process (started as a background job), so a child would ignore it too");
        var seed = Path.Combine(_dir, "seed");
        Assert.That(CommandRunner.Run(["train", .. s_small, "--max-steps", "2", "--out", seed]).Code, Is.Zero);
        var output = Path.Combine(_dir, "grown");
        var (code, stdout, stderr) = RunUntilSignalled(Sigint, ["expand", "--checkpoint", Path.Combine(seed, Trainer.LastFile), "--add-branches", "1", "--dataset", "synthetic", "--batch", "100", "--epochs", "50", "--out", output]);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, stderr);
            Assert.That(stderr, Does.Contain("Ctrl+C: stopping after this batch"));
            Assert.That(stdout, Does.Contain($"the expanded model so far is in {Path.Combine(output, Trainer.LastFile)}"));
            Assert.That(ParaCuda.Training.Checkpoint.ReadConfig(Path.Combine(output, Trainer.LastFile)).Branches, Is.EqualTo(3));
        });
    }

    /// <summary>Starts the CLI, sends <paramref name="signal"/> once it reports its first batches, and waits for it to end.</summary>
    private (int Code, string Stdout, string Stderr) RunUntilSignalled(int signal, string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _dir,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ParaCuda.Cli.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = new Process { StartInfo = start };
        var stdout = new System.Text.StringBuilder();
        var stderr = new System.Text.StringBuilder();
        using var training = new ManualResetEventSlim();
        process.OutputDataReceived += (_, e) =>
        {
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }

            if (e.Data?.StartsWith("epoch ", StringComparison.Ordinal) == true && e.Data.Contains(" batch ", StringComparison.Ordinal))
            {
                training.Set();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            Assert.That(training.Wait(TimeSpan.FromSeconds(120)), $"the command reported no batch: {stderr}");
            Assert.That(Kill(process.Id, signal), Is.Zero, "signal sent");
            Assert.That(process.WaitForExit(TimeSpan.FromSeconds(120)), "ended after the signal");
            process.WaitForExit();
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Whether this process ignores <paramref name="signal"/> (inherited from the shell that started it).</summary>
    private static bool SignalIgnored(int signal)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line is not null && ((Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) >> (signal - 1)) & 1) == 1;
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
