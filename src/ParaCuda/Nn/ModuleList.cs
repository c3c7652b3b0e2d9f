using System.Collections;
using System.Globalization;

namespace ParaCuda.Nn;

/// <summary>Children registered under their indices ("0", "1", …), as PyTorch's nn.ModuleList.</summary>
public sealed class ModuleList<T> : Module, IReadOnlyList<T>
    where T : Module
{
    private readonly List<T> _items = [];

    public int Count => _items.Count;

    public T this[int index] => _items[index];

    public T Add(T module)
    {
        _items.Add(RegisterModule(_items.Count.ToString(CultureInfo.InvariantCulture), module));
        return module;
    }

    public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
