using ParaCuda.Tensors;

namespace ParaCuda.Autograd;

/// <summary>
/// bf16 mixed precision, per thread (PyTorch's torch.autocast). Inside a <see cref="Bf16"/> scope the linear layers
/// multiply in bf16: <see cref="F.Linear(Tensor, Tensor, Tensor?, DType)"/> and <see cref="F.LinearGelu(Tensor, Tensor, Tensor?, DType)"/> cast
/// their input and weight to bf16 and accumulate in float32. Activations that only feed other bf16 work stay bf16
/// (<see cref="ActivationType"/>: a block's qkv, attention output and MLP hidden layer); LayerNorm, the softmax
/// statistics, the loss, the residual stream, the master weights, their gradients and the optimizer stay float32.
/// </summary>
public static class Autocast
{
    [ThreadStatic]
    private static int t_depth;

    public static bool IsEnabled => t_depth > 0;

    /// <summary>What activations kept in low precision are stored as: bf16 inside a scope, float32 outside.</summary>
    public static DType ActivationType => IsEnabled ? DType.BFloat16 : DType.Float32;

    /// <summary>A region of bf16 mixed precision; with <paramref name="enabled"/> false, one that changes nothing.</summary>
    public static Scope Bf16(bool enabled = true)
    {
        if (enabled)
        {
            t_depth++;
        }

        return new Scope(enabled);
    }

    /// <summary>Ends a <see cref="Bf16"/> region on dispose.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly bool _active;

        internal Scope(bool active) => _active = active;

        public void Dispose()
        {
            if (_active)
            {
                t_depth--;
            }
        }
    }
}
