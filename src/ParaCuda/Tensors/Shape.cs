using System.Collections;

namespace ParaCuda.Tensors;

/// <summary>An immutable list of dimension sizes, printed as <c>[64, 50, 192]</c>.</summary>
public readonly struct Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[]? _dims;

    public Shape(params ReadOnlySpan<int> dims)
    {
        foreach (var d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"shape {Format(dims)} has a negative dimension", nameof(dims));
            }
        }

        _dims = dims.ToArray();
    }

    public int Rank => _dims?.Length ?? 0;

    int IReadOnlyCollection<int>.Count => Rank;

    /// <summary>Dimension <paramref name="axis"/>; negative axes count from the end.</summary>
    public int this[int axis]
    {
        get
        {
            var dims = _dims ?? [];
            var a = axis < 0 ? axis + dims.Length : axis;
            if ((uint)a >= (uint)dims.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is out of range for shape {this}");
            }

            return dims[a];
        }
    }

    public long NumElements
    {
        get
        {
            long n = 1;
            foreach (var d in _dims ?? [])
            {
                n *= d;
            }

            return n;
        }
    }

    public ReadOnlySpan<int> AsSpan() => _dims;

    /// <summary>Row-major strides, in elements.</summary>
    public long[] ContiguousStrides()
    {
        var dims = _dims ?? [];
        var strides = new long[dims.Length];
        long s = 1;
        for (var i = dims.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= dims[i];
        }

        return strides;
    }

    public bool Equals(Shape other) => AsSpan().SequenceEqual(other.AsSpan());

    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in _dims ?? [])
        {
            h.Add(d);
        }

        return h.ToHashCode();
    }

    public static bool operator ==(Shape left, Shape right) => left.Equals(right);

    public static bool operator !=(Shape left, Shape right) => !left.Equals(right);

    public static implicit operator Shape(int[] dims) => new(dims);

    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)(_dims ?? [])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => Format(AsSpan());

    private static string Format(ReadOnlySpan<int> dims) => "[" + string.Join(", ", dims.ToArray()) + "]";
}
