using System.Runtime.InteropServices;

namespace ParaCuda.Cli;

/// <summary>
/// Turns Ctrl+C and SIGTERM (what a scheduler sends before it kills a job) into a request to stop at the next
/// batch boundary with a resumable checkpoint. A second Ctrl+C ends the process at once.
/// </summary>
internal sealed class StopRequest : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly TrainingDisplay _display;
    private readonly PosixSignalRegistration? _terminate;

    public StopRequest(TrainingDisplay display)
    {
        _display = display;
        Console.CancelKeyPress += OnCancelKey;
        _terminate = OperatingSystem.IsWindows() ? null : PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnTerminate);
    }

    public CancellationToken Token => _cancel.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancelKey;
        _terminate?.Dispose();
        _cancel.Dispose();
    }

    private void OnCancelKey(object? sender, ConsoleCancelEventArgs e)
    {
        e.Cancel = !_cancel.IsCancellationRequested;
        Stop("Ctrl+C");
    }

    private void OnTerminate(PosixSignalContext context)
    {
        context.Cancel = true;
        Stop("SIGTERM");
    }

    private void Stop(string what)
    {
        if (!_cancel.IsCancellationRequested)
        {
            _display.Stopping($"{what}: stopping after this batch and saving a checkpoint (Ctrl+C again to abort)");
            _cancel.Cancel();
        }
    }
}
