using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>
/// Sticky persist errors (errseq-style, per mapping).
/// <para>
/// <b>Why.</b> Linux records a failed write-back in the file's <c>errseq_t</c> (mm/filemap.c,
/// lib/errseq.c) and reports it once to each open file description that samples it, then marks the
/// pages clean: a retried msync/fsync returns 0 for bytes that never reached storage (PostgreSQL's
/// 2018 "fsyncgate"; the fix there was to PANIC instead of retrying). So the first failed msync of a
/// map (persist, flush, memcpy with persist, CompleteDeferred, deep flush) is remembered by the map,
/// and every later call that would claim persistence throws a <see cref="Pmem2Exception"/> with the
/// original code, without calling msync again. A deliberate deviation from libpmem2, which abort()s
/// (docs/pmem2.md).
/// </para>
/// <para>
/// <b>Concurrent msyncs of one map.</b> The kernel hands the error to whichever msync of the file
/// samples it first, so when two threads msync the same map at once the one whose pages failed may be
/// told 0 while the other gets EIO. A successful msync is therefore trusted only when every msync of
/// this map that overlapped it has returned without failing.
/// </para>
/// <para>
/// <b>How, without a lock on the fast path.</b> <see cref="_msyncState"/> packs the number of msyncs of
/// this map running now (low 32 bits) and a quiescence epoch (high 32 bits) that is bumped in the same
/// atomic step that takes the count to zero. Each msync increments the count before the syscall and
/// decrements it after. <i>Failure accounting:</i> a failed msync publishes its error in
/// <see cref="_persistFailure"/> (Interlocked.CompareExchange: the first failure wins) <b>before</b> its
/// decrement, and every success reads <see cref="_persistFailure"/> <b>after</b> its own decrement
/// (both are full fences). Hence:
/// <list type="bullet">
/// <item><i>Fast path</i> (the usual case: no other msync of this map running): the decrement takes the
/// count to zero, so every msync that overlapped this one has already decremented, and its failure, if
/// any, is visible; none: success. Cost: two interlocked operations and two volatile reads, no lock,
/// no allocation.</item>
/// <item><i>Fallback</i> (another msync of this map is still running when this one ends): wait on
/// <see cref="_persistGate"/> until the epoch changes (the count reached zero after this decrement,
/// so every msync that overlapped this one has returned) or a failure is recorded, then report the
/// failure if there is one. The waiter registers in <see cref="_persistWaiters"/> before its check, and
/// a thread that takes the count to zero or records a failure pulses only when that count is non-zero
/// (both sides fence between their write and their read, so one of them sees the other). The wait is
/// bounded: an msync that ends while others run also waits, so each persisting thread adds at most
/// one msync to it; it never waits for another map.</item>
/// </list>
/// A call whose msync starts after a failure was recorded is refused before the syscall
/// (<see cref="ThrowIfPersistFailed"/>); one that checked just before still reads the failure after its
/// decrement. So once a failure is recorded, no later persisting call of this map succeeds, and no
/// success is reported for an msync that overlapped a failing one.
/// </para>
/// </summary>
public sealed unsafe partial class Pmem2Map
{
    private const long MsyncCountMask = 0xFFFF_FFFFL;
    private const long MsyncEpochUnit = 1L << 32;

    /// <summary>Slow path only: waiters for a quiescence epoch change or a failure.</summary>
    private readonly object _persistGate = new();
    /// <summary>Low 32 bits: msyncs of this map running now; high 32 bits: times that count reached zero.</summary>
    private long _msyncState;
    /// <summary>Threads in the slow path (so the fast path pulses nobody and takes no lock).</summary>
    private int _persistWaiters;
    private Pmem2Exception? _persistFailure;

    /// <summary>
    /// Test seam, in addition to the FUSE fault tests: when set, called before each msync of this map;
    /// a non-zero return is treated as that msync failing with that errno (msync is then not called).
    /// </summary>
    internal Func<int>? MsyncFaultForTesting { get; set; }

    /// <summary>Number of msyncs of this map running now (tests).</summary>
    internal int MsyncsRunning => (int)(Volatile.Read(ref _msyncState) & MsyncCountMask);

