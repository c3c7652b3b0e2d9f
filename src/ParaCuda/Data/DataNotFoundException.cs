namespace ParaCuda.Data;

/// <summary>
/// A dataset's files are not where they were looked for; the message says where the reader looked and
/// how to get the data, because the person reading it is usually setting up a machine.
/// </summary>
public sealed class DataNotFoundException : FileNotFoundException
{
    public DataNotFoundException()
    {
    }

    public DataNotFoundException(string message)
        : base(message)
    {
    }

    public DataNotFoundException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public DataNotFoundException(string message, string fileName)
        : base(message, fileName)
    {
    }
}
