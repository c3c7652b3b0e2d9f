using ParaCuda.Data;

namespace ParaCuda.Tests.Data;

public class DatasetTests
{
    /// <summary>n one-channel 1×2 images whose two pixels spell the index, so every image is recognisable.</summary>
    private static ImageDataset Numbered(int n, int classes = 10)
    {
        var pixels = new byte[2 * n];
        for (var i = 0; i < n; i++)
        {
            pixels[2 * i] = (byte)i;
            pixels[(2 * i) + 1] = (byte)(i >> 8);
        }

        return new ImageDataset("numbered", 1, 1, 2, classes, pixels, Enumerable.Range(0, n).Select(i => i % classes).ToArray());
    }

    private static int[] Numbers(ImageDataset data) =>
        Enumerable.Range(0, data.Count).Select(i => data.Image(i)[0] | (data.Image(i)[1] << 8)).ToArray();

    [Test]
    public void The_constructor_names_what_is_wrong()
    {
        var e = Assert.Throws<ArgumentException>(() => new ImageDataset("d", 1, 2, 2, 10, new byte[12], new[] { 0, 1 }));
        Assert.That(e.Message, Does.Contain("2 labels need 8 pixel bytes (1×2×2 each) but 12 were given"));
        e = Assert.Throws<ArgumentException>(() => new ImageDataset("d", 1, 1, 1, 10, new byte[6], new[] { 0, 1, 2, 3, 4, 12 }));
        Assert.That(e.Message, Does.Contain("label 12 at index 5 is outside 0..9"));
        Assert.Throws<ArgumentException>(() => new ImageDataset("d", 0, 1, 1, 10, Array.Empty<byte>(), Array.Empty<int>()));
    }

    [Test]
    public void Subset_and_where_label_copy_the_chosen_images()
    {
        var data = Numbered(300);
        var subset = data.Subset([299, 3, 3, 150], "picked");
        Assert.That(subset.Name, Is.EqualTo("picked"));
        Assert.That(Numbers(subset), Is.EqualTo(new[] { 299, 3, 3, 150 }));
        Assert.That(subset.Labels.ToArray(), Is.EqualTo(new[] { 9, 3, 3, 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Subset([0, 300]));

        var odd = data.WhereLabel(label => label % 2 == 1);
        Assert.That(odd.Count, Is.EqualTo(150));
        Assert.That(odd.Classes, Is.EqualTo(10));
        Assert.That(Numbers(odd), Is.EqualTo(Enumerable.Range(0, 300).Where(i => i % 2 == 1)));
        Assert.That(odd.Labels.ToArray(), Is.EqualTo(Enumerable.Range(0, 300).Where(i => i % 2 == 1).Select(i => i % 10)));
    }

    [Test]
    public void Split_is_disjoint_complete_sized_by_floor_and_seeded()
    {
        var data = Numbered(1001);
        var (train, validation) = data.Split(0.15, seed: 7);
        Assert.That(validation.Count, Is.EqualTo(150));
        Assert.That(train.Count, Is.EqualTo(851));
        var trainNumbers = Numbers(train);
        var validationNumbers = Numbers(validation);
        Assert.That(trainNumbers.Concat(validationNumbers).Order(), Is.EqualTo(Enumerable.Range(0, 1001)));
        Assert.That(train.Labels.ToArray(), Is.EqualTo(trainNumbers.Select(i => i % 10)));

        var (_, again) = data.Split(0.15, seed: 7);
        var (_, other) = data.Split(0.15, seed: 8);
        Assert.That(Numbers(again), Is.EqualTo(validationNumbers));
        Assert.That(Numbers(other), Is.Not.EqualTo(validationNumbers));

        // Not simply the first or last images.
        Assert.That(validationNumbers.Min(), Is.LessThan(100));
        Assert.That(validationNumbers.Max(), Is.GreaterThan(900));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Split(1.5, 0));
    }

    [Test]
    public void Synthetic_data_is_deterministic_and_separable_by_class_means()
    {
        var data = Synthetic.Create(2000, 10, 3, 16, seed: 1);
        Assert.That(Synthetic.Create(2000, 10, 3, 16, seed: 1).Pixels.ToArray(), Is.EqualTo(data.Pixels.ToArray()));
        Assert.That(Synthetic.Create(2000, 10, 3, 16, seed: 2).Pixels.ToArray(), Is.Not.EqualTo(data.Pixels.ToArray()));

        var (train, test) = data.Split(0.25, seed: 0);
        var size = data.ImageBytes;
        var means = new double[data.Classes, size];
        var counts = new int[data.Classes];
        for (var i = 0; i < train.Count; i++)
        {
            var label = train.Labels.Span[i];
            counts[label]++;
            var image = train.Image(i);
            for (var j = 0; j < size; j++)
            {
                means[label, j] += image[j];
            }
        }

        var correct = 0;
        for (var i = 0; i < test.Count; i++)
        {
            var image = test.Image(i);
            var distances = new double[data.Classes];
            for (var k = 0; k < data.Classes; k++)
            {
                for (var j = 0; j < size; j++)
                {
                    var d = image[j] - (means[k, j] / counts[k]);
                    distances[k] += d * d;
                }
            }

            correct += Array.IndexOf(distances, distances.Min()) == test.Labels.Span[i] ? 1 : 0;
        }

        Assert.That(correct / (double)test.Count, Is.GreaterThan(0.9));

        // Not trivially separable either: the noise is real (images of one class differ).
        Assert.That(data.Image(0).SequenceEqual(data.Image(10)), Is.False);
    }
}
