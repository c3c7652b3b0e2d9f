using System.Text.Json;
using ParaCuda.Backends;
using ParaCuda.Training;

namespace ParaCuda.Cli;

/// <summary>Turns what can go wrong in a command into one line on stderr and an exit code.</summary>
internal static class Cli
{
    /// <summary>Exit code for a mistake in the input: bad arguments, missing or malformed files.</summary>
    public const int UserErrorCode = 2;

    /// <summary>Exit code for training that diverged (NaN or infinite loss).</summary>
    public const int DivergedCode = 3;

    public static int Run(Func<int> command)
    {
        try
        {
            return command();
        }
        catch (Exception e) when (e is UserError or ArgumentException or IOException or UnauthorizedAccessException or TensorOpException or JsonException)
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
}
