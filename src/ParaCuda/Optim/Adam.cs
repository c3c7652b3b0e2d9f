using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Nn;
using ParaCuda.Tensors;

namespace ParaCuda.Optim;

/// <summary>
/// Adam (or AdamW with decoupled weight decay) over a fixed list of parameters, with PyTorch's
/// semantics: parameters without a gradient are skipped and keep their own step count. Moments are
/// allocated up front, next to each parameter; step counts and the learning rate live in device memory, so a
/// captured training step replays the update correctly. Each device's parameters are updated on that device,
/// in one launch issued on one of its contexts (the context of its first parameter) after it has waited for
/// every context that produced a gradient there; gradient clipping combines the norms of all devices.
/// </summary>
public sealed class Adam : IDisposable
{
    private readonly (string Name, Parameter Parameter)[] _parameters;
    private readonly Tensor[] _m;
    private readonly Tensor[] _v;

    /// <summary>Per parameter, its step count: a view into its device's counts.</summary>
    private readonly Tensor[] _steps;

    /// <summary>Per device, the context its updates are issued on; the first is where the global norm is combined.</summary>
    private readonly Dictionary<Device, ComputeContext> _contexts = [];

    /// <summary>Per device, the step counts of its parameters (Int32, in parameter order) and the learning rate.</summary>
    private readonly Dictionary<Device, (Tensor Counts, Tensor LearningRate)> _onDevice = [];

    private AdamParameters _hyper;

    public Adam(IEnumerable<(string Name, Parameter Parameter)> parameters, AdamParameters hyper)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToArray();
        if (_parameters.Length == 0)
        {
            throw new ArgumentException("Adam needs at least one parameter", nameof(parameters));
        }

        foreach (var (_, p) in _parameters)
        {
            _contexts.TryAdd(p.Device, p.Context);
        }

        _m = new Tensor[_parameters.Length];
        _v = new Tensor[_parameters.Length];
        _steps = new Tensor[_parameters.Length];
        using var unscoped = TensorScope.Unscoped();
        foreach (var (device, context) in _contexts)
        {
            var count = _parameters.Count(e => e.Parameter.Device == device);
            _onDevice[device] = (Tensor.Zeros(new Shape(count), DType.Int32, context), Tensor.Empty(new Shape(1), DType.Float32, context));
        }

