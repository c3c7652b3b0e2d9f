using System.Runtime.InteropServices;
using ParaCuda.Native;

namespace ParaCuda.Backends.Cuda.Emulator;

/// <summary>
/// One allocation of the emulated platform: device memory (with guard zones before and after it) or pinned
/// host memory. Addresses are host addresses, so a kernel dereferences them directly. The access record is
/// what the race detector (<see cref="HappensBefore"/>) compares against.
/// </summary>
internal sealed unsafe class Allocation
{
    public const int GuardBytes = 256;
    public const byte GuardByte = 0x5A;

    public Allocation(EmulatedGpu? owner, long bytes, bool pinned)
    {
        Owner = owner;
        Bytes = bytes;
        Pinned = pinned;
        var guard = pinned ? 0 : GuardBytes;
        Base = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes + (2 * guard)), 256);
        Start = (ulong)(Base + guard);
        // A real allocation holds garbage: NaN bytes make a read of what nobody wrote show in every float.
        NativeMemory.Fill((void*)Start, (nuint)bytes, 0xFF);

        if (!pinned)
        {
            new Span<byte>(Base, guard).Fill(GuardByte);
            new Span<byte>((void*)(Start + (ulong)bytes), guard).Fill(GuardByte);
        }
    }

    /// <summary>The device that allocated it; null for pinned host memory.</summary>
    public EmulatedGpu? Owner { get; }

    public byte* Base { get; }

    public ulong Start { get; }

    public long Bytes { get; }

    public bool Pinned { get; }

    public ulong End => Start + (ulong)Bytes;

    /// <summary>The last write, and the reads since, by stream (see <see cref="HappensBefore"/>).</summary>
    public Access? LastWrite { get; set; }

    public Dictionary<int, Access> Reads { get; } = [];

    public string Describe() => Pinned ? $"the {Bytes}-byte pinned host buffer at 0x{Start:x}" : $"the {Bytes}-byte buffer at 0x{Start:x}";

    /// <summary>Whether something wrote into the guard zones: null, or which side and how far.</summary>
    public string? GuardDamage()
    {
        if (Pinned)
        {
            return null;
        }

        var before = new ReadOnlySpan<byte>(Base, GuardBytes);
        var after = new ReadOnlySpan<byte>((void*)End, GuardBytes);
        var last = before.LastIndexOfAnyExcept(GuardByte);
        if (last >= 0)
        {
            return $"{GuardBytes - last} byte(s) before the start of {Describe()}";
        }

        var first = after.IndexOfAnyExcept(GuardByte);
        return first >= 0 ? $"{first + 1} byte(s) past the end of {Describe()}" : null;
    }

    public void Release() => NativeMemory.AlignedFree(Base);
}

/// <summary>One stream operation's access to an allocation, for race reports.</summary>
internal sealed record Access(int Stream, long Time, string What);

/// <summary>
/// Every live allocation of the emulated platform, found by address: a kernel argument, a copy's source or
/// destination, or a GEMM operand is checked to lie inside one, so a use after free or an operand that runs
/// past its buffer is an error at the call rather than silent corruption.
/// </summary>
internal sealed class MemoryMap
{
    private readonly SortedList<ulong, Allocation> _byStart = [];
    private readonly Lock _lock = new();

    public long DeviceBytes(EmulatedGpu gpu)
    {
        lock (_lock)
        {
            return _byStart.Values.Where(a => a.Owner == gpu).Sum(a => a.Bytes);
        }
    }

    public void Add(Allocation a)
    {
        lock (_lock)
        {
            _byStart.Add(a.Start, a);
        }
    }

    public Allocation Remove(ulong start, bool pinned, string call)
    {
        lock (_lock)
        {
            if (!_byStart.TryGetValue(start, out var a) || a.Pinned != pinned)
            {
                throw new CudaException($"CUDA_ERROR_INVALID_VALUE in {call}: 0x{start:x} is not the start of a live {(pinned ? "pinned" : "device")} allocation (freed twice, or never allocated)", CudaDriver.InvalidValue);
            }

            _byStart.Remove(start);
            return a;
        }
    }

    /// <summary>Takes every allocation of <paramref name="gpu"/> out of the map (the device is going away).</summary>
    public List<Allocation> RemoveAll(EmulatedGpu gpu)
    {
        lock (_lock)
        {
            var owned = _byStart.Values.Where(a => a.Owner == gpu).ToList();
            foreach (var a in owned)
            {
                _byStart.Remove(a.Start);
            }

            return owned;
        }
    }

