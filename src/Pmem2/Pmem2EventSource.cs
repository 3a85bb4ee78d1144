using System.Diagnostics.Tracing;

namespace Pmem2;

/// <summary>
/// Pmem2's diagnostic log, in place of libpmem2's debug-build log (PMEM2_LOG_LEVEL / PMEM2_LOG_FILE):
/// an <see cref="EventSource"/> named "Pmem2". Nothing is formatted or written unless a listener is
/// enabled, so the cost when nobody listens is one bool test per event site. Listen out of process
/// with <c>dotnet-trace collect --providers Pmem2:0xFFFFFFFF:5 -p PID</c> (or <c>dotnet-counters</c> /
/// any EventPipe client), or in process with an <see cref="EventListener"/> that enables
/// <see cref="ProviderName"/> (the service bridges it into its ILogger that way).
/// </summary>
/// <remarks>
/// Levels, as libpmem2 uses its log levels: <see cref="EventLevel.Warning"/> for conditions that lose
/// speed or information (CPU flush fallback to msync, bad blocks found on a source),
/// <see cref="EventLevel.Informational"/> for mapping life-cycle and bad-block clears,
/// <see cref="EventLevel.Verbose"/> for decisions (forced granularity, namespace lookups).
/// Event ids are stable.
/// </remarks>
[EventSource(Name = ProviderName)]
public sealed class Pmem2EventSource : EventSource
{
    /// <summary>The provider name, "Pmem2".</summary>
    public const string ProviderName = "Pmem2";

    /// <summary>The single instance.</summary>
    public static readonly Pmem2EventSource Log = new();

    private Pmem2EventSource()
    {
    }

    /// <summary>A mapping was created (pmem2_map_new / pmem2_map_from_existing).</summary>
    [Event(1, Level = EventLevel.Informational, Message = "mapped {1} bytes at 0x{0:x}, granularity {2}, MAP_SYNC {3}")]
    public void MapCreated(long address, long size, string granularity, bool mapSync)
    {
        if (IsEnabled(EventLevel.Informational, EventKeywords.All))
        {
            WriteEvent(1, address, size, granularity, mapSync);
        }
    }

    /// <summary>A mapping was released (unmapped, mended into its reservation, or unregistered).</summary>
    [Event(2, Level = EventLevel.Informational, Message = "released the mapping at 0x{0:x} ({1} bytes)")]
    public void MapReleased(long address, long length)
    {
        if (IsEnabled(EventLevel.Informational, EventKeywords.All))
        {
            WriteEvent(2, address, length);
        }
    }

    /// <summary>PMEM2_FORCE_GRANULARITY overrode the detected granularity.</summary>
    [Event(3, Level = EventLevel.Verbose, Message = "PMEM2_FORCE_GRANULARITY={0}: granularity forced to {1}")]
    public void GranularityForced(string value, string granularity)
    {
        if (IsEnabled(EventLevel.Verbose, EventKeywords.All))
        {
            WriteEvent(3, value, granularity);
        }
    }

    /// <summary>A bad block context found bad blocks on a source ("namespace": fsdax, raw, sector or devdax).</summary>
    [Event(4, Level = EventLevel.Warning, Message = "{0} bad range(s) known on the {1} namespace under {2}")]
    public void BadBlocksFound(int count, string mode, string region)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.All))
        {
            WriteEvent(4, count, mode, region);
        }
    }

    /// <summary>A bad block was cleared.</summary>
    [Event(5, Level = EventLevel.Informational, Message = "cleared bad range [{0}, +{1})")]
    public void BadBlockCleared(long offset, long length)
    {
        if (IsEnabled(EventLevel.Informational, EventKeywords.All))
        {
            WriteEvent(5, offset, length);
        }
    }

    /// <summary>CPU cache flushing is unavailable; flushes are msync calls.</summary>
    [Event(6, Level = EventLevel.Warning, Message = "CPU flush instructions unavailable, using msync: {0}")]
    public void FlushFallback(string reason)
    {
        if (IsEnabled(EventLevel.Warning, EventKeywords.All))
        {
            WriteEvent(6, reason);
        }
    }
}
