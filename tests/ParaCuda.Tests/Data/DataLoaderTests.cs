using System.Buffers;
using System.Runtime.InteropServices;
using ParaCuda.Data;

namespace ParaCuda.Tests.Data;

public class DataLoaderTests
{
    private static readonly Transform s_identity = new([0f], [1f / 255f], OutputSize: 4);

    /// <summary>
    /// n one-channel 4×4 images, image i labelled i (one class per image) with its first two pixels
    /// spelling i, so a batch shows which samples it holds and that images and labels stay paired.
    /// </summary>
    private static ImageDataset Numbered(int n)
    {
        var pixels = new byte[16 * n];
        for (var i = 0; i < n; i++)
        {
            pixels[16 * i] = (byte)i;
            pixels[(16 * i) + 1] = (byte)(i >> 8);
        }

        return new ImageDataset("numbered", 1, 4, 4, n, pixels, Enumerable.Range(0, n).ToArray());
    }

    /// <summary>Labels and images of every batch, copied out while each batch is valid.</summary>
    private static List<(int Index, int[] Labels, float[] Images)> Collect(DataLoader loader, int epoch, int startBatch = 0) =>
        loader.Epoch(epoch, startBatch).Select(b => (b.Index, b.Labels.ToArray(), b.Images.ToArray())).ToList();

    [Test]
    public void A_shuffled_epoch_covers_every_sample_once_with_its_own_image()
    {
        using var loader = new DataLoader(Numbered(1000), 64, s_identity, shuffle: true, seed: 3, workers: 2, prefetch: 2);
        Assert.That(loader.BatchesPerEpoch, Is.EqualTo(16));
        var batches = Collect(loader, 0);
        Assert.That(batches.Select(b => b.Index), Is.EqualTo(Enumerable.Range(0, 16)));
        Assert.That(batches.Select(b => b.Labels.Length), Is.EqualTo(Enumerable.Repeat(64, 15).Append(40)));
        var labels = batches.SelectMany(b => b.Labels).ToArray();
        Assert.That(labels.Order(), Is.EqualTo(Enumerable.Range(0, 1000)));
        Assert.That(labels, Is.Not.Ordered);
        foreach (var (_, batchLabels, images) in batches)
        {
            for (var i = 0; i < batchLabels.Length; i++)
            {
                Assert.That((int)images[16 * i] + ((int)images[(16 * i) + 1] << 8), Is.EqualTo(batchLabels[i]));
            }
        }
    }

    [Test]
    public void The_order_depends_on_seed_and_epoch_only()
    {
        var data = Numbered(500);
        using var a = new DataLoader(data, 50, s_identity, shuffle: true, seed: 3, workers: 1);
        using var b = new DataLoader(data, 50, s_identity, shuffle: true, seed: 3, workers: 2);
        using var c = new DataLoader(data, 50, s_identity, shuffle: true, seed: 4, workers: 2);
        int[] Order(DataLoader loader, int epoch) => Collect(loader, epoch).SelectMany(x => x.Labels).ToArray();

        Assert.That(Order(b, 1), Is.EqualTo(Order(a, 1)));
        Assert.That(Order(a, 1), Is.Not.EqualTo(Order(a, 0)));
        Assert.That(Order(c, 1), Is.Not.EqualTo(Order(a, 1)));

        using var sequential = new DataLoader(data, 64, s_identity, shuffle: false, seed: 3);
        Assert.That(Order(sequential, 5), Is.EqualTo(Enumerable.Range(0, 500)));
    }

