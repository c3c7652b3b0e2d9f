using System.Text.Json;

namespace ParaCuda.Training;

/// <summary>Loss and accuracy of the model restricted to its first <see cref="K"/> branches.</summary>
public sealed record PrefixMetrics(int K, double ValLoss, double ValAccuracy, double TestLoss, double TestAccuracy);

/// <summary>
/// One line of <c>metrics.jsonl</c>: what an epoch did and how the model stands after it. Accuracies are
/// fractions in [0, 1]; the overall validation and test figures are those of the full model (k = B). On GPUs,
/// the device memory the run's tensors peaked at and the memory the allocator held at the epoch's end (null on
/// the CPU). A run stopped inside an epoch records it as <see cref="Partial"/>: train loss and accuracy so far,
/// no evaluation (NaN); a resumed run replaces that line.
/// </summary>
public sealed record EpochMetrics(
    int Epoch,
    string Schedule,
    string Model,
    double TrainLoss,
    double TrainAccuracy,
    double ValLoss,
    double ValAccuracy,
    double TestLoss,
    double TestAccuracy,
    IReadOnlyList<PrefixMetrics> Prefixes,
    double EpochSeconds,
    double ImagesPerSecond,
    long Steps,
    double ElapsedSeconds,
    long? DevicePeakBytes = null,
    long? DeviceReservedBytes = null,
    bool Partial = false)
{
    /// <summary>snake_case JSON, one object per line, for pandas/jq users.</summary>
    public string ToJsonLine() => JsonSerializer.Serialize(this, TrainingJson.Default.EpochMetrics);

    public static EpochMetrics FromJsonLine(string line) =>
        JsonSerializer.Deserialize(line, TrainingJson.Default.EpochMetrics) ?? throw new JsonException("empty metrics line");

    /// <summary>
    /// Reads a metrics.jsonl file, naming the file and line of anything it cannot parse. A last line without its
    /// newline that does not parse is a write cut short (a crash, a full disk) and is left out.
    /// </summary>
    public static IReadOnlyList<EpochMetrics> ReadFile(string path)
    {
        var text = File.ReadAllText(path);
        var lines = text.Split('\n');
        var result = new List<EpochMetrics>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            try
            {
                result.Add(FromJsonLine(lines[i]));
            }
            catch (JsonException e)
            {
                if (i == lines.Length - 1)
                {
                    break;
                }

                throw new InvalidDataException($"{path}:{i + 1}: not a metrics line ({e.Message})", e);
            }
        }

        return result;
    }
}
