namespace ParaCuda.IO;

/// <summary>
/// A checkpoint file is malformed, truncated or corrupted. The message names the file and the problem.
/// An <see cref="IOException"/> (<see cref="InvalidDataException"/> is sealed), so that one handler covers
/// a checkpoint that cannot be opened and one that cannot be parsed.
/// </summary>
public class CheckpointFormatException : IOException
{
    public CheckpointFormatException()
    {
    }

    public CheckpointFormatException(string message)
        : base(message)
    {
    }

    public CheckpointFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