    [Test]
    public void Augmented_batches_are_bit_identical_for_any_number_of_workers()
    {
        var data = Synthetic.Create(300, 10, 3, 16, seed: 5);
        var transform = Transform.Reference(3, 24, train: true);
        using var one = new DataLoader(data, 32, transform, shuffle: true, seed: 9, workers: 1, prefetch: 1);
        using var two = new DataLoader(data, 32, transform, shuffle: true, seed: 9, workers: 2, prefetch: 3);
        var expected = Collect(one, 2);
        var actual = Collect(two, 2);
        Assert.That(actual, Has.Count.EqualTo(expected.Count));
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.That(actual[i].Labels, Is.EqualTo(expected[i].Labels), $"batch {i}");
            Assert.That(actual[i].Images.AsSpan().SequenceEqual(expected[i].Images), Is.True, $"batch {i}");
        }
    }

    [Test]
    public void Augmentation_is_repeatable_within_an_epoch_and_fresh_across_epochs()
    {
        // Unshuffled, so position i holds the same image in every epoch and only the augmentation can differ.
        var data = Synthetic.Create(64, 4, 3, 16, seed: 5);
        using var loader = new DataLoader(data, 64, Transform.Reference(3, 16, train: true), shuffle: false, seed: 9, workers: 2);
        var epoch0 = Collect(loader, 0)[0].Images;
        Assert.That(Collect(loader, 0)[0].Images.AsSpan().SequenceEqual(epoch0), Is.True);
        var epoch1 = Collect(loader, 1)[0].Images;
        var imageLength = 3 * 16 * 16;
        var changed = Enumerable.Range(0, 64).Count(i => !epoch0.AsSpan(i * imageLength, imageLength).SequenceEqual(epoch1.AsSpan(i * imageLength, imageLength)));
        Assert.That(changed, Is.GreaterThan(48));
    }

    [Test]
    public void Starting_mid_epoch_yields_exactly_the_remaining_batches()
    {
        var data = Synthetic.Create(200, 4, 1, 8, seed: 2);
        using var loader = new DataLoader(data, 16, Transform.Reference(1, 8, train: true), shuffle: true, seed: 1, workers: 2);
        var full = Collect(loader, 4);
        var rest = Collect(loader, 4, startBatch: 9);
        Assert.That(rest.Select(b => b.Index), Is.EqualTo(Enumerable.Range(9, 4)));
        for (var i = 0; i < rest.Count; i++)
        {
            Assert.That(rest[i].Labels, Is.EqualTo(full[9 + i].Labels));
            Assert.That(rest[i].Images.AsSpan().SequenceEqual(full[9 + i].Images), Is.True, $"batch {9 + i}");
        }

        Assert.That(Collect(loader, 4, startBatch: loader.BatchesPerEpoch), Is.Empty);
        Assert.Throws<ArgumentOutOfRangeException>(() => loader.Epoch(0, loader.BatchesPerEpoch + 1));
    }

    [Test]
    public void Buffers_are_reused_across_batches_and_epochs()
    {
        using var loader = new DataLoader(Numbered(640), 16, s_identity, shuffle: true, seed: 0, workers: 2, prefetch: 2);
        var arrays = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        for (var epoch = 0; epoch < 2; epoch++)
        {
            foreach (var batch in loader.Epoch(epoch))
            {
                Assert.That(MemoryMarshal.TryGetArray(batch.Images, out var segment), Is.True);
                arrays.Add(segment.Array!);
            }
        }

        // The one the consumer holds plus the two built ahead.
        Assert.That(arrays, Has.Count.LessThanOrEqualTo(3));
    }

    [Test]
    public void Disposing_a_batch_early_and_again_later_releases_it_once()
    {
        using var loader = new DataLoader(Numbered(640), 16, s_identity, shuffle: true, seed: 0, workers: 2, prefetch: 2);
        var expected = Collect(loader, 0).Select(b => b.Labels).ToList();
        var received = 0;
        foreach (var batch in loader.Epoch(0))
        {
            var labels = batch.Labels.ToArray();
            batch.Dispose();
            batch.Dispose();
            Assert.That(labels, Is.EqualTo(expected[received++]));
        }

        Assert.That(received, Is.EqualTo(40));
    }

    [Test]
    public void A_batch_cannot_be_read_after_the_consumer_moved_on()
    {
        using var loader = new DataLoader(Numbered(64), 16, s_identity, shuffle: false, seed: 0, workers: 1);
        using var batches = loader.Epoch(0).GetEnumerator();
        Assert.That(batches.MoveNext(), Is.True);
        var first = batches.Current;
        Assert.That(first.Labels.Span[0], Is.EqualTo(0));
        Assert.That(batches.MoveNext(), Is.True);
        var e = Assert.Throws<ObjectDisposedException>(() => _ = first.Labels);
        Assert.That(e.Message, Does.Contain("batch 0"));
    }

    [Test]
    public void A_worker_failure_reaches_the_consumer([Values(1, 2)] int workers)
    {
        // The images live in memory that goes away mid-epoch, like a memory-mapped file being closed.
        using var memory = new ClosableMemory(new byte[16 * 400]);
        var data = new ImageDataset("mapped", 1, 4, 4, 10, memory.Memory, new int[400]);
        using var loader = new DataLoader(data, 8, s_identity, shuffle: true, seed: 0, workers: workers, prefetch: 2);

        var received = 0;
        var consume = Task.Run(() =>
        {
            foreach (var batch in loader.Epoch(0))
            {
                if (++received == 3)
                {
                    memory.Close();
                }
            }
        });

        // A hang would fail here rather than block the test run.
        Assert.That(() => consume.Wait(TimeSpan.FromSeconds(60)), Throws.InstanceOf<AggregateException>()
            .With.InnerException.TypeOf<InvalidOperationException>()
            .With.InnerException.Message.EqualTo("the mapped file was closed"));
        Assert.That(received, Is.LessThan(loader.BatchesPerEpoch));
    }

    [Test]
    public void Cancelling_stops_the_epoch()
    {
        using var loader = new DataLoader(Numbered(400), 8, s_identity, shuffle: true, seed: 0, workers: 2, prefetch: 2);
        using var cancel = new CancellationTokenSource();
        var received = 0;
        Assert.That(
            () =>
            {
                foreach (var batch in loader.Epoch(0, ct: cancel.Token))
                {
                    if (++received == 2)
                    {
                        cancel.Cancel();
                    }
                }
            },
            Throws.InstanceOf<OperationCanceledException>());
        Assert.That(received, Is.LessThan(loader.BatchesPerEpoch));

        // The loader is still usable afterwards.
        Assert.That(Collect(loader, 1).Sum(b => b.Labels.Length), Is.EqualTo(400));
    }

    [Test]
    public void Disposing_the_loader_stops_a_running_epoch()
    {
        var loader = new DataLoader(Numbered(400), 8, s_identity, shuffle: true, seed: 0, workers: 2, prefetch: 2);
        var received = 0;
        Assert.That(
            () =>
            {
                foreach (var batch in loader.Epoch(0))
                {
                    if (++received == 2)
                    {
                        loader.Dispose();
                    }
                }
            },
            Throws.InstanceOf<OperationCanceledException>());

        // Batches already built ahead may still arrive, no more.
        Assert.That(received, Is.LessThanOrEqualTo(2 + 3));
        Assert.Throws<ObjectDisposedException>(() => loader.Epoch(1));
    }

    /// <summary>Memory whose span stops being available once closed.</summary>
    private sealed class ClosableMemory(byte[] bytes) : MemoryManager<byte>
    {
        private volatile bool _closed;

        public void Close() => _closed = true;

        public override Span<byte> GetSpan() => _closed ? throw new InvalidOperationException("the mapped file was closed") : bytes;

        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing) => _closed = true;
    }
}
