namespace ParaCuda.Tensors;

/// <summary>
/// A block of memory on one device, shared by a tensor and its views through a reference count:
/// the last holder to let go frees it, at that moment and on that thread.
/// </summary>
public abstract class Storage
{
    private static long s_liveBytes;
    private static long s_liveCount;
    private int _refs = 1;

    protected Storage(Device device, long byteLength)
    {
        Device = device;
        ByteLength = byteLength;
        Interlocked.Add(ref s_liveBytes, byteLength);
        Interlocked.Increment(ref s_liveCount);
    }

    public Device Device { get; }

    public long ByteLength { get; }

    public bool IsFreed => Volatile.Read(ref _refs) <= 0;

    /// <summary>Bytes held by all storages not yet freed, on every device; tests use it to find leaks.</summary>
    public static long LiveBytes => Interlocked.Read(ref s_liveBytes);

    public static long LiveCount => Interlocked.Read(ref s_liveCount);

    internal void AddRef()
    {
        if (Interlocked.Increment(ref _refs) <= 1)
        {
            throw new ObjectDisposedException(nameof(Storage), "storage was already freed");
        }
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            Free();
            Interlocked.Add(ref s_liveBytes, -ByteLength);
            Interlocked.Decrement(ref s_liveCount);
        }
    }

    /// <summary>
    /// Notes that work ordered on <paramref name="context"/> uses this memory, so that a device backend does
    /// not hand it to other work before that context is done with it (a stream-ordered free). Nothing to do
    /// on the CPU, whose contexts run work as it is issued.
    /// </summary>
    internal virtual void UseOn(Backends.ComputeContext context)
    {
    }

    /// <summary>Returns the memory to its device (or to the backend's cache).</summary>
    protected abstract void Free();
}
