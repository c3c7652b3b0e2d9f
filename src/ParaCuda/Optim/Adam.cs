using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Optim;

/// <summary>
/// Adam (or AdamW with decoupled weight decay) over a fixed list of parameters, with PyTorch's
/// semantics: parameters without a gradient are skipped and keep their own step count. Moments are
/// allocated up front, next to each parameter. Updates are issued on one context after it has waited
/// for every context that produced a gradient.
/// </summary>
public sealed class Adam : IDisposable
{
    private readonly (string Name, Parameter Parameter)[] _parameters;
    private readonly Tensor[] _m;
    private readonly Tensor[] _v;
    private readonly long[] _steps;
    private readonly ComputeContext _context;

    public Adam(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamParameters hyper)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToArray();
        if (_parameters.Length == 0)
        {
            throw new ArgumentException("Adam needs at least one parameter", nameof(parameters));
        }

        Hyper = hyper;
        _context = _parameters[0].Parameter.Context;
        _m = new Tensor[_parameters.Length];
        _v = new Tensor[_parameters.Length];
        _steps = new long[_parameters.Length];
        using var unscoped = TensorScope.Unscoped();
        for (var i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i].Parameter;
            _m[i] = Tensor.Zeros(p.Shape, p.DType, p.Context);
            _v[i] = Tensor.Zeros(p.Shape, p.DType, p.Context);
        }
    }

    public AdamParameters Hyper { get; set; }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _parameters;

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void Step()
    {
        var (ps, gs, ms, vs, steps) = (new List<Tensor>(), new List<Tensor>(), new List<Tensor>(), new List<Tensor>(), new List<long>());
        for (var i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i].Parameter;
            if (p.Grad is not { } g)
            {
                continue;
            }

            _context.WaitFor(p.Context);
            ps.Add(p);
            gs.Add(g);
            ms.Add(_m[i]);
            vs.Add(_v[i]);
            steps.Add(++_steps[i]);
        }

        if (ps.Count > 0)
        {
            _context.Ops.AdamUpdate(ps, gs, ms, vs, Hyper, steps);
        }
    }

    /// <summary>
    /// Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>, as
    /// torch.nn.utils.clip_grad_norm_; returns the norm before clipping as a one-element tensor.
    /// </summary>
    public Tensor ClipGradNorm(float maxNorm)
    {
        var grads = new List<Tensor>();
        foreach (var (_, p) in _parameters)
        {
            if (p.Grad is { } g)
            {
                _context.WaitFor(p.Context);
                grads.Add(g);
            }
        }

        var norm = Tensor.Empty(new Shape(1), DType.Float32, _context);
        _context.Ops.GlobalNorm(grads, norm);
        _context.Ops.ClipByNorm(grads, norm, maxNorm);
        return norm;
    }

    /// <summary>
    /// The optimizer state for a checkpoint: first and second moments named "m.{parameter}" and
    /// "v.{parameter}", and the step count of each parameter (in parameter order).
    /// </summary>
    public (IEnumerable<KeyValuePair<string, Tensor>> Moments, IReadOnlyList<long> Steps) State()
    {
        var moments = _parameters.SelectMany((p, i) => new[]
        {
            KeyValuePair.Create($"m.{p.Name}", _m[i]),
            KeyValuePair.Create($"v.{p.Name}", _v[i]),
        });
        return (moments, _steps.ToArray());
    }

    /// <summary>
    /// Restores what <see cref="State"/> returned. Everything is checked before anything is copied, so a
    /// mismatched state leaves the optimizer untouched.
    /// </summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> moments, IReadOnlyList<long> steps)
    {
        ArgumentNullException.ThrowIfNull(moments);
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count != _parameters.Length)
        {
            throw new InvalidDataException($"optimizer state has step counts for {steps.Count} parameters, the model has {_parameters.Length}");
        }

        for (var i = 0; i < _parameters.Length; i++)
        {
            foreach (var key in new[] { $"m.{_parameters[i].Name}", $"v.{_parameters[i].Name}" })
            {
                if (!moments.TryGetValue(key, out var t))
                {
                    throw new InvalidDataException($"optimizer state lacks '{key}'");
                }

                if (t.Shape != _m[i].Shape || t.DType != _m[i].DType)
                {
                    throw new InvalidDataException($"optimizer state '{key}' is {t.DType}{t.Shape}, the parameter needs {_m[i].DType}{_m[i].Shape}");
                }
            }
        }

        for (var i = 0; i < _parameters.Length; i++)
        {
            _context.Ops.Copy(moments[$"m.{_parameters[i].Name}"], _m[i]);
            _context.Ops.Copy(moments[$"v.{_parameters[i].Name}"], _v[i]);
            _steps[i] = steps[i];
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, p) in _parameters)
        {
            p.ZeroGrad();
        }
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v))
        {
            t.Dispose();
        }
    }
}
