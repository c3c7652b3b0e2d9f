using ParaCuda.Backends.Cpu;
using ParaCuda.Tensors;

namespace ParaCuda.Backends;

/// <summary>
/// An ordered queue of work on one device: a CUDA stream on a GPU, a logical queue on the CPU.
/// Ops issued on one context run in issue order. Work on two contexts is unordered until one
/// <see cref="Wait"/>s on an event the other <see cref="RecordEvent"/>ed; autograd records the context
/// of every op so that its backward runs there too.
/// </summary>
public abstract class ComputeContext
{
    private static ComputeContext? s_default;

    protected ComputeContext(Backend backend, string name)
    {
        Backend = backend;
        Name = name;
    }

    /// <summary>Where tensors go when a caller names no context: the CPU unless set otherwise.</summary>
    public static ComputeContext Default
    {
        get => s_default ?? CpuBackend.Instance.DefaultContext;
        set => s_default = value;
    }

    public Backend Backend { get; }

    public Device Device => Backend.Device;

    public string Name { get; }

    /// <summary>The op set, issuing onto this context.</summary>
    public abstract Ops Ops { get; }

    /// <summary>Marks the current end of this context's queue.</summary>
    public abstract ContextEvent RecordEvent();

    /// <summary>Makes later work on this context wait until <paramref name="e"/> completed (does not block the host).</summary>
    public abstract void Wait(ContextEvent e);

    /// <summary>Orders this context after everything issued so far on <paramref name="other"/>.</summary>
    public void WaitFor(ComputeContext other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (!ReferenceEquals(other, this))
        {
            using var e = other.RecordEvent();
            Wait(e);
        }
    }

    /// <summary>Blocks the host until everything issued on this context has finished.</summary>
    public abstract void Synchronize();

    /// <summary>
    /// Milliseconds from the start to the end of the work <paramref name="body"/> issues on this context, waiting
    /// for it to finish: timing events around it on a GPU, the wall clock on the CPU (whose ops run as issued).
    /// For benchmarks: warm up first, and feed it fresh data.
    /// </summary>
    public virtual double Time(Action body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        body();
        Synchronize();
        return clock.Elapsed.TotalMilliseconds;
    }

    /// <summary>Whether <see cref="Capture"/> works here: on a CUDA device.</summary>
    public virtual bool CanCapture => false;

    /// <summary>
    /// Records the device work <paramref name="body"/> issues on this context, without running it, as a graph that
    /// <see cref="ContextGraph.Replay"/> runs again and again for one launch's host cost. The body must issue all
    /// its work on this context and never wait for it (no host reads); tensors it allocates keep their memory
    /// for the graph, so results left in a tensor the body created are where each replay writes them.
    /// </summary>
    public virtual ContextGraph Capture(Action body) =>
        throw new NotSupportedException($"{this} cannot capture graphs: they need a CUDA device");

    public override string ToString() => $"{Device}/{Name}";
}

/// <summary>Work captured on one context (<see cref="ComputeContext.Capture"/>), replayed in its order on that context.</summary>
public abstract class ContextGraph : IDisposable
{
    /// <summary>Runs the captured work again, after everything issued on the context so far.</summary>
    public abstract void Replay();

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>
/// A point in one context's queue that other contexts can wait for. Disposing it gives its handle back to the
/// device once nothing more will wait on it (waits already issued are unaffected).
/// </summary>
public abstract class ContextEvent : IDisposable
{
    public abstract bool IsCompleted { get; }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
    }
}
