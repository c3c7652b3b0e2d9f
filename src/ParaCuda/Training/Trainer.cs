using System.Diagnostics;
using System.Globalization;
using ParaCuda.Backends;
using ParaCuda.Data;
using ParaCuda.IO;
using ParaCuda.Models;
using ParaCuda.Optim;
using ParaCuda.Tensors;

namespace ParaCuda.Training;

/// <summary>The datasets of a run and how each is prepared.</summary>
public sealed record TrainData(ImageDataset Train, ImageDataset Validation, ImageDataset Test, Transform TrainTransform, Transform EvalTransform)
{
    /// <summary>
    /// A training set split as every run splits it (<see cref="TrainOptions.ValidationFraction"/>, seeded by
    /// <see cref="TrainOptions.Seed"/>), with the reference transforms for a model of <paramref name="config"/>:
    /// resize and normalise, plus random crops and flips for training when <see cref="TrainOptions.Augment"/>.
    /// </summary>
    public static TrainData Split(ImageDataset trainSet, ImageDataset test, ModelConfig config, TrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(trainSet);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        var (train, validation) = trainSet.Split(options.ValidationFraction, options.Seed);
        return new TrainData(train, validation, test, Transform.Reference(config.Channels, config.ImageSize, options.Augment), Transform.Reference(config.Channels, config.ImageSize, train: false));
    }
}

/// <summary>
/// What a front end shows while training runs: implement the calls you need, the others do nothing. Calls come
/// from the training thread; to stop a run, cancel the token given to <see cref="Trainer.Run"/>.
/// </summary>
public interface ITrainingObserver
{
    /// <summary>A pass over the training set begins (an epoch of lpa has several: one per prefix, then the full model).</summary>
    void PassStarted(int epoch, int epochs, string pass, int batches, int startBatch)
    {
    }

    /// <summary>After each batch: the loss and accuracy of its last step, and the pass's images/s so far.</summary>
    void BatchDone(int batch, double loss, double accuracy, double imagesPerSecond)
    {
    }

    /// <summary>The epoch's training is done; validation and test evaluation begin.</summary>
    void Evaluating(int epoch)
    {
    }

    /// <summary>An epoch is done and recorded; <paramref name="best"/> when it saved a new best checkpoint.</summary>
    void EpochDone(EpochMetrics metrics, bool best)
    {
    }
}

/// <summary>How a run ended: all epochs done, or stopped (max steps, cancellation) with a resumable checkpoint.</summary>
public sealed record TrainResult(IReadOnlyList<EpochMetrics> Epochs, bool Completed, long Steps, string LastCheckpoint, string BestCheckpoint);

/// <summary>A loss became NaN or infinite; the message names the step and the last good checkpoint.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// Runs a schedule's passes over the data, evaluates every prefix after each epoch, and keeps
/// <c>metrics.jsonl</c>, <c>best.safetensors</c> (best validation accuracy, weights only) and
/// <c>last.safetensors</c> (full training state, for <c>--resume</c>) in the output folder.
/// Runs stop only at batch boundaries, so a resumed run repeats an uninterrupted one exactly.
/// </summary>
public sealed class Trainer : IDisposable
{
    public const string MetricsFile = "metrics.jsonl";

    /// <summary>The model config as JSON, so a run folder stripped of its checkpoints still says what it trained.</summary>
    public const string ConfigFile = "config.json";
    public const string LastFile = "last.safetensors";
    public const string BestFile = "best.safetensors";

    private readonly VisionModel _model;
    private readonly TrainOptions _options;
    private readonly TrainData _data;
    private readonly ITrainingObserver? _observer;
    private readonly Schedule _schedule;
    private readonly Adam _optimizer;
    private readonly TrainingStep _step;
    private readonly BatchInput _input;
    private readonly DataLoader _loader;

    /// <summary>Consecutive steps whose loss stayed far above a uniform guess's (see <see cref="PassProgress"/>).</summary>
    private int _runawaySteps;

    public Trainer(VisionModel model, TrainOptions options, TrainData data, string outDirectory, ITrainingObserver? observer = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(data);
        if (options.Problem() is { } problem)
        {
            throw new ArgumentException($"invalid training options: {problem}", nameof(options));
        }

        _model = model;
        _options = options;
        _data = data;
        _observer = observer;
        OutDirectory = outDirectory;
        _schedule = Schedule.Create(options.Schedule, options.Stages, options.FreezeEarlier);
        var adamw = options.Optimizer == "adamw";
        _optimizer = new Adam(model.NamedParameters(), new AdamParameters(options.LearningRate, WeightDecay: adamw ? options.WeightDecay : 0f, DecoupledWeightDecay: adamw));
        try
        {
            _step = new TrainingStep(model, _optimizer, options);
        }
        catch
        {
            _optimizer.Dispose();
            throw;
        }

        _input = new BatchInput(model, data.TrainTransform);
        _loader = _input.Loader(data.Train, options.BatchSize, shuffle: true, seed: options.Seed, workers: options.Workers);
    }

