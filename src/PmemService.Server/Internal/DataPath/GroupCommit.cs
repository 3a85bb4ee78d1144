using System.Runtime.CompilerServices;
using Grpc.Core;
using Pmem2;

namespace PmemService.Server.Internal.DataPath;

/// <summary>
/// Group commit for PAGE mappings (msync), the way databases batch WAL fsyncs, with a bounded number
/// of msyncs in flight per mapping (<c>PmemService:PageSyncParallelism</c>). A caller whose bytes are
/// already copied asks for [offset, offset+length) to be persisted:
/// <list type="bullet">
/// <item>when fewer than the limit of msyncs of this mapping are running, it runs its own msync inline
/// (no hand-off), concurrently with the others;</item>
/// <item>otherwise it queues; when a running msync returns, ONE msync of the smallest range covering
/// every queued range runs (on a pool thread) and answers them all. A queued caller is never answered
/// by an msync that was already running when it queued (that one may have passed its pages), only by
/// one that started after its copy, so every caller is answered only after an msync covering its range
/// returned.</item>
/// <item>A failed msync fails every caller it covered, and the failure is sticky: every later persist
/// of the mapping (queued or new) fails too, as DATA_LOSS IO_ERROR. Nothing is retried into success.
/// (Pmem2Map's own gate makes concurrent msyncs of one map safe: a success is trusted only once every
/// overlapping msync has returned, and the first failure is remembered.)</item>
/// </list>
/// Why the limit exists and why it defaults to 1: on an ext4 virtual disk, eight threads each msyncing
/// their own 4 KiB page completed ~3x more durable writes per second than one msync covering eight
/// pages (Python harness, docs/benchmarks.md "PAGE writes: group commit against concurrent msyncs"):
/// each msync ends in a block-device cache flush, and the block layer merges concurrent flushes. In
/// the service the same change did not pay (calls/s at concurrency 8 equal or lower in alternating
/// runs): the msyncs block thread-pool threads on 2 cores. So the default stays one msync at a time.
/// A limit of 1 is the classic one-at-a-time group commit.
/// Finer granularities do not need it (a drain is a fence); <see cref="PersistAsync(Pmem2Map, ulong, ulong, int)"/> runs them inline.
/// </summary>
internal sealed class GroupCommit
{
    private static readonly ConditionalWeakTable<Pmem2Map, GroupCommit> Commits = new();

    private readonly Action<ulong, ulong> _persist;
    private readonly Lock _lock = new();
    private List<Waiter> _pending = [];
    private List<Waiter>? _spare = []; // a drained batch list for reuse; null while every list is in use (several rounds may run at once)
    private readonly int _parallelism;
    private int _inFlight;
    private Exception? _failure;

    /// <summary>The default of <c>PmemService:PageSyncParallelism</c>.</summary>
    public const int DefaultParallelism = 1;

    /// <param name="persist">Persists [offset, offset+length): the msync (a seam for tests).</param>
    /// <param name="parallelism">At most this many msyncs of the mapping run at once (at least 1).</param>
    internal GroupCommit(Action<ulong, ulong> persist, int parallelism = DefaultParallelism)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        _persist = persist;
        _parallelism = parallelism;
    }

    private long _rounds;

    /// <summary>Number of msyncs that ran (for tests and the benchmark).</summary>
    internal long Rounds => Volatile.Read(ref _rounds);

    /// <summary>
    /// Makes the deferred copies in [offset, offset+length) of <paramref name="map"/> persistent
    /// (<see cref="Pmem2Map.CompleteDeferred"/>): inline on CACHE_LINE / BYTE, group-committed on PAGE.
    /// </summary>
    public static ValueTask PersistAsync(Pmem2Map map, ulong offset, ulong length, int parallelism = DefaultParallelism)
    {
        if (map.StoreGranularity != Pmem2Granularity.Page)
        {
            map.CompleteDeferred(offset, length);
            return ValueTask.CompletedTask;
        }

        return For(map, parallelism).PersistAsync(offset, length);
    }

    /// <summary>The group commit of one mapping (lives as long as the map object; the first caller's parallelism holds).</summary>
    public static GroupCommit For(Pmem2Map map, int parallelism = DefaultParallelism) =>
        Commits.TryGetValue(map, out var commit) ? commit : Commits.GetValue(map, m => new GroupCommit(m.CompleteDeferred, parallelism));

    /// <summary>Persists [offset, offset+length); completes only after an msync covering it returned.</summary>
    public ValueTask PersistAsync(ulong offset, ulong length)
    {
        lock (_lock)
        {
            if (_failure is not null)
            {
                return ValueTask.FromException(Sticky(_failure));
            }

            if (_inFlight >= _parallelism)
            {
                var waiter = new Waiter(offset, offset + length);
                _pending.Add(waiter);
                return new ValueTask(waiter.Task);
            }

            _inFlight++;
        }

        // Below the limit: sync our own range now, on this thread.
        Exception? error = null;
        try
        {
            Interlocked.Increment(ref _rounds);
            _persist(offset, length);
        }
        catch (Exception e)
        {
            error = e;
        }

        var scheduleNext = false;
        lock (_lock)
        {
            if (error is not null)
            {
                _failure ??= error;
            }

            if (_pending.Count == 0)
            {
                _inFlight--;
            }
            else
            {
                scheduleNext = true; // this slot passes to the round that answers the queue
            }
        }

        if (scheduleNext)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.RunQueued(), this, preferLocal: false);
        }

        return error is null ? ValueTask.CompletedTask : ValueTask.FromException(Failed(error));
    }

    /// <summary>Runs rounds in the slot it inherited until the queue is empty: one msync covering every range queued before the round started.</summary>
    private void RunQueued()
    {
        while (true)
        {
            List<Waiter> batch;
            Exception? failure;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _inFlight--;
                    return;
                }

                batch = _pending;
                _pending = _spare ?? [];
                _spare = null;
                failure = _failure;
            }

            if (failure is not null)
            {
                // Sticky: a failed msync may have dropped these pages' dirty state; never sync "successfully" after it.
                var sticky = Sticky(failure);
                foreach (var waiter in batch)
                {
                    waiter.TrySetException(sticky);
                }
            }
            else
            {
                var start = ulong.MaxValue;
                var end = 0UL;
                foreach (var waiter in batch)
                {
                    start = Math.Min(start, waiter.Start);
                    end = Math.Max(end, waiter.End);
                }

                Exception? error = null;
                try
                {
                    Interlocked.Increment(ref _rounds);
                    _persist(start, end - start);
                }
                catch (Exception e)
                {
                    error = e;
                    lock (_lock)
                    {
                        _failure ??= e;
                    }
                }

                var failed = error is null ? null : Failed(error);
                foreach (var waiter in batch)
                {
                    if (failed is null)
                    {
                        waiter.TrySetResult();
                    }
                    else
                    {
                        waiter.TrySetException(failed);
                    }
                }
            }

            batch.Clear();
            lock (_lock)
            {
                _spare ??= batch;
            }
        }
    }

    /// <summary>The error of the msync that covered the caller's range.</summary>
    private static Exception Failed(Exception error) => error is PmemServiceException
        ? error
        : new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.IoError,
            $"Persisting the written range failed ({error.Message}); the bytes are not durable.", inner: error);

    /// <summary>The error of every persist after a failed one.</summary>
    private static Exception Sticky(Exception first) =>
        new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.IoError,
            $"An earlier persist of this mapping failed ({first.Message}); later writes are not made durable by this mapping.", inner: first);

    private sealed class Waiter(ulong start, ulong end) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public ulong Start { get; } = start;

        public ulong End { get; } = end;
    }
}
