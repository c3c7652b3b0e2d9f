using ParaCuda.Autograd;
using ParaCuda.Backends;
using ParaCuda.Models;
using ParaCuda.Optim;
using ParaCuda.Tensors;

namespace ParaCuda.Training;

/// <summary>What one optimizer step leaves on the device: its loss and its count of correct predictions (one element each).</summary>
public sealed record StepOutput(Tensor Loss, Tensor Correct);

/// <summary>
/// One optimizer step of a schedule (<see cref="TrainStep"/>) on one batch, issued without reading anything
/// back: freeze what the step freezes, forward (one prefix, or every prefix), loss, backward, optional
/// clipping, update. The loss and the correct count stay on the device for the caller to read when it
/// chooses (see <see cref="StepWindow"/>), so a GPU never waits for the host inside a step.
/// With <see cref="TrainOptions.Graphs"/> on a device that captures (CUDA), each kind of step (its schedule step,
/// batch shape and optimizer constants) runs eagerly the first time, is captured as a CUDA graph the second and
/// replayed from then on: one launch instead of hundreds. Replays give the same numbers as eager steps: Adam's
/// step counts and learning rate and the dropout streams are read from device memory.
/// </summary>
public sealed class TrainingStep : IDisposable
{
    private readonly VisionModel _model;
    private readonly Adam _optimizer;
    private readonly TrainOptions _options;
    private readonly Dictionary<GraphKey, CapturedStep> _graphs = [];
    private readonly HashSet<GraphKey> _issued = [];

    /// <exception cref="ArgumentException">Graphs are asked for but the model's branches run on streams of their own.</exception>
    public TrainingStep(VisionModel model, Adam optimizer, TrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(options);
        (_model, _optimizer, _options) = (model, optimizer, options);
        if (UsesGraphs && model.Parameters().Any(p => p.Context != model.Context))
        {
            throw new ArgumentException("graphs capture one stream, but this model's branches run on streams of their own: train with --branch-exec serial or batched, or without graphs", nameof(options));
        }
    }

    /// <summary>Whether steps are captured and replayed: <see cref="TrainOptions.Graphs"/> on a context that captures.</summary>
    public bool UsesGraphs => _options.Graphs && _model.Context.CanCapture;

    /// <summary>Graphs held now (each keeps its step's memory).</summary>
    public int GraphCount => _graphs.Count;

    public StepOutput Run(Tensor images, Tensor labels, TrainStep step)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(step);
        SetFrozen(step.FrozenBelow);
        if (!UsesGraphs)
        {
            return Issue(images, labels, step);
        }

        var key = new GraphKey(step, images.Shape, labels.Shape, _optimizer.Hyper with { LearningRate = 0f });
        if (!_graphs.TryGetValue(key, out var graph))
        {
            // The first step of a kind runs eagerly: kernels load, cuBLAS starts and gradient buffers are
            // allocated outside any capture.
            if (_issued.Add(key))
            {
                return Issue(images, labels, step);
            }

            graph = new CapturedStep(_model, images, labels, (x, y) => Issue(x, y, step));
            _graphs.Add(key, graph);
        }

        return graph.Run(images, labels);
    }

    /// <summary>Frees the captured steps (a pass of a schedule that will not come back to them, or the end of training).</summary>
    public void ReleaseGraphs()
    {
        foreach (var graph in _graphs.Values)
        {
            graph.Dispose();
        }

        _graphs.Clear();
        _issued.Clear();
    }

    public void Dispose() => ReleaseGraphs();

    private StepOutput Issue(Tensor images, Tensor labels, TrainStep step)
    {
        _optimizer.ZeroGrad();
        Tensor logits;
        Tensor loss;
        if (step.AllPrefixes)
        {
            var all = _model.ForwardAllPrefixes(images, step.Prefix).Skip(step.From - 1).ToList();
            loss = F.Scale(F.SumMany(all.Select(l => F.CrossEntropy(l, labels)).ToList()), 1f / all.Count);
            logits = all[^1];
        }
        else
        {
            logits = _model.Forward(images, step.Prefix);
            loss = F.CrossEntropy(logits, labels);
        }

        loss.Backward();
        if (step.Clip)
        {
            _optimizer.ClipGradNorm(_options.ClipNorm);
        }

        _optimizer.Step();
        var correct = Tensor.Empty(new Shape(1), DType.Int32, logits.Context);
        logits.Context.Ops.CountCorrect(logits, labels, correct);
        return new StepOutput(loss, correct);
    }

    /// <summary>
    /// Gradients for branches at or above <paramref name="frozenBelow"/> (and the options' frozen ones) only;
    /// 0 unfreezes what steps froze.
    /// </summary>
    public void SetFrozen(int frozenBelow)
    {
        frozenBelow = Math.Max(frozenBelow, _options.FrozenBranches);
        if (_model is ParaFormer paraformer)
        {
            for (var b = 0; b < paraformer.Branches.Count; b++)
            {
                foreach (var p in paraformer.Branches[b].Parameters())
                {
                    p.RequiresGrad = b >= frozenBelow;
                }
            }
        }

        // Frozen branches only keep their function if the embedding that feeds them stays fixed too.
        foreach (var p in _model.Embed.Parameters())
        {
            p.RequiresGrad = _options.FrozenBranches == 0;
        }
    }
}

