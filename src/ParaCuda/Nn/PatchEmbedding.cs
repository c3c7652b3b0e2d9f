using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// Images → tokens: cut into p×p patches, project each linearly to D, prepend a learned CLS token,
/// add learned positional embeddings, apply embedding dropout. [B, C, H, W] → [B, 1 + HW/p², D].
/// </summary>
public sealed class PatchEmbedding : Module
{
    private readonly float _dropout;
    private readonly Generator _generator;

    public PatchEmbedding(int imageSize, int channels, int patch, int dim, float dropout, ModuleInit init)
    {
        ArgumentNullException.ThrowIfNull(init);
        if (patch <= 0 || imageSize % patch != 0)
        {
            throw new ArgumentException($"image size {imageSize} is not divisible into patches of {patch}", nameof(patch));
        }

        (ImageSize, Channels, PatchSize) = (imageSize, channels, patch);
        var patches = imageSize / patch * (imageSize / patch);
        Proj = RegisterModule("proj", new Linear(patch * patch * channels, dim, init));
        Cls = RegisterParameter("cls", init.Normal(new Shape(dim)));
        Positions = RegisterParameter("pos", init.Normal(new Shape(patches + 1, dim)));
        _dropout = dropout;
        _generator = init.Generator;
    }

    public int ImageSize { get; }

    public int Channels { get; }

    public int PatchSize { get; }

    public int Tokens => Positions.Shape[0];

    public Linear Proj { get; }

    public Parameter Cls { get; }

    public Parameter Positions { get; }

    public Tensor Forward(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Rank != 4 || images.Shape[1] != Channels || images.Shape[2] != ImageSize || images.Shape[3] != ImageSize)
        {
            throw new TensorOpException(nameof(PatchEmbedding), $"images {images.Shape} do not fit this model, which takes [B, {Channels}, {ImageSize}, {ImageSize}]");
        }

        return Step(() =>
        {
            using var patches = F.Patchify(images, PatchSize);
            var tokens = F.AssembleTokens(Proj.Forward(patches), Cls, Positions);
            return F.Dropout(tokens, _dropout, _generator, Training);
        });
    }
}
