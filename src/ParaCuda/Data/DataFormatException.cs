namespace ParaCuda.Data;

/// <summary>
/// A data file is not what its reader expects; the message names the file and the problem. An
/// <see cref="IOException"/> (InvalidDataException is sealed), so one catch covers missing and malformed data.
/// </summary>
public sealed class DataFormatException : IOException
{
    public DataFormatException()
    {
    }

    public DataFormatException(string message)
        : base(message)
    {
    }

    public DataFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