    public string OutDirectory { get; }

    public string LastCheckpoint => Path.Combine(OutDirectory, LastFile);

    public string BestCheckpoint => Path.Combine(OutDirectory, BestFile);

    public string MetricsPath => Path.Combine(OutDirectory, MetricsFile);

    /// <summary>
    /// Trains to the end (or to <see cref="TrainOptions.MaxSteps"/> or cancellation, saving a resumable
    /// checkpoint). With <paramref name="resume"/> it continues from <c>last.safetensors</c>; without, it
    /// refuses an output folder that already holds a run rather than overwrite it.
    /// </summary>
    public TrainResult Run(bool resume = false, CancellationToken ct = default)
    {
        Directory.CreateDirectory(OutDirectory);
        RemoveTemporaries();
        var state = resume ? ResumeState() : FreshState();
        var history = state.History.ToList();
        WriteMetrics(history);
        var clock = Stopwatch.StartNew();
        var elapsedBefore = state.ElapsedSeconds;
        double Elapsed() => elapsedBefore + clock.Elapsed.TotalSeconds;
        using var window = new StepWindow(_model.Context);

        for (var epoch = state.Epoch; epoch < _options.Epochs; epoch++)
        {
            var passes = _schedule.Passes(epoch, _options.Epochs, Math.Min(_options.FirstPrefix, _model.Prefixes), _model.Prefixes);
            var sums = state.Epoch == epoch ? state.Partial : new EpochAccumulator();
            for (var pass = state.Epoch == epoch ? state.Pass : 0; pass < passes.Count; pass++)
            {
                var startBatch = state.Epoch == epoch && state.Pass == pass ? state.Batch : 0;
                // A pass trains its own prefixes: the previous pass's graphs would only hold memory.
                _step.ReleaseGraphs();
                _observer?.PassStarted(epoch, _options.Epochs, passes[pass].Name, _loader.BatchesPerEpoch, startBatch);
                var progress = new PassProgress(this, sums);
                // The token is checked between batches, never handed to the loader: a stop that lands while a batch
                // is being prepared must still end with a checkpoint, not an exception.
                foreach (var batch in _loader.Epoch((epoch * passes.Count) + pass, startBatch, CancellationToken.None))
                {
                    TrainBatch(batch, passes[pass].Steps, epoch, window, progress, ref state);
                    var stop = ct.IsCancellationRequested || (_options.MaxSteps > 0 && state.Steps >= _options.MaxSteps);
                    if (stop)
                    {
                        progress.Drain(window);
                        var next = batch.Index + 1 < _loader.BatchesPerEpoch ? (pass, batch.Index + 1) : (pass + 1, 0);
                        SaveLast(state with { Epoch = epoch, Pass = next.Item1, Batch = next.Item2, Partial = progress.Sums, ElapsedSeconds = Elapsed(), History = history });
                        // The epoch so far, so a run stopped early still has a line to report and plot.
                        File.AppendAllText(MetricsPath, Line(epoch, progress.Sums, state.Steps, Elapsed(), []).ToJsonLine() + "\n");
                        return new TrainResult(history, false, state.Steps, LastCheckpoint, BestCheckpoint);
                    }
                }

                progress.Drain(window);
                sums = progress.Sums;
            }

            _observer?.Evaluating(epoch);
            var metrics = Evaluate(epoch, sums, state.Steps, Elapsed());
            history.Add(metrics);
            var score = _data.Validation.Count > 0 ? metrics.ValAccuracy : metrics.TestAccuracy;
            var best = score > state.BestValAccuracy;
            if (best)
            {
                Checkpoint.SaveModel(BestCheckpoint, _model, new Dictionary<string, string> { ["paracuda.epoch"] = (epoch + 1).ToString(System.Globalization.CultureInfo.InvariantCulture) });
                state = state with { BestValAccuracy = score, BestEpoch = epoch + 1 };
            }

            // The checkpoint first, then the line: metrics.jsonl never runs ahead of what a resume restores.
            state = state with { Epoch = epoch + 1, Pass = 0, Batch = 0, Partial = new EpochAccumulator(), ElapsedSeconds = Elapsed(), History = history };
            SaveLast(state);
            File.AppendAllText(MetricsPath, metrics.ToJsonLine() + "\n");
            _observer?.EpochDone(metrics, best);
        }

        return new TrainResult(history, true, state.Steps, LastCheckpoint, BestCheckpoint);
    }