        var slot = _contexts.Keys.ToDictionary(d => d, _ => 0);
        for (var i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i].Parameter;
            _m[i] = Tensor.Zeros(p.Shape, p.DType, p.Context);
            _v[i] = Tensor.Zeros(p.Shape, p.DType, p.Context);
            _steps[i] = _onDevice[p.Device].Counts.NarrowView(slot[p.Device]++, 1);
        }

        Hyper = hyper;
    }

    /// <summary>The hyper-parameters of the next updates; setting them writes the learning rate to each device.</summary>
    public AdamParameters Hyper
    {
        get => _hyper;
        set
        {
            _hyper = value;
            foreach (var (_, learningRate) in _onDevice.Values)
            {
                learningRate.CopyFrom<float>([value.LearningRate]);
            }
        }
    }

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _parameters;

    /// <summary>One update of every parameter that has a gradient. Only device work: it can be captured in a graph.</summary>
    public void Step()
    {
        foreach (var (device, context) in _contexts)
        {
            var (ps, gs, ms, vs, steps) = (new List<Tensor>(), new List<Tensor>(), new List<Tensor>(), new List<Tensor>(), new List<Tensor>());
            var waited = new HashSet<ComputeContext>(ReferenceEqualityComparer.Instance);
            for (var i = 0; i < _parameters.Length; i++)
            {
                var p = _parameters[i].Parameter;
                if (p.Device != device || p.Grad is not { } g)
                {
                    continue;
                }

                if (waited.Add(p.Context))
                {
                    context.WaitFor(p.Context);
                }

                ps.Add(p);
                gs.Add(g);
                ms.Add(_m[i]);
                vs.Add(_v[i]);
                steps.Add(_steps[i]);
            }

            if (ps.Count > 0)
            {
                context.Ops.AdamUpdate(ps, gs, ms, vs, Hyper, steps, _onDevice[device].LearningRate);
            }

            // The next step's work on each parameter's own context (its branch's stream) reads the updated
            // values and writes the gradients the update read: it waits for the update.
            foreach (var owner in waited.Where(c => !ReferenceEquals(c, context)))
            {
                owner.WaitFor(context);
            }
        }
    }

    /// <summary>
    /// Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>, as
    /// torch.nn.utils.clip_grad_norm_; returns the norm before clipping as a one-element tensor.
    /// </summary>
    public Tensor ClipGradNorm(float maxNorm)
    {
        var withGrad = _parameters.Select(e => e.Parameter).Where(p => p.Grad is not null).ToList();
        var main = _contexts.Values.First();

        // Each gradient's sum of squares lands in its own slot of a buffer ordered as the parameters are, on
        // its own device (zeros elsewhere); the buffers meet on the first device, where adding them fills every
        // slot exactly. The norm is then the same number however the parameters are spread over devices.
        Tensor? total = null;
        foreach (var (device, context) in _contexts)
        {
            var slots = Tensor.Zeros(new Shape(withGrad.Count), DType.Float32, context);
            var (grads, outputs) = (new List<Tensor>(), new List<Tensor>());
            var waited = new HashSet<ComputeContext>(ReferenceEqualityComparer.Instance);
            for (var i = 0; i < withGrad.Count; i++)
            {
                var p = withGrad[i];
                if (p.Device == device)
                {
                    if (waited.Add(p.Context))
                    {
                        context.WaitFor(p.Context);
                    }

                    grads.Add(p.Grad!);
                    outputs.Add(slots.NarrowView(i, 1));
                }
            }

            context.Ops.SumOfSquares(grads, outputs);
            if (total is null)
            {
                total = slots;
            }
            else
            {
                main.Ops.Add(total, F.Transfer(slots, main), total);
            }
        }

        var norm = Tensor.Empty(new Shape(1), DType.Float32, main);
        main.Ops.SumAll(total!, norm, squareRoot: true);
        foreach (var (device, context) in _contexts)
        {
            context.Ops.ClipByNorm(withGrad.Where(p => p.Device == device).Select(p => p.Grad!).ToList(), F.Transfer(norm, context), maxNorm);
        }

        return norm;
    }

    /// <summary>
    /// The optimizer state for a checkpoint: first and second moments named "m.{parameter}" and
    /// "v.{parameter}", and the step count of each parameter (in parameter order), read from the devices.
    /// </summary>
    public (IEnumerable<KeyValuePair<string, Tensor>> Moments, IReadOnlyList<long> Steps) State()
    {
        var moments = _parameters.SelectMany((p, i) => new[]
        {
            KeyValuePair.Create($"m.{p.Name}", _m[i]),
            KeyValuePair.Create($"v.{p.Name}", _v[i]),
        });
        var counts = _onDevice.ToDictionary(e => e.Key, e => new Queue<int>(e.Value.Counts.ToArray<int>()));
        var steps = _parameters.Select(e => (long)counts[e.Parameter.Device].Dequeue()).ToArray();
        return (moments, steps);
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
            if (steps[i] is < 0 or > int.MaxValue)
            {
                throw new InvalidDataException($"optimizer state has step count {steps[i]} for '{_parameters[i].Name}', outside 0..{int.MaxValue}");
            }

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
            _m[i].Context.Ops.CopyAcross(moments[$"m.{_parameters[i].Name}"], _m[i]);
            _v[i].Context.Ops.CopyAcross(moments[$"v.{_parameters[i].Name}"], _v[i]);
        }

        foreach (var (device, (counts, _)) in _onDevice)
        {
            counts.CopyFrom<int>(_parameters.Select((e, i) => (e, i)).Where(x => x.e.Parameter.Device == device).Select(x => (int)steps[x.i]).ToArray());
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
        foreach (var t in _m.Concat(_v).Concat(_steps).Concat(_onDevice.Values.SelectMany(d => new[] { d.Counts, d.LearningRate })))
        {
            t.Dispose();
        }
    }
}
