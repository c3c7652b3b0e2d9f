using System.Text.Json;
using System.Text.Json.Serialization;
using ParaCuda.Backends;
using ParaCuda.Nn;

namespace ParaCuda.Models;

/// <summary>The two model families: ParaFormer (parallel branches) and the deep sequential ViT baseline.</summary>
public enum ModelKind
{
    ParaFormer,
    Vit,
}

/// <summary>
/// Everything that fixes a model's architecture (and so its state dict). Saved in checkpoints as JSON;
/// a checkpoint only loads into a model built from an equal config.
/// </summary>
public sealed record ModelConfig
{
    public ModelKind Kind { get; init; } = ModelKind.ParaFormer;

    public int ImageSize { get; init; } = 28;

    public int Channels { get; init; } = 1;

    public int Patch { get; init; } = 4;

    public int Classes { get; init; } = 10;

    public int Dim { get; init; } = 64;

    public int Heads { get; init; } = 2;

    /// <summary>Size of each head; 0 means Dim / Heads.</summary>
    public int HeadDim { get; init; }

    public int MlpDim { get; init; } = 128;

    /// <summary>ParaFormer: number of parallel branches.</summary>
    public int Branches { get; init; } = 4;

    /// <summary>ParaFormer: Transformer blocks per branch.</summary>
    public int BranchDepth { get; init; } = 1;

    /// <summary>ViT: Transformer blocks in sequence.</summary>
    public int Depth { get; init; } = 4;

    public float Dropout { get; init; }

    public float EmbeddingDropout { get; init; }

    public SkipConnection Skip { get; init; } = SkipConnection.Normalized;

    public Pooling Pool { get; init; } = Pooling.Cls;

    [JsonIgnore]
    public int Tokens => (ImageSize / Patch * (ImageSize / Patch)) + 1;

    [JsonIgnore]
    public BlockConfig Block => new(Dim, Heads, MlpDim, Dropout, Skip, HeadDim);

    /// <summary>
    /// The parameters a model of this config has, without building it (for checking a checkpoint's config
    /// against its tensors, and a request against the memory there is): the patch embedding (projection, CLS,
    /// positions), each block (two LayerNorms, qkv without bias, the output projection, the MLP), the head.
    /// Saturates at <see cref="long.MaxValue"/> for absurd configs instead of overflowing.
    /// </summary>
    public long ParameterCount()
    {
        checked
        {
            try
            {
                long dim = Dim, inner = (long)Heads * (HeadDim == 0 ? Dim / Math.Max(Heads, 1) : HeadDim), mlp = MlpDim;
                var embed = (((long)Patch * Patch * Channels * dim) + dim) + dim + ((long)Tokens * dim);
                var block = (2 * dim) + (dim * 3 * inner) + ((inner * dim) + dim) + (2 * dim) + ((dim * mlp) + mlp) + ((mlp * dim) + dim);
                var blocks = Kind == ModelKind.ParaFormer ? (long)Branches * BranchDepth : Depth;
                return embed + (blocks * block) + (2 * dim) + (dim * Classes) + Classes;
            }
            catch (OverflowException)
            {
                return long.MaxValue;
            }
        }
    }

    /// <summary>Why this config cannot build a model, or null when it can.</summary>
    public string? Problem()
    {
        if (ImageSize <= 0 || Patch <= 0 || ImageSize % Patch != 0)
        {
            return $"image size {ImageSize} is not divisible into patches of {Patch}";
        }

        if (Channels <= 0 || Classes < 2 || Dim <= 0 || Heads <= 0 || MlpDim <= 0)
        {
            return "channels, dim, heads and MLP size must be positive and classes at least 2";
        }

        if (HeadDim == 0 && Dim % Heads != 0)
        {
            return $"dim {Dim} is not divisible by {Heads} heads";
        }

        if (Kind == ModelKind.ParaFormer && (Branches <= 0 || BranchDepth <= 0))
        {
            return "a ParaFormer needs at least one branch of at least one block";
        }

        if (Kind == ModelKind.Vit && Depth <= 0)
        {
            return "a ViT needs at least one block";
        }

        return Dropout is < 0 or >= 1 || EmbeddingDropout is < 0 or >= 1 ? "dropout must be in [0, 1)" : null;
    }

    /// <summary>The config as JSON, as stored in checkpoints.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ModelConfigJson.Default.ModelConfig);

    /// <summary>Parses <see cref="ToJson"/>'s output; throws <see cref="JsonException"/> on anything else.</summary>
    public static ModelConfig FromJson(string json) =>
        JsonSerializer.Deserialize(json, ModelConfigJson.Default.ModelConfig) ?? throw new JsonException("model config is null");

    /// <summary>The fields in which <paramref name="other"/> differs from this config, as "name: this → other".</summary>
    public IReadOnlyList<string> Differences(ModelConfig other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var mine = JsonSerializer.SerializeToElement(this, ModelConfigJson.Default.ModelConfig);
        var theirs = JsonSerializer.SerializeToElement(other, ModelConfigJson.Default.ModelConfig);
        return mine.EnumerateObject()
            .Where(p => p.Value.ToString() != theirs.GetProperty(p.Name).ToString())
            .Select(p => $"{p.Name}: {p.Value} → {theirs.GetProperty(p.Name)}")
            .ToList();
    }
}

/// <summary>
/// ModelConfig's JSON, generated at compile time (no reflection, so it works compiled ahead of time): snake_case
/// names and enum values, as checkpoints have always stored them.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    Converters = [typeof(SnakeCaseEnumConverter<ModelKind>), typeof(SnakeCaseEnumConverter<SkipConnection>), typeof(SnakeCaseEnumConverter<Pooling>)])]
[JsonSerializable(typeof(ModelConfig))]
internal sealed partial class ModelConfigJson : JsonSerializerContext;

/// <summary>An enum written as its snake_case name ("para_former"); numbers are still read.</summary>
internal sealed class SnakeCaseEnumConverter<T>() : JsonStringEnumConverter<T>(JsonNamingPolicy.SnakeCaseLower)
    where T : struct, Enum;
