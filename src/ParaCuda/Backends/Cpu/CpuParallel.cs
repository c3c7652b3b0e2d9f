namespace ParaCuda.Backends.Cpu;

/// <summary>Splits loops across cores only when the work pays for the hand-off.</summary>
internal static class CpuParallel
{
    /// <summary>Below this many operations a loop runs on the calling thread.</summary>
    private const double MinParallelWork = 32_768;

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, count), in parallel when count·costPerItem is large.</summary>
    public static void For(int count, double costPerItem, Action<int, int> body)
    {
        if (count <= 0)
        {
            return;
        }

        var threads = Engine.Threads;
        var chunks = threads == 1 ? 1 : (int)Math.Min(count, Math.Min(threads * 4, count * costPerItem / MinParallelWork));
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }

        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, i => body((int)((long)i * count / chunks), (int)((long)(i + 1) * count / chunks)));
    }

    /// <summary>
    /// Like <see cref="For"/> but over fixed blocks of <paramref name="blockSize"/> items, whatever the core
    /// count: reductions that keep one partial per block then combine them in block order give the same
    /// bits on every machine and every run.
    /// </summary>
    public static int ForBlocks(int count, int blockSize, double costPerItem, Action<int, int, int> body)
    {
        var blocks = (count + blockSize - 1) / blockSize;
        For(blocks, costPerItem * blockSize, (b0, b1) =>
        {
            for (var blk = b0; blk < b1; blk++)
            {
                body(blk, blk * blockSize, Math.Min(count, (blk + 1) * blockSize));
            }
        });
        return blocks;
    }
}
