using ParaCuda.Autograd;
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
/// </summary>
public sealed class TrainingStep(VisionModel model, Adam optimizer, TrainOptions options)
{
    public StepOutput Run(Tensor images, Tensor labels, TrainStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        SetFrozen(step.FrozenBelow);
        optimizer.ZeroGrad();
        Tensor logits;
        Tensor loss;
        if (step.AllPrefixes)
        {
            var all = model.ForwardAllPrefixes(images, step.Prefix).Skip(step.From - 1).ToList();
            loss = F.Scale(F.SumMany(all.Select(l => F.CrossEntropy(l, labels)).ToList()), 1f / all.Count);
            logits = all[^1];
        }
        else
        {
            logits = model.Forward(images, step.Prefix);
            loss = F.CrossEntropy(logits, labels);
        }

        loss.Backward();
        if (step.Clip)
        {
            optimizer.ClipGradNorm(options.ClipNorm);
        }

        optimizer.Step();
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
        frozenBelow = Math.Max(frozenBelow, options.FrozenBranches);
        if (model is ParaFormer paraformer)
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
        foreach (var p in model.Embed.Parameters())
        {
            p.RequiresGrad = options.FrozenBranches == 0;
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

    public StepWindow(Backends.ComputeContext context, int capacity = 32)
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
