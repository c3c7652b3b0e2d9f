namespace ParaCuda.Training;

/// <summary>How a run trains; saved in training checkpoints so a resumed run continues with the same settings.</summary>
public sealed record TrainOptions
{
    public string Schedule { get; init; } = "lpa";

    /// <summary>staged: epochs at which branches 2..B join (empty: evenly spaced).</summary>
    public IReadOnlyList<int> Stages { get; init; } = [];

    /// <summary>staged: freeze the branches that joined earlier.</summary>
    public bool FreezeEarlier { get; init; }

    public int Epochs { get; init; } = 4;

    public int BatchSize { get; init; } = 128;

    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>adam or adamw.</summary>
    public string Optimizer { get; init; } = "adam";

    /// <summary>Decoupled weight decay (adamw only).</summary>
    public float WeightDecay { get; init; } = 0.01f;

    /// <summary>Global gradient-norm limit for the steps a schedule marks as clipped.</summary>
    public float ClipNorm { get; init; } = 1f;

    public int Seed { get; init; } = 1;

    /// <summary>Stop after this many optimizer steps (0: no limit), saving a resumable checkpoint.</summary>
    public long MaxSteps { get; init; }

    /// <summary>Fraction of the training set held out for validation, as the reference does.</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>Random crop (padding 4) and horizontal flip on training images.</summary>
    public bool Augment { get; init; } = true;

    public int EvalBatchSize { get; init; } = 1000;

    /// <summary>Threads preparing batches (0: one per processor).</summary>
    public int Workers { get; init; }

    /// <summary>The dataset the run trains on (its name, and the folder it was read from, if any): what --resume reads again.</summary>
    public string? Dataset { get; init; }

    public string? DataDirectory { get; init; }

    /// <summary>
    /// Capture each kind of training step as a CUDA graph and replay it (CUDA devices with every branch on one
    /// stream: <c>--branch-exec serial</c> or <c>batched</c>; ignored on the CPU). How the run executes, not what it
    /// computes: a resumed run may change it.
    /// </summary>
    public bool Graphs { get; init; }

    /// <summary>Smallest prefix k the lpa and prefix schedules train (expansion: the first new branch).</summary>
    public int FirstPrefix { get; init; } = 1;

    /// <summary>Leading branches kept fixed for the whole run, together with the shared embedding (expansion --freeze-existing).</summary>
    public int FrozenBranches { get; init; }

    /// <summary>Why these options cannot train, or null.</summary>
    public string? Problem()
    {
        if (FirstPrefix < 1 || FrozenBranches < 0)
        {
            return "the first trained prefix must be at least 1 and the frozen branch count not negative";
        }

        if (!Training.Schedule.Names.Contains(Schedule))
        {
            return $"unknown schedule '{Schedule}'; choose one of: {string.Join(", ", Training.Schedule.Names)}";
        }

        if (Optimizer is not ("adam" or "adamw"))
        {
            return $"unknown optimizer '{Optimizer}'; choose adam or adamw";
        }

        if (Epochs <= 0 || BatchSize <= 0 || EvalBatchSize <= 0)
        {
            return "epochs and batch sizes must be positive";
        }

        if (!(LearningRate > 0) || float.IsInfinity(LearningRate))
        {
            return $"learning rate must be a positive number, got {LearningRate}";
        }

        return ValidationFraction is < 0 or >= 1 ? "validation fraction must be in [0, 1)" : MaxSteps < 0 ? "max steps cannot be negative" : null;
    }
}
