using ParaCuda.Backends;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Tensors;
using ParaCuda.Training;

namespace ParaCuda.Interop;

/// <summary>
/// Weights in the layout of the PyTorch reference model (perf/reference/paraformer.py), which names every module
/// as ParaCuda does. Three tensors differ, and only in layout:
/// <list type="bullet">
/// <item><c>embed.proj.weight</c>: ParaCuda's linear map of flattened patches [D, p·p·C], a patch flattened as
/// (row, column, channel), is PyTorch's Conv2d(C, D, p, stride p) weight [D, C, p, p];</item>
/// <item><c>embed.cls</c>: [D] here, [1, 1, D] there;</item>
/// <item><c>embed.pos</c>: [T, D] here, [1, T, D] there.</item>
/// </list>
/// Everything else (Linear weights [out, in], LayerNorm, the packed q, k, v projection) is stored alike. The
/// file is a safetensors file whose metadata carries the model config, so either side can build the model.
/// </summary>
public static class PyTorchFormat
{
    /// <summary>Writes <paramref name="model"/>'s weights in PyTorch's layout to <paramref name="path"/>.</summary>
    public static void Export(string path, VisionModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = TensorScope.Begin();
        var config = model.Config;
        var tensors = model.StateDict().ToDictionary(e => e.Key, e => Convert(e.Key, e.Value, config, toPyTorch: true));
        SafeTensors.Write(path, tensors, new Dictionary<string, string> { [Checkpoint.KindKey] = Checkpoint.PyTorchKind, [Checkpoint.ConfigKey] = config.ToJson() });
    }

    /// <summary>
    /// Builds the model a PyTorch-layout file describes and loads its weights. The config comes from the file's
    /// metadata, or from <paramref name="config"/> for a file written without it; every tensor must be there
    /// with its PyTorch shape, and no other.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The file is not safetensors, lacks a config, or its tensors do not fit the config.</exception>
    public static VisionModel Import(string path, ModelConfig? config = null, ComputeContext? context = null)
    {
        using var file = SafeTensors.Read(path);
        if (config is null)
        {
            config = file.Metadata.TryGetValue(Checkpoint.ConfigKey, out var json)
                ? ModelConfig.FromJson(json)
                : throw new CheckpointFormatException($"{path}: no model config in its metadata; give the config the weights were made for");
        }

        if (config.Problem() is { } problem)
        {
            throw new CheckpointFormatException($"{path}: the model config cannot build a model ({problem})");
        }

        var model = ModelFactory.Create(config, ModuleInit.Create(0, context));
        try
        {
            using var scope = TensorScope.Begin();
            var expected = model.StateDict();
            var problems = expected.Keys.Where(k => !file.Tensors.ContainsKey(k)).Select(k => $"missing '{k}'")
                .Concat(file.Tensors.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).Select(k => $"unexpected '{k}'"))
                .Concat(expected.Where(e => file.Tensors.TryGetValue(e.Key, out var t) && t.Shape != PyTorchShape(e.Key, e.Value.Shape, config))
                    .Select(e => $"'{e.Key}' is {file.Tensors[e.Key].Shape}, PyTorch's layout of this model has {PyTorchShape(e.Key, e.Value.Shape, config)}"))
                .ToList();
            if (problems.Count > 0)
            {
                throw new CheckpointFormatException($"{path}: the tensors do not fit the model: {string.Join("; ", problems)}");
            }

            model.LoadStateDict(expected.ToDictionary(e => e.Key, e => Convert(e.Key, file.Tensors[e.Key], config, toPyTorch: false)));
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The shape a ParaCuda parameter has in PyTorch's layout.</summary>
    public static Shape PyTorchShape(string name, Shape shape, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(config);
        return name switch
        {
            "embed.proj.weight" => new Shape(config.Dim, config.Channels, config.Patch, config.Patch),
            "embed.cls" => new Shape(1, 1, config.Dim),
            "embed.pos" => new Shape(1, config.Tokens, config.Dim),
            _ => shape,
        };
    }

    /// <summary>One tensor's values moved between the layouts (a CPU tensor in the target layout).</summary>
    private static Tensor Convert(string name, Tensor source, ModelConfig config, bool toPyTorch)
    {
        var values = source.ToArray<float>();
        var (d, c, p) = (config.Dim, config.Channels, config.Patch);
        return name switch
        {
            "embed.proj.weight" => Tensor.FromArray(PermutePatch(values, d, c, p, toPyTorch), toPyTorch ? new Shape(d, c, p, p) : new Shape(d, p * p * c), CpuBackend()),
            "embed.cls" => Tensor.FromArray(values, toPyTorch ? new Shape(1, 1, d) : new Shape(d), CpuBackend()),
            "embed.pos" => Tensor.FromArray(values, toPyTorch ? new Shape(1, config.Tokens, d) : new Shape(config.Tokens, d), CpuBackend()),
            _ => Tensor.FromArray(values, source.Shape, CpuBackend()),
        };
    }

    /// <summary>[D, p, p, C] (row, column, channel) ↔ [D, C, p, p] (channel, row, column).</summary>
    private static float[] PermutePatch(float[] values, int d, int c, int p, bool toPyTorch)
    {
        var result = new float[values.Length];
        for (var o = 0; o < d; o++)
        {
            for (var y = 0; y < p; y++)
            {
                for (var x = 0; x < p; x++)
                {
                    for (var ch = 0; ch < c; ch++)
                    {
                        var ours = (((o * p) + y) * p * c) + (x * c) + ch;
                        var theirs = (((o * c) + ch) * p * p) + (y * p) + x;
                        if (toPyTorch)
                        {
                            result[theirs] = values[ours];
                        }
                        else
                        {
                            result[ours] = values[theirs];
                        }
                    }
                }
            }
        }

        return result;
    }

    private static ComputeContext CpuBackend() => Backends.Cpu.CpuBackend.Instance.DefaultContext;
}
