namespace ParaCuda.Tests.Cli;

/// <summary>Runs the CLI in process, capturing what it writes to stderr.</summary>
internal static class CommandRunner
{
    public static (int Code, string Error) Run(params string[] args)
    {
        var saved = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        try
        {
            return (ParaCuda.Cli.Cli.Main(args), error.ToString());
        }
        finally
        {
            Console.SetError(saved);
        }
    }

    /// <summary>Exit code 2 and one "error:" line naming the problem, never a stack trace.</summary>
    public static void AssertUserError((int Code, string Error) result, string expected)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.Code, Is.EqualTo(2), result.Error);
            Assert.That(result.Error, Does.StartWith("error: "));
            Assert.That(result.Error, Does.Contain(expected));
            Assert.That(result.Error, Does.Not.Contain("   at "), "no stack trace");
        });
    }
}
