using System.Text.Json.Serialization;

namespace ParaCuda.Continual;

/// <summary>The continual-learning report's JSON, generated at compile time: snake_case, indented.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(ContinualReport))]
internal sealed partial class ContinualJson : JsonSerializerContext;
