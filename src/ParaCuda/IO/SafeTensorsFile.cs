using ParaCuda.Tensors;

namespace ParaCuda.IO;

/// <summary>
/// The contents of a safetensors file loaded by <see cref="SafeTensors.Read(string, Backends.ComputeContext?)"/>. It owns the tensors:
/// disposing it disposes them (clone any tensor that must outlive it).
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors;

    internal SafeTensorsFile(string filePath, Dictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        FilePath = filePath;
        _tensors = tensors;
        Tensors = tensors.AsReadOnly();
        Metadata = metadata;
    }

    /// <summary>The path the file was read from.</summary>
    public string FilePath { get; }

    /// <summary>The tensors by name, in file order; each tensor's <see cref="Tensor.Name"/> is its key.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> (empty if it has none), including <see cref="SafeTensors.ChecksumMetadataKey"/> when present.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Disposes every tensor; calling it again does nothing.</summary>
    public void Dispose()
    {
        foreach (var tensor in _tensors.Values)
        {
            tensor.Dispose();
        }
    }
}
