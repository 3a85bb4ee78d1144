using System.Collections.Concurrent;
using System.Threading.Channels;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.Sharing;

/// <summary>One WatchRegion event as kept in a region's history (a struct: publishing allocates nothing).</summary>
internal readonly record struct WatchEvent(ulong Sequence, WatchEventKind Kind, ulong Offset, ulong Length, FlushType FlushType, long UnixMs)
{
    public WatchRegionResponse ToMessage(string epoch) => new()
    {
        Sequence = Sequence,
        Epoch = epoch,
        Kind = Kind,
        Offset = Offset,
        Length = Length,
        FlushType = FlushType,
        UnixMs = UnixMs,
    };
}

/// <summary>
/// WatchRegion's per-region event logs (issue 14). Every range a call made persistent (or visible) is
/// published here after its persist succeeded, under the region's lock, which assigns the next sequence
/// (1, 2, 3, ... per region within an <see cref="Epoch"/>: no gaps, one order for every watcher), keeps the
/// event in a bounded ring (<see cref="PmemServiceOptions.WatchHistoryLength"/>) and hands it to every
/// watcher's bounded channel. A watcher that cannot keep up (its channel is full) is completed with
/// DATA_LOSS WATCH_HISTORY_OVERFLOW and can resume from the history with after_sequence.
/// The history lives in memory: a restart starts a new epoch.
/// </summary>
internal sealed class RegionWatchHub
{
    private readonly ConcurrentDictionary<string, RegionEventLog> _logs = new(StringComparer.Ordinal);
    private readonly int _historyLength;
    private readonly int _bufferLength;

    public RegionWatchHub(int historyLength, int bufferLength)
    {
        _historyLength = historyLength;
        _bufferLength = bufferLength;
        Epoch = Guid.NewGuid().ToString("N")[..16];
    }

    /// <summary>Identifies this server instance's sequences (a restart starts over at 1 with a new epoch).</summary>
    public string Epoch { get; }

    /// <summary>Records an event for <paramref name="name"/> and delivers it to its watchers.</summary>
    public void Publish(string name, WatchEventKind kind, ulong offset, ulong length, FlushType flushType)
    {
        if (!_logs.TryGetValue(name, out var log))
        {
            log = _logs.GetOrAdd(name, static (_, hub) => new RegionEventLog(hub._historyLength), this);
        }

        log.Publish(kind, offset, length, flushType, Epoch);
    }

    /// <summary>The latest sequence of the region (0 when it had no event in this epoch).</summary>
    public ulong LatestSequence(string name) => _logs.TryGetValue(name, out var log) ? log.Latest : 0;

    /// <summary>
    /// Subscribes to the region's events after <paramref name="afterSequence"/> (0 without an epoch: from now, or the
    /// whole history with <paramref name="fromHistory"/>; 0 with the epoch: from the epoch's first event). Throws DATA_LOSS WATCH_HISTORY_OVERFLOW when events after
    /// that point are gone, OUT_OF_RANGE WATCH_SEQUENCE_AHEAD when it lies in the future.
    /// </summary>
    public WatchSubscription Subscribe(string name, ulong afterSequence, string epoch, bool fromHistory)
    {
        if (epoch.Length > 0 && !string.Equals(epoch, Epoch, StringComparison.Ordinal))
        {
            throw Overflow(name, $"epoch '{epoch}' is not the server's current epoch '{Epoch}' (the server restarted); the events before the restart are gone", 1, LatestSequence(name))
                .With("why", "epoch");
        }

        var log = _logs.GetOrAdd(name, static (_, hub) => new RegionEventLog(hub._historyLength), this);
        return log.Subscribe(name, afterSequence, epoch.Length > 0, fromHistory, _historyLength + _bufferLength, Epoch);
    }

    /// <summary>The region was deleted: its watchers end with NOT_FOUND REGION_DELETED and its history is dropped
    /// (the sequence keeps counting, so a resume point of the old region is never taken for one of the new).</summary>
    public void RegionDeleted(string name)
    {
        if (_logs.TryGetValue(name, out var log))
        {
            log.Clear(() => PmemServiceException.Deleted(name));
        }
    }

