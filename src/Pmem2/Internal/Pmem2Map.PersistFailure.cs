using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// Sticky persist errors (errseq-style, per mapping). Linux reports a failed write-back once per open
/// file and then marks the pages clean, so a retried msync "succeeds" for bytes that never reached
/// storage. Here the first failed msync (persist, flush, memcpy with persist, CompleteDeferred, deep
/// flush) is remembered by the map, and every later call that would claim persistence throws a
/// <see cref="Pmem2Exception"/> with the original code, without calling msync again. A deliberate
/// deviation from libpmem2, which abort()s (docs/pmem2.md).
/// <para>
/// The kernel hands the error to whichever msync of the file looks first. When two threads msync the
/// same map at once, the one whose pages failed may be told 0 while the other gets EIO. So a
/// successful msync is trusted only after every msync of this map that was running while it ran has
/// returned (a ticket gate: per map, held only for bookkeeping, never during the syscall); if one of
/// them failed, the success is turned into the sticky error.
/// </para>
/// </summary>
public sealed unsafe partial class Pmem2Map
{
    private readonly object _persistGate = new();
    // Tickets of the msyncs running now: a handful at most (one per concurrent persister of this map),
    // so a list scanned for its minimum; unlike a SortedSet it allocates nothing per msync.
    private readonly List<long> _msyncsRunning = [];
    private long _nextMsyncTicket;
    private Pmem2Exception? _persistFailure;

    /// <summary>
    /// Test seam, in addition to the FUSE fault tests: when set, called before each msync of this map;
    /// a non-zero return is treated as that msync failing with that errno (msync is then not called).
    /// </summary>
    internal Func<int>? MsyncFaultForTesting { get; set; }

    /// <summary>Throws the sticky error when a persist of this map has failed before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ThrowIfPersistFailed()
    {
        var failure = Volatile.Read(ref _persistFailure);
        if (failure is not null)
        {
            ThrowSticky(failure);
        }
    }

    /// <summary>A copy that flushes (no NOFLUSH) claims persistence: refused on a failed map before any store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ThrowIfPersistingAfterFailure(Pmem2MemFlags flags)
    {
        if ((flags & Pmem2MemFlags.NoFlush) == 0)
        {
            ThrowIfPersistFailed();
        }
    }

    /// <summary>Remembers a failure of a persist step that is not an msync (device DAX deep flush).</summary>
    private Pmem2Exception RecordPersistFailure(Pmem2Exception e)
    {
        var error = e.IsPersistFailure ? e : new Pmem2Exception(e.Code, e.Message, e, persistFailure: true);
        lock (_persistGate)
        {
            _persistFailure ??= error;
            Monitor.PulseAll(_persistGate);
        }

        return error;
    }

    [DoesNotReturn]
    private static void ThrowSticky(Pmem2Exception first) =>
        throw new Pmem2Exception(first.Code,
            $"{first.Message} (an earlier persist of this mapping failed; the error is sticky: nothing in the mapping is persisted again until it is unmapped and mapped anew)",
            first, persistFailure: true);

    /// <summary>Runs one msync-based persist step (<paramref name="msync"/>) under the sticky-error rules.</summary>
    private void PersistThroughMsync(void* addr, nuint len, delegate*<void*, nuint, void> msync)
    {
        ThrowIfPersistFailed();
        long ticket;
        lock (_persistGate)
        {
            ticket = _nextMsyncTicket++;
            _msyncsRunning.Add(ticket);
        }

        Pmem2Exception? error = null;
        try
        {
            var injected = MsyncFaultForTesting?.Invoke() ?? 0;
            if (injected != 0)
            {
                Pmem2Diagnostics.Msync();
                throw Errors.FromErrno(injected, "msync");
            }

            msync(addr, len);
        }
        catch (Pmem2Exception e)
        {
            error = e.IsPersistFailure ? e : new Pmem2Exception(e.Code, e.Message, e, persistFailure: true);
        }

        lock (_persistGate)
        {
            var at = _msyncsRunning.IndexOf(ticket);
            _msyncsRunning[at] = _msyncsRunning[^1];
            _msyncsRunning.RemoveAt(_msyncsRunning.Count - 1);
            if (error is not null)
            {
                _persistFailure ??= error;
                Monitor.PulseAll(_persistGate);
                throw error;
            }

            Monitor.PulseAll(_persistGate);
            // Trust this success only once every msync that started before it ended has returned.
            var end = _nextMsyncTicket;
            while (_persistFailure is null && OldestRunningMsync() < end)
            {
                Monitor.Wait(_persistGate);
            }

            if (_persistFailure is { } failure)
            {
                ThrowSticky(failure);
            }
        }
    }

    /// <summary>The lowest ticket of a running msync, or long.MaxValue when none runs (call under the gate).</summary>
    private long OldestRunningMsync()
    {
        var oldest = long.MaxValue;
        foreach (var ticket in _msyncsRunning)
        {
            oldest = Math.Min(oldest, ticket);
        }

        return oldest;
    }

    private static void MsyncPagesStep(void* addr, nuint len) => Persistence.PersistPages(addr, len);

    private static void FlushFileBuffersStep(void* addr, nuint len) => Persistence.FlushFileBuffers(addr, len);

    /// <summary>PAGE persist (msync of the page-aligned range) with sticky errors.</summary>
    private void PersistPagesSticky(void* addr, nuint len) => PersistThroughMsync(addr, len, &MsyncPagesStep);

    /// <summary>Deep flush's msync with sticky errors.</summary>
    private void FlushFileBuffersSticky(void* addr, nuint len) => PersistThroughMsync(addr, len, &FlushFileBuffersStep);
}
