using System.Diagnostics.CodeAnalysis;
using ParaCuda.Autograd;
using ParaCuda.Tensors;

namespace ParaCuda.Nn;

/// <summary>
/// A building block with named parameters and children, in PyTorch's vocabulary: parameters are
/// addressed by dotted paths ("branches.3.blocks.0.attn.qkv.weight"), <see cref="Train"/> and
/// <see cref="Eval"/> switch dropout, and the state dict saves and restores every parameter.
/// Disposing a module frees its parameters and their gradients.
/// </summary>
[SuppressMessage("Naming", "CA1716", Justification = "PyTorch's name; users look for nn.Module.")]
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Parameter Parameter)> _parameters = [];
    private readonly List<(string Name, Module Module)> _children = [];
    private bool _disposed;

    public bool Training { get; private set; } = true;

    /// <summary>Parameters of this module and all descendants, with their dotted names, in registration order.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (name, p) in _parameters)
        {
            yield return (prefix + name, p);
        }

        foreach (var (name, child) in _children)
        {
            foreach (var entry in child.NamedParameters($"{prefix}{name}."))
            {
                yield return entry;
            }
        }
    }

    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(e => e.Parameter);

    public long ParameterCount() => Parameters().Sum(p => p.NumElements);

    /// <summary>Children with their dotted names (this module itself is not included).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        foreach (var (name, child) in _children)
        {
            yield return (prefix + name, child);
            foreach (var entry in child.NamedModules($"{prefix}{name}."))
            {
                yield return entry;
            }
        }
    }

    /// <summary>Switches this module and its descendants to training (dropout on) or evaluation mode.</summary>
    public Module Train(bool training = true)
    {
        Training = training;
        foreach (var (_, child) in _children)
        {
            child.Train(training);
        }

        return this;
    }

    public Module Eval() => Train(false);

    /// <summary>
    /// Evaluation mode and no gradient tape until disposed (PyTorch's <c>model.eval()</c> under
    /// <c>torch.inference_mode()</c>); the module's previous mode comes back afterwards.
    /// </summary>
    public IDisposable InferenceMode() => new InferenceScope(this);

    /// <summary>Forgets all gradients (see <see cref="Tensor.ZeroGrad"/>).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters())
        {
            p.ZeroGrad();
        }
    }

    /// <summary>Every parameter by dotted name; the tensors are the live parameters, not copies.</summary>
    public IReadOnlyDictionary<string, Tensor> StateDict()
    {
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in NamedParameters())
        {
            dict[name] = p;
        }

        return dict;
    }

    /// <summary>
    /// Copies values into the parameters by name. Everything is checked before anything is written:
    /// a missing or unexpected name (when <paramref name="strict"/>) or a shape mismatch leaves the
    /// module untouched and names every problem.
    /// </summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        var own = NamedParameters().ToList();
        var problems = new List<string>();
        foreach (var (name, p) in own)
        {
            if (!state.TryGetValue(name, out var value))
            {
                if (strict)
                {
                    problems.Add($"missing '{name}' {p.Shape}");
                }
            }
            else if (value.Shape != p.Shape || value.DType != p.DType)
            {
                problems.Add($"'{name}' is {value.Shape} {value.DType} in the state dict but {p.Shape} {p.DType} in the model");
            }
        }

        if (strict)
        {
            var known = own.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
            problems.AddRange(state.Keys.Where(k => !known.Contains(k)).Order(StringComparer.Ordinal).Select(k => $"unexpected '{k}'"));
        }

        if (problems.Count > 0)
        {
            throw new InvalidDataException($"state dict does not fit {GetType().Name}: {string.Join("; ", problems)}");
        }

        foreach (var (name, p) in own)
        {
            if (state.TryGetValue(name, out var value))
            {
                CopyInto(value, p);
            }
        }
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (_disposed || !disposing)
        {
            return;
        }

        _disposed = true;
        foreach (var (_, p) in _parameters)
        {
            p.Dispose();
        }

        foreach (var (_, child) in _children)
        {
            child.Dispose();
        }
    }

    /// <summary>
    /// Runs one step of a forward pass. Without a gradient tape nothing will read its intermediates again, so
    /// they are freed as it returns and only its result lives on (inference memory stays one step deep);
    /// with a tape they stay for the backward, in the enclosing <see cref="TensorScope"/>.
    /// </summary>
    protected static Tensor Step(Func<Tensor> forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        if (GradMode.IsEnabled)
        {
            return forward();
        }

        using var scope = TensorScope.Begin();
        return scope.Keep(forward());
    }

    protected Parameter RegisterParameter(string name, Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        CheckName(name);
        parameter.Name ??= name;
        _parameters.Add((name, parameter));
        return parameter;
    }

    protected T RegisterModule<T>(string name, T module)
        where T : Module
    {
        ArgumentNullException.ThrowIfNull(module);
        CheckName(name);
        _children.Add((name, module));
        return module;
    }

    private static void CopyInto(Tensor source, Parameter destination)
    {
        if (!ReferenceEquals(source, destination))
        {
            destination.Context.Ops.CopyAcross(source, destination);
        }
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a valid parameter or module name (non-empty, no dots)", nameof(name));
        }

        if (_parameters.Exists(e => e.Name == name) || _children.Exists(e => e.Name == name))
        {
            throw new ArgumentException($"'{name}' is already registered on {GetType().Name}", nameof(name));
        }
    }

    private sealed class InferenceScope : IDisposable
    {
        private readonly Module _module;
        private readonly bool _wasTraining;
        private readonly Autograd.GradMode.NoGradScope _noGrad;

        public InferenceScope(Module module)
        {
            _module = module;
            _wasTraining = module.Training;
            module.Eval();
            _noGrad = Autograd.GradMode.NoGrad();
        }

        public void Dispose()
        {
            _noGrad.Dispose();
            _module.Train(_wasTraining);
        }
    }
}
