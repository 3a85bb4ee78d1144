namespace PmemCtl;

/// <summary>
/// Ctrl+C for one pmemctl run. A command that can stop cleanly (put) registers a graceful handler: the
/// first Ctrl+C asks it to stop (it then reports how far it got), a second one cancels outright. Every
/// other command is cancelled by the first Ctrl+C (exit code 130).
/// </summary>
internal sealed class Interrupts : IDisposable
{
    private readonly CancellationTokenSource _cancel;
    private readonly CancellationTokenSource _stop = new();
    private int _count;
    private volatile bool _graceful;

    public Interrupts(CancellationToken outer) => _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);

    /// <summary>Cancels the command outright.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>Asks a graceful command to stop (after <see cref="EnableGracefulStop"/>).</summary>
    public CancellationToken StopToken => _stop.Token;

    /// <summary>The running command handles <see cref="StopToken"/>: the first Ctrl+C goes there.</summary>
    public void EnableGracefulStop() => _graceful = true;

    public void Interrupt()
    {
        if (Interlocked.Increment(ref _count) == 1 && _graceful)
        {
            _stop.Cancel();
        }
        else
        {
            _cancel.Cancel();
        }
    }

    public void Dispose()
    {
        _cancel.Dispose();
        _stop.Dispose();
    }
}
