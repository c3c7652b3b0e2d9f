using ParaCuda.Tensors;

namespace ParaCuda.Backends;

/// <summary>
/// One device's implementation of the engine: how memory is allocated there and how work is ordered
/// (its <see cref="ComputeContext"/>s, each with the full <see cref="Ops"/> set).
/// </summary>
public abstract class Backend : IDisposable
{
    public abstract Device Device { get; }

    /// <summary>One line for logs: the device and what the backend uses on it.</summary>
    public abstract string Description { get; }

    /// <summary>The context that work runs on unless a caller chooses another.</summary>
    public abstract ComputeContext DefaultContext { get; }

    /// <summary>
    /// The context host-to-device copies of input batches go on, so that they overlap the work on the others
    /// (a stream of its own on a GPU; the default context on the CPU, which copies as it is told to).
    /// </summary>
    public virtual ComputeContext UploadContext => DefaultContext;

    /// <summary>Whether models run on this backend in bf16 mixed precision (<see cref="Autograd.Autocast"/>).</summary>
    public virtual bool MixedPrecision => false;

    /// <summary>A new, independently ordered context (a CUDA stream; a logical queue on the CPU).</summary>
    public abstract ComputeContext CreateContext(string name);

    /// <summary>
    /// Memory for a tensor of <paramref name="bytes"/> bytes, owned by the returned storage and ordered on
    /// <paramref name="context"/>: a device backend may reuse it for that context's later work as soon as it is
    /// released, and for other contexts only once the work that used it there has finished.
    /// </summary>
    public abstract Storage Allocate(long bytes, ComputeContext context);

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
