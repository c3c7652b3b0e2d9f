using System.Text.Json.Serialization;

namespace ParaCuda.Compression;

/// <summary>The compression report's JSON, generated at compile time: snake_case, indented.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(CompressionReport))]
internal sealed partial class CompressionJson : JsonSerializerContext;