    internal static PmemServiceException Overflow(string name, string why, ulong oldest, ulong latest) =>
        new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.WatchHistoryOverflow,
            $"Watch of region '{name}' missed events: {why}. Events {oldest} to {latest} are still in the history; re-read the region and resume.", "after_sequence")
            .With("region", name).With("oldest_sequence", oldest).With("latest_sequence", latest);

    internal sealed class RegionEventLog
    {
        private readonly Lock _lock = new();
        private readonly int _capacity;
        private readonly List<WatchSubscription> _watchers = [];
        private WatchEvent[]? _ring;
        private int _count;
        private ulong _latest;

        public RegionEventLog(int capacity) => _capacity = capacity;

        public ulong Latest
        {
            get
            {
                lock (_lock)
                {
                    return _latest;
                }
            }
        }

        public void Publish(WatchEventKind kind, ulong offset, ulong length, FlushType flushType, string epoch)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            lock (_lock)
            {
                var e = new WatchEvent(++_latest, kind, offset, length, flushType, now);
                _ring ??= new WatchEvent[_capacity];
                _ring[(int)(e.Sequence % (ulong)_capacity)] = e;
                _count = Math.Min(_count + 1, _capacity);
                for (var i = _watchers.Count - 1; i >= 0; i--)
                {
                    var watcher = _watchers[i];
                    if (!watcher.Writer.TryWrite(e))
                    {
                        _watchers.RemoveAt(i);
                        watcher.Writer.TryComplete(Overflow(watcher.Name, $"the watcher read too slowly (more than {watcher.Capacity} events queued)",
                            _latest - (ulong)_count + 1, _latest).With("epoch", epoch).With("why", "slow_reader"));
                    }
                }
            }
        }

        public WatchSubscription Subscribe(string name, ulong after, bool pinned, bool fromHistory, int capacity, string epoch)
        {
            lock (_lock)
            {
                var oldest = _latest - (ulong)_count + 1;
                if (after > _latest)
                {
                    throw new PmemServiceException(StatusCode.OutOfRange, PmemErrorReasons.WatchSequenceAhead,
                        $"after_sequence {after} is past region '{name}''s latest event {_latest} of epoch '{epoch}'.", "after_sequence")
                        .With("region", name).With("latest_sequence", _latest).With("epoch", epoch);
                }

                // after > 0, or 0 with the epoch given: an exact resume point ("seen everything up to after");
                // 0 without an epoch: from now, or from what the history still holds with fromHistory.
                var replayFrom = after > 0 || (pinned && !fromHistory) ? after + 1 : fromHistory ? Math.Max(oldest, 1) : _latest + 1;
                if (replayFrom < oldest)
                {
                    throw Overflow(name, $"after_sequence {after} is older than the bounded history ({_count} events)", oldest, _latest)
                        .With("epoch", epoch).With("why", "history");
                }

                var subscription = new WatchSubscription(this, name, capacity, _latest);
                for (var s = replayFrom; s <= _latest; s++)
                {
                    subscription.Writer.TryWrite(_ring![(int)(s % (ulong)_capacity)]);
                }

                _watchers.Add(subscription);
                return subscription;
            }
        }

        public void Remove(WatchSubscription subscription)
        {
            lock (_lock)
            {
                _watchers.Remove(subscription);
            }
        }

        public void Clear(Func<Exception> reason)
        {
            lock (_lock)
            {
                foreach (var watcher in _watchers)
                {
                    watcher.Writer.TryComplete(reason());
                }

                _watchers.Clear();
                _ring = null;
                _count = 0;
            }
        }
    }

    /// <summary>One watcher: read <see cref="Reader"/>; dispose to stop.</summary>
    internal sealed class WatchSubscription : IDisposable
    {
        private readonly RegionEventLog _log;
        private readonly Channel<WatchEvent> _channel;

        internal WatchSubscription(RegionEventLog log, string name, int capacity, ulong latestAtStart)
        {
            _log = log;
            Name = name;
            Capacity = capacity;
            LatestAtStart = latestAtStart;
            _channel = Channel.CreateBounded<WatchEvent>(new BoundedChannelOptions(capacity)
            {
                SingleReader = true,
                SingleWriter = false,
                FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of dropping: overflow is reported
            });
        }

        public string Name { get; }

        public int Capacity { get; }

        /// <summary>The region's latest sequence when the subscription was made.</summary>
        public ulong LatestAtStart { get; }

        public ChannelReader<WatchEvent> Reader => _channel.Reader;

        internal ChannelWriter<WatchEvent> Writer => _channel.Writer;

        public void Dispose()
        {
            _log.Remove(this);
            _channel.Writer.TryComplete();
        }
    }
}