    /// <summary>Throws the sticky error when a persist of this map has failed before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void ThrowIfPersistFailed()
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
        Interlocked.CompareExchange(ref _persistFailure, error, null);
        WakePersistWaiters();
        return error;
    }

    [DoesNotReturn]
    private static void ThrowSticky(Pmem2Exception first) =>
        throw new Pmem2Exception(first.Code,
            $"{first.Message} (an earlier persist of this mapping failed; the error is sticky: nothing in the mapping is persisted again until it is unmapped and mapped anew)",
            first, persistFailure: true);

    /// <summary>Runs one msync-based persist step (<paramref name="msync"/>) under the sticky-error rules.</summary>
    private void PersistThroughMsync(void* addr, nuint len, delegate*<Pmem2Map, void*, nuint, void> msync)
    {
        ThrowIfPersistFailed();
        Interlocked.Increment(ref _msyncState);
        Pmem2Exception? error = null;
        bool last;
        long epoch;
        try
        {
            var injected = MsyncFaultForTesting?.Invoke() ?? 0;
            if (injected != 0)
            {
                Pmem2Diagnostics.Msync();
                throw Errors.FromErrno(injected, "msync");
            }

            msync(this, addr, len);
        }
        catch (Pmem2Exception e)
        {
            error = e.IsPersistFailure ? e : new Pmem2Exception(e.Code, e.Message, e, persistFailure: true);
            // Failure accounting: published before the decrement below, so any msync that overlapped
            // this one and reads the failure after its own decrement sees it.
            Interlocked.CompareExchange(ref _persistFailure, error, null);
        }
        finally
        {
            // Also on an exception that is not an msync error (a test seam throwing, say): the count
            // must not leak, or every later persist of this map would take the slow path for ever.
            last = LeaveMsync(out epoch);
        }

        if (error is not null)
        {
            WakePersistWaiters();
            throw error;
        }

        if (last)
        {
            // Fast path: nothing else of this map was running when this msync ended.
            if (Volatile.Read(ref _persistWaiters) != 0)
            {
                WakePersistWaiters();
            }

            ThrowIfPersistFailed();
            return;
        }

        WaitForOverlappingMsyncs(epoch);
    }

    /// <summary>Decrements the running count; when it reaches zero, bumps the epoch in the same atomic step.
    /// Returns whether this was the last running msync, and the epoch after the decrement.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool LeaveMsync(out long epoch)
    {
        var state = Volatile.Read(ref _msyncState);
        while (true)
        {
            var last = (state & MsyncCountMask) == 1;
            var next = last ? unchecked((state & ~MsyncCountMask) + MsyncEpochUnit) : state - 1;
            var seen = Interlocked.CompareExchange(ref _msyncState, next, state);
            if (seen == state)
            {
                epoch = next & ~MsyncCountMask;
                return last;
            }

            state = seen;
        }
    }

    /// <summary>
    /// The fallback: this msync succeeded while another msync of this map was running. Waits until the
    /// running count has reached zero since (the epoch changed: every msync that overlapped this one has
    /// returned) or a failure is recorded; a failure then turns this success into the sticky error.
    /// </summary>
    private void WaitForOverlappingMsyncs(long epoch)
    {
        Interlocked.Increment(ref _persistWaiters);
        try
        {
            lock (_persistGate)
            {
                while (Volatile.Read(ref _persistFailure) is null
                       && (Volatile.Read(ref _msyncState) & ~MsyncCountMask) == epoch)
                {
                    Monitor.Wait(_persistGate);
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _persistWaiters);
        }

        ThrowIfPersistFailed();
    }

    /// <summary>Wakes slow-path waiters after the count reached zero or a failure was recorded (no-op without waiters).</summary>
    private void WakePersistWaiters()
    {
        if (Volatile.Read(ref _persistWaiters) == 0)
        {
            return;
        }

        lock (_persistGate)
        {
            Monitor.PulseAll(_persistGate);
        }
    }

    /// <summary>PAGE persist step: msync of the page-aligned range; straight to the kernel when the range lies
    /// in this (live) map, else through the registry walk (only what registered maps cover).</summary>
    private static void MsyncPagesStep(Pmem2Map map, void* addr, nuint len)
    {
        // A closed handle (Dispose ran while this call holds a reference, or a raw call on a disposed
        // map) takes the walk, which skips maps being unmapped, as before.
        if (!map._handle.IsClosed)
        {
            Persistence.PersistPagesWithin(addr, len, (nuint)map._address, (nuint)map._address + map._size);
        }
        else
        {
            Persistence.PersistPages(addr, len);
        }
    }

    private static void FlushFileBuffersStep(Pmem2Map map, void* addr, nuint len) => Persistence.FlushFileBuffers(addr, len);

    /// <summary>
    /// fsync of <paramref name="file"/>, a descriptor of the mapped file, as a persist of the whole map under
    /// the sticky-error rules (see <see cref="Pmem2FileAttributes.Set(SafeFileHandle, string, ReadOnlySpan{byte}, Pmem2Map)"/>
    /// for why): refused after a failure, counted with the running msyncs, a failure recorded as the map's.
    /// </summary>
    internal void SyncFileSticky(SafeFileHandle file)
    {
        var added = false;
        file.DangerousAddRef(ref added);
        try
        {
            // The steps take (address, length); this one gets the descriptor number as its "address".
            PersistThroughMsync((void*)file.DangerousGetHandle(), 0, &FsyncStep);
        }
        finally
        {
            if (added)
            {
                file.DangerousRelease();
            }
        }
    }

    private static void FsyncStep(Pmem2Map map, void* fd, nuint len)
    {
        using var handle = new SafeFileHandle((nint)fd, ownsHandle: false);
        int errno;
        do
        {
            if (LibC.fsync(handle) == 0)
            {
                return;
            }

            errno = Marshal.GetLastPInvokeError();
        }
        while (errno == LibC.EINTR);
        Errors.ThrowErrno(errno, "fsync");
    }

    /// <summary>PAGE persist (msync of the page-aligned range) with sticky errors.</summary>
    private void PersistPagesSticky(void* addr, nuint len) => PersistThroughMsync(addr, len, &MsyncPagesStep);

    /// <summary>Deep flush's msync with sticky errors.</summary>
    private void FlushFileBuffersSticky(void* addr, nuint len) => PersistThroughMsync(addr, len, &FlushFileBuffersStep);
}
