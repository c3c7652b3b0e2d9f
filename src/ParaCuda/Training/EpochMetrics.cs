using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaCuda.Training;

/// <summary>Loss and accuracy of the model restricted to its first <see cref="K"/> branches.</summary>
public sealed record PrefixMetrics(int K, double ValLoss, double ValAccuracy, double TestLoss, double TestAccuracy);

/// <summary>
/// One line of <c>metrics.jsonl</c>: what an epoch did and how the model stands after it. Accuracies are
/// fractions in [0, 1]; the overall validation and test figures are those of the full model (k = B). On GPUs,
/// the device memory the run's tensors peaked at and the memory the allocator held at the epoch's end (null on
/// the CPU).
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
    long? DeviceReservedBytes = null)
{
    /// <summary>snake_case JSON, one object per line, for pandas/jq users.</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJsonLine() => JsonSerializer.Serialize(this, Json);

    public static EpochMetrics FromJsonLine(string line) =>
        JsonSerializer.Deserialize<EpochMetrics>(line, Json) ?? throw new JsonException("empty metrics line");

    /// <summary>Reads a metrics.jsonl file, naming the file and line of anything it cannot parse.</summary>
    public static IReadOnlyList<EpochMetrics> ReadFile(string path)
    {
        var result = new List<EpochMetrics>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                result.Add(FromJsonLine(line));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{number}: not a metrics line ({e.Message})", e);
            }
        }

        return result;
    }
}
