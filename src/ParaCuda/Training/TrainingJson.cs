using System.Text.Json.Serialization;

namespace ParaCuda.Training;

/// <summary>
/// The JSON of training state (checkpoint headers) and metrics lines, generated at compile time: snake_case,
/// every field written, NaN written as "NaN" (an epoch stopped part-way has nothing evaluated).
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(TrainingState))]
[JsonSerializable(typeof(EpochMetrics))]
internal sealed partial class TrainingJson : JsonSerializerContext;
