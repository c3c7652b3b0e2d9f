using System.Diagnostics;
using System.Text.Json;
using ParaCuda.Data;
using ParaCuda.Models;
using ParaCuda.Nn;
using ParaCuda.Training;

namespace ParaCuda.Continual;

/// <summary>Test accuracy of one method after one phase, on the old classes, the new ones and all of them.</summary>
public sealed record ContinualRow(string Method, double OldAccuracy, double NewAccuracy, double AllAccuracy, double Forgetting, long Parameters, double Seconds);

/// <summary>What the split-classes protocol measured; saved as <c>continual.json</c>.</summary>
public sealed record ContinualReport(
    string Protocol,
    IReadOnlyList<int> OldClasses,
    IReadOnlyList<int> NewClasses,
    int AddedBranches,
    bool FreezeExisting,
    int Replay,
    int EpochsPerPhase,
    int BalanceHeadEpochs,
    IReadOnlyList<ContinualRow> Rows)
{
    public const string FileName = "continual.json";

    public string ToJson() => JsonSerializer.Serialize(this, ContinualJson.Default.ContinualReport);

    public static ContinualReport FromJson(string json) =>
        JsonSerializer.Deserialize(json, ContinualJson.Default.ContinualReport) ?? throw new JsonException("empty continual-learning report");
}

/// <summary>
/// Class-incremental learning, built in: phase 1 trains a ParaFormer on the first half of the classes; phase 2
/// brings only the second half (plus, optionally, a small replay buffer of phase-1 images). Three ways through
/// phase 2 are compared on the same data: expanding with new branches trained progressively (old ones frozen or
/// fine-tuned), fine-tuning the whole phase-1 model, and, as the upper bound, training from scratch on all
/// classes for both phases' epochs. Forgetting is the drop in old-class accuracy from the end of phase 1.
/// Each training run keeps its own folder (metrics, checkpoints) under the output folder.
/// </summary>
public sealed class SplitClassesProtocol
{
    public required ModelConfig Model { get; init; }

    public required TrainOptions Options { get; init; }

    public required int AddBranches { get; init; }

    public bool FreezeExisting { get; init; }

    /// <summary>Phase-1 training images mixed into phase 2 (0: none).</summary>
    public int Replay { get; init; }

    /// <summary>
    /// Epochs of class-balanced head re-fitting after phase 2 (0: none); needs a replay buffer. When set,
    /// the expanded and the fine-tuned models are each scored before and after it.
    /// </summary>
    public int BalanceHeadEpochs { get; init; }

    /// <summary>Observer for each training run, by name (phase1, expand, finetune, scratch).</summary>
    public Func<string, ITrainingObserver?> Observer { get; init; } = _ => null;

    public ContinualReport Run(TrainData data, string outDirectory, ModuleInit init, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(init);
        if (BalanceHeadEpochs > 0 && Replay == 0)
        {
            throw new ArgumentException("balancing the head needs old-class images: set a replay buffer");
        }

        var classes = Model.Classes;
        var split = classes / 2;
        bool IsOld(int label) => label < split;
        var oldTest = data.Test.WhereLabel(IsOld);
        var newTest = data.Test.WhereLabel(label => !IsOld(label));
        var phase2Train = Expansion.NewData(data.Train, label => !IsOld(label), Replay, Options.Seed);
        var rows = new List<ContinualRow>();

        ContinualRow Score(string method, VisionModel model, double seconds, double? oldBefore)
        {
            double Accuracy(ImageDataset set) => Evaluation.Run(model, set, data.EvalTransform, Options.EvalBatchSize, ct)[^1].Accuracy;
            var (old, fresh) = (Accuracy(oldTest), Accuracy(newTest));
            // The two halves partition the test set, so its accuracy is their count-weighted mean.
            var all = ((old * oldTest.Count) + (fresh * newTest.Count)) / Math.Max(oldTest.Count + newTest.Count, 1);
            return new ContinualRow(method, old, fresh, all, oldBefore is { } before ? before - old : 0, model.ParameterCount(), seconds);
        }

        double Train(VisionModel model, TrainOptions options, ImageDataset train, Func<int, bool> keep, string name)
        {
            var clock = Stopwatch.StartNew();
            var phaseData = data with { Train = train, Validation = data.Validation.WhereLabel(keep), Test = data.Test.WhereLabel(keep) };
            using var trainer = new Trainer(model, options, phaseData, Path.Combine(outDirectory, name), Observer(name));
            if (!trainer.Run(ct: ct).Completed)
            {
                throw new OperationCanceledException($"the {name} run was stopped before its last epoch");
            }

            return clock.Elapsed.TotalSeconds;
        }

        void Phase2(string method, ParaFormer model, double seconds)
        {
            rows.Add(Score(method, model, seconds, rows[0].OldAccuracy));
            if (BalanceHeadEpochs > 0)
            {
                var clock = Stopwatch.StartNew();
                Expansion.BalanceHead(model, phase2Train, data.EvalTransform, BalanceHeadEpochs, Options.Seed, ct);
                rows.Add(Score($"{method} + balanced head", model, seconds + clock.Elapsed.TotalSeconds, rows[0].OldAccuracy));
            }
        }

        using var phase1 = new ParaFormer(Model, init);
        var phase1Seconds = Train(phase1, Options, data.Train.WhereLabel(IsOld), IsOld, "phase1");
        var afterPhase1 = Score($"phase 1: classes 0–{split - 1}, {Model.Branches} branches", phase1, phase1Seconds, null);
        rows.Add(afterPhase1);

        using (var expanded = Expansion.AddBranches(phase1, AddBranches, Options.Seed + 1))
        {
            var seconds = Train(expanded, Expansion.ForNewBranches(Options, Model.Branches, FreezeExisting), phase2Train, l => !IsOld(l), "expand");
            Phase2($"expand: +{AddBranches} branches (old {(FreezeExisting ? "frozen" : "fine-tuned")})", expanded, seconds);
        }

        using (var finetuned = new ParaFormer(Model, ModuleInit.Create(Options.Seed, init.Context, init.BranchContexts, init.BatchedBranches)))
        {
            finetuned.LoadStateDict(phase1.StateDict());
            var seconds = Train(finetuned, Options, phase2Train, l => !IsOld(l), "finetune");
            Phase2("fine-tune the whole phase-1 model", finetuned, seconds);
        }

        using (var scratch = new ParaFormer(Model with { Branches = Model.Branches + AddBranches }, ModuleInit.Create(Options.Seed, init.Context, init.BranchContexts, init.BatchedBranches)))
        {
            var seconds = Train(scratch, Options with { Epochs = 2 * Options.Epochs }, data.Train, _ => true, "scratch");
            rows.Add(Score($"from scratch on all classes, {Model.Branches + AddBranches} branches", scratch, seconds, null));
        }

        var report = new ContinualReport(
            "split-classes",
            Enumerable.Range(0, split).ToList(),
            Enumerable.Range(split, classes - split).ToList(),
            AddBranches,
            FreezeExisting,
            Replay,
            Options.Epochs,
            BalanceHeadEpochs,
            rows);
        File.WriteAllText(Path.Combine(outDirectory, ContinualReport.FileName), report.ToJson());
        return report;
    }
}
