namespace ParaCuda.Backends;

/// <summary>An op was called with tensors it cannot work on; the message names the op and the shapes.</summary>
public sealed class TensorOpException : ArgumentException
{
    public TensorOpException()
    {
        Op = "";
    }

    public TensorOpException(string message)
        : base(message)
    {
        Op = "";
    }

    public TensorOpException(string message, Exception innerException)
        : base(message, innerException)
    {
        Op = "";
    }

    public TensorOpException(string op, string problem)
        : base($"{op}: {problem}")
    {
        Op = op;
    }

    public string Op { get; }
}
