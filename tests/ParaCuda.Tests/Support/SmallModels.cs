using ParaCuda.Models;

namespace ParaCuda.Tests.Support;

/// <summary>The small ParaFormer the training, compression, expansion and CLI tests share: 28×28 input, 17 tokens, width 16.</summary>
internal static class SmallModels
{
    public static ModelConfig Fmnist(int branches) => new()
    {
        ImageSize = 28,
        Channels = 1,
        Patch = 7,
        Classes = 10,
        Dim = 16,
        Heads = 2,
        MlpDim = 32,
        Branches = branches,
        BranchDepth = 1,
    };
}
