namespace ParaCuda.Tensors;

/// <summary>
/// Frees the temporaries of one unit of work (a training step, an evaluation batch) at once.
/// Every tensor created on this thread while the scope is innermost is disposed with it, unless
/// it was handed out with <see cref="Keep"/>. Scopes nest and must be disposed in reverse order.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic]
    private static TensorScope? t_current;

    private readonly TensorScope? _parent;
    private readonly List<Tensor>? _owned;
    private bool _disposed;

    private TensorScope(bool recording)
    {
        _parent = t_current;
        _owned = recording ? [] : null;
        t_current = this;
    }

    /// <summary>Opens a scope that owns every tensor created until it is disposed.</summary>
    public static TensorScope Begin() => new(recording: true);

    /// <summary>
    /// Opens a scope in which new tensors belong to nobody (parameters, gradients, optimizer state):
    /// they live until disposed explicitly, whatever scope encloses this one.
    /// </summary>
    public static TensorScope Unscoped() => new(recording: false);

    /// <summary>Number of tensors this scope will dispose.</summary>
    public int Count => _owned?.Count ?? 0;

    internal static void Register(Tensor tensor) => t_current?._owned?.Add(tensor);

    /// <summary>Takes <paramref name="tensor"/> out of this scope and gives it to the enclosing one (or to the caller).</summary>
    public Tensor Keep(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (_owned is not null && _owned.Remove(tensor))
        {
            _parent?._owned?.Add(tensor);
        }

        return tensor;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (!ReferenceEquals(t_current, this))
        {
            throw new InvalidOperationException("TensorScope disposed out of order: dispose inner scopes first (or use 'using').");
        }

        _disposed = true;
        t_current = _parent;
        if (_owned is null)
        {
            return;
        }

        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
    }
}
