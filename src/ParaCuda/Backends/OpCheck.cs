using ParaCuda.Tensors;

namespace ParaCuda.Backends;

/// <summary>The argument checks every op runs before it touches memory, shared by all backends.</summary>
internal readonly struct OpCheck(string op, Device device)
{
    public TensorOpException Fail(string problem) => new(op, problem);

    /// <summary>Alive, on this device, contiguous, of the given dtype.</summary>
    public void Tensor(string role, Tensor t, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(t, role);
        if (t.IsDisposed)
        {
            throw Fail($"{role} {t.Shape} was disposed");
        }

        if (t.Device != device)
        {
            throw Fail($"{role} {t.Shape} is on {t.Device} but this backend runs on {device}");
        }

        if (t.DType != dtype)
        {
            throw Fail($"{role} {t.Shape} is {t.DType}; this op takes {dtype}");
        }

        if (!t.IsContiguous)
        {
            throw Fail($"{role} {t.Shape} is not contiguous; call Contiguous() first");
        }
    }

    /// <summary>
    /// An activation: alive, on this device, contiguous, float32 or bf16 (mixed precision); of the same dtype as
    /// <paramref name="like"/> when given.
    /// </summary>
    public void Activation(string role, Tensor t, Tensor? like = null, string? likeRole = null)
    {
        ArgumentNullException.ThrowIfNull(t, role);
        Tensor(role, t, t.DType == DType.BFloat16 ? DType.BFloat16 : DType.Float32);
        if (like is not null && t.DType != like.DType)
        {
            throw Fail($"{role} {t.Shape} is {t.DType} but {likeRole} {like.Shape} is {like.DType}; they must match");
        }
    }

    public void Rank(string role, Tensor t, int rank)
    {
        if (t.Rank != rank)
        {
            throw Fail($"{role} must have rank {rank}, got {t.Shape}");
        }
    }

    public void Shape(string role, Tensor t, Shape expected, string because)
    {
        if (t.Shape != expected)
        {
            throw Fail($"{role} has shape {t.Shape} but {because} needs {expected}");
        }
    }

    public void SameShape(string role, Tensor t, string otherRole, Tensor other)
    {
        if (t.Shape != other.Shape)
        {
            throw Fail($"{role} {t.Shape} and {otherRole} {other.Shape} must have the same shape");
        }
    }

    public void That(bool condition, string problem)
    {
        if (!condition)
        {
            throw Fail(problem);
        }
    }
}