    public void Dispose()
    {
        _step.Dispose();
        _loader.Dispose();
        _optimizer.Dispose();
    }

    /// <summary>One batch: every step the pass asks for, their results into the window (read when it fills).</summary>
    private void TrainBatch(HostBatch batch, IReadOnlyList<TrainStep> steps, int epoch, StepWindow window, PassProgress progress, ref TrainingState state)
    {
        using var batchScope = TensorScope.Begin();
        var (images, labels) = _input.ToDevice(batch);
        for (var s = 0; s < steps.Count; s++)
        {
            using var stepScope = TensorScope.Begin();
            var output = _step.Run(images, labels, steps[s]);
            state = state with { Steps = state.Steps + 1 };
            if (window.IsFull)
            {
                progress.Drain(window);
            }

            window.Add(output, new StepInfo(state.Steps, epoch, batch.Index, steps[s].Prefix, batch.Count, s == steps.Count - 1));
        }

        _step.SetFrozen(0);
    }

    private EpochMetrics Evaluate(int epoch, EpochAccumulator sums, long steps, double elapsed)
    {
        var val = _data.Validation.Count > 0 ? Evaluation.Run(_model, _data.Validation, _data.EvalTransform, _options.EvalBatchSize) : null;
        var test = Evaluation.Run(_model, _data.Test, _data.EvalTransform, _options.EvalBatchSize);
        var prefixes = test.Select((t, i) => new PrefixMetrics(t.K, val?[i].Loss ?? double.NaN, val?[i].Accuracy ?? double.NaN, t.Loss, t.Accuracy)).ToList();
        return Line(epoch, sums, steps, elapsed, prefixes);
    }

    /// <summary>
    /// An epoch's metrics line: training sums so far, and the evaluation of every prefix (none for an epoch stopped
    /// part-way, which is marked partial and has NaN for what was not evaluated).
    /// </summary>
    private EpochMetrics Line(int epoch, EpochAccumulator sums, long steps, double elapsed, List<PrefixMetrics> prefixes)
    {
        var full = prefixes.Count > 0 ? prefixes[^1] : null;
        var seen = Math.Max(sums.Seen, 1);
        var memory = _model.Parameters().Select(p => p.Context.Backend).OfType<Backends.Cuda.CudaBackend>().Distinct().Select(b => b.Memory).ToList();
        return new EpochMetrics(
            epoch + 1,
            _schedule.Name,
            _model.Config.Kind.ToString(),
            sums.LossSum / seen,
            (double)sums.Correct / seen,
            full?.ValLoss ?? double.NaN,
            full?.ValAccuracy ?? double.NaN,
            full?.TestLoss ?? double.NaN,
            full?.TestAccuracy ?? double.NaN,
            prefixes,
            sums.Seconds,
            sums.Images / Math.Max(sums.Seconds, 1e-9),
            steps,
            elapsed,
            full is null || memory.Count == 0 ? null : memory.Sum(m => m.PeakAllocated),
            full is null || memory.Count == 0 ? null : memory.Sum(m => m.Reserved),
            Partial: full is null);
    }

    /// <summary>
    /// A new run. A folder holding a resumable run is refused; one whose run stopped before its first checkpoint
    /// (metrics, a best checkpoint, no last one) has nothing to resume, and is started over.
    /// </summary>
    private TrainingState FreshState()
    {
        if (File.Exists(LastCheckpoint))
        {
            throw new IOException($"{OutDirectory} already holds a run ({LastFile}); pass --resume to continue it, or choose another --out");
        }

        foreach (var stale in new[] { MetricsPath, BestCheckpoint })
        {
            File.Delete(stale);
        }

        File.WriteAllText(Path.Combine(OutDirectory, ConfigFile), _model.Config.ToJson());
        return new TrainingState { Options = _options, GeneratorSeed = _model.Generator.Seed };
    }

