using System.Globalization;
using ParaCuda.Training;
using Spectre.Console;

namespace ParaCuda.Cli;

/// <summary>
/// Shows a run as it goes: a live progress bar per pass (loss, accuracy, images/s, ETA) on a terminal,
/// or a line every tenth of a pass when output is redirected (logs, CI). Each epoch ends with a summary
/// line including accuracy for every prefix k.
/// </summary>
internal sealed class TrainingDisplay(Action<EpochMetrics> epochDone) : ITrainingObserver
{
    private ProgressContext? _progress;
    private ProgressTask? _task;
    private string _label = "";
    private int _batches;
    private int _lastLine;
    private volatile string? _stopping;

    /// <summary>Prefix of every line, naming the run when one command trains several.</summary>
    public string Run { get; set; } = "";

    /// <summary>Runs <paramref name="body"/> under a live progress display when the console is interactive.</summary>
    public T Show<T>(Func<T> body)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            return body();
        }

        return AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                _progress = context;
                return body();
            });
    }

    public void PassStarted(int epoch, int epochs, string pass, int batches, int startBatch)
    {
        _label = $"{Run}epoch {epoch + 1}/{epochs} {pass}";
        _batches = batches;
        _lastLine = startBatch;
        if (_progress is not null)
        {
            _task = _progress.AddTask(Markup.Escape(_label), maxValue: batches);
            _task.Value = startBatch;
        }
    }

    /// <summary>
    /// Says that the run will stop after the current batch: in the progress bar's own line on a terminal (a line
    /// printed beside a live display would be drawn over), on stderr otherwise. Any thread may call it.
    /// </summary>
    public void Stopping(string message)
    {
        _stopping = message;
        if (_task is not null)
        {
            _task.Description = Markup.Escape($"{_label}  {message}…");
        }
        else
        {
            Console.Error.WriteLine($"{message}…");
        }
    }

    public void BatchDone(int batch, double loss, double accuracy, double imagesPerSecond)
    {
        var status = _stopping is { } stopping ? $"{stopping}…" : string.Create(CultureInfo.InvariantCulture, $"loss {loss:F4}  acc {accuracy:P1}  {imagesPerSecond:F0} img/s");
        if (_task is not null)
        {
            _task.Description = Markup.Escape($"{_label}  {status}");
            _task.Increment(1);
        }
        else if (batch + 1 == _batches || (batch + 1 - _lastLine) * 10 >= _batches)
        {
            _lastLine = batch + 1;
            Console.WriteLine($"{_label}  batch {batch + 1}/{_batches}  {status}");
        }
    }

    public void Evaluating(int epoch)
    {
        if (_task is not null)
        {
            _task.Description = Markup.Escape($"{_label}  evaluating every prefix…");
        }
    }

    public void EpochDone(EpochMetrics metrics, bool best)
    {
        var perK = string.Join(" ", metrics.Prefixes.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.K}:{p.TestAccuracy * 100:F1}")));
        var line = string.Create(
            CultureInfo.InvariantCulture,
            $"{Run}epoch {metrics.Epoch}: train loss {metrics.TrainLoss:F4} acc {metrics.TrainAccuracy:P1} | val {metrics.ValAccuracy:P2} | test {metrics.TestAccuracy:P2} | test acc by k {perK} | {metrics.EpochSeconds:F0} s, {metrics.ImagesPerSecond:F0} img/s{Memory(metrics)}{(best ? " | best so far" : "")}");
        if (_progress is not null)
        {
            AnsiConsole.WriteLine(line);
        }
        else
        {
            Console.WriteLine(line);
        }

        epochDone(metrics);
    }

    private static string Memory(EpochMetrics m) => m.DevicePeakBytes is { } peak && m.DeviceReservedBytes is { } reserved
        ? string.Create(CultureInfo.InvariantCulture, $" | GPU memory peak {peak / (double)(1L << 30):F2} GiB, reserved {reserved / (double)(1L << 30):F2} GiB")
        : "";
}
