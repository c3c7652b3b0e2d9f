using System.Runtime.Intrinsics;
using ParaCuda.Backends.Cpu;

namespace ParaCuda.Perf;

/// <summary>
/// What this CPU can do at best, measured rather than read off a datasheet. A ceiling is a best case, so it
/// is the 10th-percentile time of many short repeats, not the median (shared machines are noisy).
/// </summary>
public static unsafe class CpuCeilings
{
    /// <summary>Peak float32 FMA throughput on all cores, GFLOP/s: independent vector FMAs in registers.</summary>
    public static double FmaGflops()
    {
        const long iterations = 2_000_000;
        var threads = Environment.ProcessorCount;
        var lanes = Vector512.IsHardwareAccelerated ? 16 : 8;
        // Long-lived threads released together for each repeat. Threads started per repeat gave 206 to 355
        // GFLOP/s from run to run on a 2-core AMD EPYC VM, below its GEMMs (the scheduler had not spread
        // them yet, we think); these give 434-439. Dedicated rather than pool threads: Parallel.For may run
        // such short bodies one after another on the calling thread.
        using var start = new Barrier(threads + 1);
        using var done = new Barrier(threads + 1);
        var running = true;
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            while (true)
            {
                start.SignalAndWait();
                if (!Volatile.Read(ref running))
                {
                    return;
                }

                Burn(iterations);
                done.SignalAndWait();
            }
        })
        { IsBackground = true }).ToList();
        workers.ForEach(w => w.Start());
        Stats stats;
        try
        {
            stats = Timing.Measure(
                CpuBackend.Instance.DefaultContext,
                _ =>
                {
                    start.SignalAndWait();
                    done.SignalAndWait();
                },
                budgetSeconds: 1,
                minRepeats: 20,
                warmup: 3);
        }
        finally
        {
            Volatile.Write(ref running, false);
            start.SignalAndWait();
            workers.ForEach(w => w.Join());
        }

        return threads * iterations * 12.0 * lanes * 2 / (stats.P10Ms * 1e6);
    }

    /// <summary>Large host-memory copy on all cores, GB/s counting bytes read plus bytes written.</summary>
    public static double CopyGBps()
    {
        const int bytes = 512 << 20;
        var source = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        var destination = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            new Span<byte>(source, (int)bytes).Fill(1);
            var chunks = Environment.ProcessorCount * 4;
            var stats = Timing.Measure(
                CpuBackend.Instance.DefaultContext,
                _ => Parallel.For(0, chunks, c =>
                {
                    var length = bytes / chunks;
                    Buffer.MemoryCopy(source + (c * length), destination + (c * length), length, length);
                }),
                budgetSeconds: 1,
                minRepeats: 10,
                warmup: 1);
            return 2.0 * bytes / (stats.P10Ms * 1e6);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(source);
            System.Runtime.InteropServices.NativeMemory.AlignedFree(destination);
        }
    }

    private static void Burn(long iterations)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Burn<V512, Vector512<float>>(iterations);
        }
        else
        {
            Burn<V256, Vector256<float>>(iterations);
        }
    }

    // Twelve independent accumulators cover FMA latency × issue width on current cores. Each carries its
    // chain through the addend, as the GEMM micro-kernel does: through the multiplicand it measured ~20 %
    // slower on AMD Zen 5, below the GEMMs it is meant to bound. Fully optimised from the first call: it
    // runs once per thread, so tiered compilation would time its unoptimised tier.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Burn<TOps, TV>(long iterations)
        where TOps : struct, IVectorOps<TV>
        where TV : struct
    {
        var m = TOps.Splat(0.999999f);
        var a = TOps.Splat(1e-7f);
        TV c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = TOps.MultiplyAdd(m, a, c0);
            c1 = TOps.MultiplyAdd(m, a, c1);
            c2 = TOps.MultiplyAdd(m, a, c2);
            c3 = TOps.MultiplyAdd(m, a, c3);
            c4 = TOps.MultiplyAdd(m, a, c4);
            c5 = TOps.MultiplyAdd(m, a, c5);
            c6 = TOps.MultiplyAdd(m, a, c6);
            c7 = TOps.MultiplyAdd(m, a, c7);
            c8 = TOps.MultiplyAdd(m, a, c8);
            c9 = TOps.MultiplyAdd(m, a, c9);
            c10 = TOps.MultiplyAdd(m, a, c10);
            c11 = TOps.MultiplyAdd(m, a, c11);
        }

        // Fold every accumulator into one value the JIT cannot prove unused.
        var one = TOps.Splat(1f);
        var sum = TOps.MultiplyAdd(c0, one, c1);
        sum = TOps.MultiplyAdd(sum, one, TOps.MultiplyAdd(c2, one, c3));
        sum = TOps.MultiplyAdd(sum, one, TOps.MultiplyAdd(c4, one, c5));
        sum = TOps.MultiplyAdd(sum, one, TOps.MultiplyAdd(c6, one, c7));
        sum = TOps.MultiplyAdd(sum, one, TOps.MultiplyAdd(c8, one, c9));
        sum = TOps.MultiplyAdd(sum, one, TOps.MultiplyAdd(c10, one, c11));
        var lanes = stackalloc float[TOps.Width];
        TOps.Store(lanes, sum);
        var total = lanes[0];
        Sink(total);
    }

    private static void Sink(float value)
    {
        if (float.IsNaN(value))
        {
            Console.Error.WriteLine("FMA burn produced NaN");
        }
    }
}