/// <summary>What makes two steps replay the same graph.</summary>
internal readonly record struct GraphKey(TrainStep Step, Shape Images, Shape Labels, AdamParameters Constants);

/// <summary>
/// One kind of training step captured as a graph, with the static tensors its replays read (the batch, the
/// base of the dropout streams) and write (the loss and correct count).
/// </summary>
internal sealed class CapturedStep : IDisposable
{
    private readonly VisionModel _model;
    private readonly Tensor _images;
    private readonly Tensor _labels;
    private readonly Tensor _streamBase;
    private readonly ContextGraph _graph;
    private readonly StepOutput _output;

    /// <summary>Dropout streams one step draws: the generator moves on by this many per replay.</summary>
    private readonly ulong _streams;

    public CapturedStep(VisionModel model, Tensor images, Tensor labels, Func<Tensor, Tensor, StepOutput> issue)
    {
        _model = model;
        var context = model.Context;
        using var unscoped = TensorScope.Unscoped();
        _images = Tensor.Empty(images.Shape, images.DType, context);
        _labels = Tensor.Empty(labels.Shape, labels.DType, context);
        _streamBase = Tensor.Zeros(new Shape(2), DType.Int32, context);
        var generator = model.Generator;
        var start = generator.Offset;
        StepOutput? output = null;
        try
        {
            using (generator.OffsetsFrom(_streamBase))
            {
                _graph = context.Capture(() =>
                {
                    using var scope = TensorScope.Begin();
                    var o = issue(_images, _labels);
                    output = new StepOutput(scope.Keep(o.Loss), scope.Keep(o.Correct));
                });
            }
        }
        catch
        {
            foreach (var t in new[] { _images, _labels, _streamBase })
            {
                t.Dispose();
            }

            throw;
        }
        finally
        {
            // Capturing ran nothing: the streams it handed out are drawn again by each replay.
            _streams = generator.Offset - start;
            generator.Offset = start;
        }

        _output = output!;
    }

    public StepOutput Run(Tensor images, Tensor labels)
    {
        var ops = _model.Context.Ops;
        ops.Copy(images, _images);
        ops.Copy(labels, _labels);
        if (_streams > 0)
        {
            var generator = _model.Generator;
            _streamBase.CopyFrom<int>([(int)(uint)generator.Offset, (int)(uint)(generator.Offset >> 32)]);
            generator.Offset += _streams;
        }

        _graph.Replay();
        return _output;
    }

    public void Dispose()
    {
        _graph.Dispose();
        foreach (var t in new[] { _output.Loss, _output.Correct, _images, _labels, _streamBase })
        {
            t.Dispose();
        }
    }
}

/// <summary>Where a step happened, for progress and for naming the step that diverged.</summary>
public sealed record StepInfo(long Step, int Epoch, int Batch, int Prefix, int Images, bool LastOfBatch);

/// <summary>
/// The losses and correct counts of the last few steps, kept on the device and read in one go every
/// <see cref="Capacity"/> steps (and whenever the trainer needs them: the end of a pass, a stop): reading after
/// every step would make the host wait for the GPU each time.
/// </summary>
public sealed class StepWindow : IDisposable
{
    private readonly Tensor _losses;
    private readonly Tensor _correct;
    private readonly List<StepInfo> _steps = [];

    public StepWindow(ComputeContext context, int capacity = 32)
    {
        ArgumentNullException.ThrowIfNull(context);
        Capacity = capacity;
        using var unscoped = TensorScope.Unscoped();
        _losses = Tensor.Empty(new Shape(capacity), DType.Float32, context);
        _correct = Tensor.Empty(new Shape(capacity), DType.Int32, context);
    }

    public int Capacity { get; }

    public bool IsFull => _steps.Count == Capacity;

    /// <summary>Copies the step's results into the window on the device.</summary>
    public void Add(StepOutput output, StepInfo info)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (IsFull)
        {
            throw new InvalidOperationException("the step window is full; read it first");
        }

        var slot = _steps.Count;
        var ops = _losses.Context.Ops;
        using (var loss = _losses.NarrowView(slot, 1))
        {
            ops.CopyAcross(output.Loss, loss);
        }

        using (var correct = _correct.NarrowView(slot, 1))
        {
            ops.CopyAcross(output.Correct, correct);
        }

        _steps.Add(info);
    }

    /// <summary>The window's steps with their loss and correct count (one wait for the device), and an empty window.</summary>
    public IReadOnlyList<(StepInfo Info, double Loss, long Correct)> Read()
    {
        if (_steps.Count == 0)
        {
            return [];
        }

        var losses = _losses.ToArray<float>();
        var correct = _correct.ToArray<int>();
        var result = _steps.Select((info, i) => (info, (double)losses[i], (long)correct[i])).ToList();
        _steps.Clear();
        return result;
    }

    public void Dispose()
    {
        _losses.Dispose();
        _correct.Dispose();
    }
}