    /// <summary>The allocation holding [address, address + bytes), or null.</summary>
    public Allocation? Find(ulong address, long bytes = 1)
    {
        lock (_lock)
        {
            var keys = _byStart.Keys;
            int lo = 0, hi = keys.Count - 1, found = -1;
            while (lo <= hi)
            {
                var mid = (lo + hi) / 2;
                if (keys[mid] <= address)
                {
                    found = mid;
                    lo = mid + 1;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            if (found < 0)
            {
                return null;
            }

            var a = _byStart.Values[found];
            return address + (ulong)Math.Max(bytes, 0) <= a.End ? a : null;
        }
    }

    /// <summary>Like <see cref="Find"/>, but a range outside every allocation is an error naming the call.</summary>
    public Allocation Require(ulong address, long bytes, string what, string call)
    {
        if (Find(address, bytes) is { } a)
        {
            return a;
        }

        var near = Find(address);
        throw new CudaException(
            near is null
                ? $"CUDA_ERROR_ILLEGAL_ADDRESS in {call}: {what} 0x{address:x} ({bytes} bytes) is in no live allocation (freed, or never allocated)"
                : $"CUDA_ERROR_ILLEGAL_ADDRESS in {call}: {what} reaches {bytes} bytes from 0x{address:x}, past the end of {near.Describe()}",
            700);
    }
}

/// <summary>
/// The race detector: vector clocks over the streams of all emulated devices, advanced in the order the host
/// issues work (which is what CUDA's ordering rules depend on, so the verdict does not depend on timing).
/// An operation on stream s is ordered after an earlier one on stream t when s waited for an event recorded
/// after it, or the host synchronised with it before issuing. Two accesses to one allocation, at least one a
/// write, that are not ordered are a race: the call that issues the second throws, naming both.
/// </summary>
internal sealed class HappensBefore
{
    private readonly List<long[]> _streams = [];
    private long[] _host = [];

    /// <summary>A new stream's index.</summary>
    public int AddStream()
    {
        _streams.Add([]);
        return _streams.Count - 1;
    }

    /// <summary>Ticks stream s for one operation issued by the host and returns its time.</summary>
    public long Tick(int s)
    {
        var clock = Join(s, _host);
        clock[s]++;
        return clock[s];
    }

    public long[] Snapshot(int s) => (long[])Clock(s).Clone();

    /// <summary>Stream s waits for what a snapshot (an event's record) had seen.</summary>
    public void Wait(int s, long[] seen) => Join(s, seen);

    /// <summary>The host has seen everything up to <paramref name="seen"/> complete (a synchronize, or an event found complete).</summary>
    public void HostSaw(long[] seen) => _host = Max(_host, seen);

    public void HostSawStream(int s) => HostSaw(Clock(s));

    /// <summary>Checks and records one access by an operation at (stream, time).</summary>
    public void Access(Allocation a, bool write, int stream, long time, string what, string call)
    {
        var clock = Clock(stream);
        if (a.LastWrite is { } w && !Ordered(w, clock))
        {
            throw Race(a, write ? "writes" : "reads", what, call, w, "wrote");
        }

        if (write)
        {
            foreach (var r in a.Reads.Values)
            {
                if (r.Stream != stream && !Ordered(r, clock))
                {
                    throw Race(a, "writes", what, call, r, "read");
                }
            }

            a.LastWrite = new Access(stream, time, what);
            a.Reads.Clear();
        }
        else
        {
            a.Reads[stream] = new Access(stream, time, what);
        }
    }

    private static bool Ordered(Access earlier, long[] clock) => earlier.Stream < clock.Length && clock[earlier.Stream] >= earlier.Time;

    private static CudaException Race(Allocation a, string verb, string what, string call, Access earlier, string earlierVerb) =>
        new($"race on the emulated device: {call} {verb} {a.Describe()} ({what}) while {earlier.What} on stream {earlier.Stream} {earlierVerb} it, and nothing orders the two (a missing event wait between the streams, or a buffer reused before the stream that used it was done)", 700);

    private long[] Clock(int s) => _streams[s];

    private long[] Join(int s, long[] other)
    {
        var joined = Max(_streams[s], other);
        if (joined.Length <= s)
        {
            Array.Resize(ref joined, s + 1);
        }

        _streams[s] = joined;
        return joined;
    }

    private static long[] Max(long[] a, long[] b)
    {
        var result = new long[Math.Max(a.Length, b.Length)];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = Math.Max(i < a.Length ? a[i] : 0, i < b.Length ? b[i] : 0);
        }

        return result;
    }
}
