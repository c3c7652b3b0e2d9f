using ParaCuda.Nn;

namespace ParaCuda.Models;

/// <summary>Training settings that come with a preset (each can be overridden on the command line).</summary>
public sealed record TrainingDefaults(int Epochs, int BatchSize, float LearningRate, string Optimizer, bool Augment);

/// <summary>A named model configuration with its training defaults.</summary>
public sealed record Preset(string Name, string Description, ModelConfig Model, TrainingDefaults Training);

/// <summary>
/// Named configurations. Image size, channels and classes come from the dataset unless the preset
/// fixes the image size (the paper upsamples every dataset to 224×224).
/// </summary>
public static class Presets
{
    public static IReadOnlyList<Preset> All { get; } =
    [
        new(
            "tiny",
            "CPU default: a small ParaFormer on native-size images that trains Fashion-MNIST in minutes",
            new ModelConfig { ImageSize = 0, Patch = 7, Dim = 64, Heads = 2, MlpDim = 128, Branches = 4, BranchDepth = 1, Depth = 4, Dropout = 0f, EmbeddingDropout = 0f },
            new TrainingDefaults(Epochs: 3, BatchSize: 128, LearningRate: 1e-3f, Optimizer: "adam", Augment: false)),
        new(
            "paper",
            "The reference configuration: 224×224 input, patch 16, width 192, 3 heads of 64, MLP 768, 8 branches × 2 blocks",
            new ModelConfig { ImageSize = 224, Patch = 16, Dim = 192, Heads = 3, HeadDim = 64, MlpDim = 768, Branches = 8, BranchDepth = 2, Depth = 16, Dropout = 0.1f, EmbeddingDropout = 0.1f },
            new TrainingDefaults(Epochs: 300, BatchSize: 500, LearningRate: 1e-4f, Optimizer: "adam", Augment: true)),
    ];

    public static Preset Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown preset '{name}'; choose one of: {string.Join(", ", All.Select(p => p.Name))}", nameof(name));

    /// <summary>
    /// <paramref name="preferred"/> if it tiles <paramref name="imageSize"/>, else the divisor of the size
    /// nearest to it (the larger on a tie: fewer tokens). A preset made for 28-pixel Fashion-MNIST (patch 7,
    /// 16 patches) thus runs on 32-pixel CIFAR with patch 8, again 16 patches.
    /// </summary>
    public static int PatchFor(int imageSize, int preferred)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(imageSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(preferred);
        return Enumerable.Range(1, imageSize).Where(p => imageSize % p == 0).MinBy(p => (Math.Abs(p - preferred), -p));
    }

    /// <summary>The preset's model adapted to a dataset's images and classes (image size 0 = the dataset's own).</summary>
    public static ModelConfig ForData(ModelConfig model, int imageSize, int channels, int classes)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model with { ImageSize = model.ImageSize == 0 ? imageSize : model.ImageSize, Channels = channels, Classes = classes };
    }
}

/// <summary>Builds the model a config describes.</summary>
public static class ModelFactory
{
    public static VisionModel Create(ModelConfig config, ModuleInit init, IReadOnlyList<Backends.ComputeContext>? branchContexts = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Kind == ModelKind.ParaFormer ? new ParaFormer(config, init, branchContexts) : new VisionTransformer(config, init);
    }

    /// <summary>
    /// The ViT depth whose parameter count is closest to a ParaFormer's (branches × depth blocks plus the
    /// same embedding and head): with equal widths that is simply the total block count.
    /// </summary>
    public static ModelConfig MatchingVit(ModelConfig paraformer)
    {
        ArgumentNullException.ThrowIfNull(paraformer);
        return paraformer with { Kind = ModelKind.Vit, Depth = paraformer.Branches * paraformer.BranchDepth };
    }
}