    private TrainingState ResumeState()
    {
        if (!File.Exists(LastCheckpoint))
        {
            throw new FileNotFoundException(
                File.Exists(MetricsPath)
                    ? $"nothing to resume: the run in {OutDirectory} stopped before its first checkpoint ({LastFile}); run the same command without --resume to start it over"
                    : $"nothing to resume: {LastCheckpoint} does not exist",
                LastCheckpoint);
        }

        var state = Checkpoint.Restore(LastCheckpoint, _model, _optimizer);
        var passes = _schedule.Passes(Math.Min(state.Epoch, _options.Epochs - 1), _options.Epochs, Math.Min(_options.FirstPrefix, _model.Prefixes), _model.Prefixes).Count;
        if (state.Problem(state.Options.Epochs, passes, _loader.BatchesPerEpoch, _optimizer.Parameters.Count) is { } problem)
        {
            throw new CheckpointFormatException($"{LastCheckpoint}: its training state cannot be resumed: {problem}");
        }

        var saved = state.Options with { MaxSteps = _options.MaxSteps, Workers = _options.Workers, DataDirectory = _options.DataDirectory, Graphs = _options.Graphs };
        var asked = _options with { Stages = saved.Stages };
        if (saved != asked || !saved.Stages.SequenceEqual(_options.Stages))
        {
            throw new ArgumentException($"--resume must keep the run's training options; {LastCheckpoint} was trained with {Describe(saved)}, this command asks for {Describe(_options)}");
        }

        // Checkpoints from before the metrics travelled with them: the lines of the finished epochs, from the file.
        return state.History.Count == state.Epoch ? state : state with { History = EpochMetrics.ReadFile(MetricsPath).Where(m => !m.Partial && m.Epoch <= state.Epoch).ToList() };
    }

    private static string Describe(TrainOptions o) =>
        $"schedule {o.Schedule}, {o.Epochs} epochs, batch {o.BatchSize}, lr {o.LearningRate}, {o.Optimizer}, seed {o.Seed}";

    /// <summary>metrics.jsonl as the checkpoint has it: the finished epochs (a partial or torn line from a run cut short goes).</summary>
    private void WriteMetrics(IReadOnlyList<EpochMetrics> history) => File.WriteAllLines(MetricsPath, history.Select(m => m.ToJsonLine()));

    /// <summary>Removes the temporary files of checkpoint writes this run's folder holds from interrupted runs.</summary>
    private void RemoveTemporaries()
    {
        foreach (var name in new[] { LastFile, BestFile })
        {
            foreach (var stale in Directory.EnumerateFiles(OutDirectory, $".{name}.*.tmp"))
            {
                File.Delete(stale);
            }
        }
    }

    private void SaveLast(TrainingState state) => Checkpoint.SaveTraining(LastCheckpoint, _model, _optimizer, state);

    /// <summary>
    /// One pass's running figures, brought up to date from the step window. Training has diverged, and stops
    /// naming the step, when a loss is not finite, is over a hundred times a uniform guess's (ln C for C classes),
    /// or stays over ten times it for <see cref="RunawaySteps"/> steps in a row (a run that is learning comes down
    /// from a bad step quickly). Each batch's last step feeds the epoch's sums and the observer.
    /// </summary>
    private sealed class PassProgress(Trainer trainer, EpochAccumulator sums)
    {
        private const int RunawaySteps = 64;

        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _images;
        private double _seconds;

        public EpochAccumulator Sums { get; private set; } = sums;

        public void Drain(StepWindow window)
        {
            var steps = window.Read();
            var elapsed = _clock.Elapsed.TotalSeconds;
            _clock.Restart();
            var uniform = Math.Log(trainer._model.Config.Classes);
            foreach (var (info, loss, _) in steps)
            {
                trainer._runawaySteps = loss > 10 * uniform ? trainer._runawaySteps + 1 : 0;
                if (!double.IsFinite(loss) || loss > 100 * uniform || trainer._runawaySteps >= RunawaySteps)
                {
                    var last = File.Exists(trainer.LastCheckpoint) ? trainer.LastCheckpoint : "none yet";
                    var why = double.IsFinite(loss) ? string.Create(CultureInfo.InvariantCulture, $", far above the {uniform:F2} of a uniform guess") : "";
                    throw new TrainingDivergedException(
                        string.Create(CultureInfo.InvariantCulture, $"loss became {loss:G4} at optimizer step {info.Step} (epoch {info.Epoch + 1}, batch {info.Batch + 1}, prefix k={info.Prefix}){why}; ") +
                        $"last good checkpoint: {last}. Try a lower --lr.");
                }
            }

            var batches = steps.Where(s => s.Info.LastOfBatch).ToList();
            var perBatch = elapsed / Math.Max(batches.Count, 1);
            foreach (var (info, loss, correct) in batches)
            {
                _images += info.Images;
                _seconds += perBatch;
                Sums = Sums with
                {
                    LossSum = Sums.LossSum + (loss * info.Images),
                    Correct = Sums.Correct + correct,
                    Seen = Sums.Seen + info.Images,
                    Images = Sums.Images + info.Images,
                    Seconds = Sums.Seconds + perBatch,
                };
                trainer._observer?.BatchDone(info.Batch, loss, (double)correct / info.Images, _images / Math.Max(_seconds, 1e-9));
            }
        }
    }
}
