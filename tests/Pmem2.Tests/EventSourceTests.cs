using System.Collections.Concurrent;
using System.Diagnostics.Tracing;

namespace Pmem2.Tests;

/// <summary>The "Pmem2" EventSource (docs/pmem2.md, feature row 46) reports map life-cycle, forced
/// granularity and bad-block events to a listener.</summary>
[Collection(EnvironmentCollection.Name)]
public sealed class EventSourceTests
{
    [Fact]
    public void MapLifecycleAndForcedGranularityAreReported()
    {
        using var listener = new Listener();
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        nint address;
        using (T.Env("PMEM2_FORCE_GRANULARITY", "cache_line"))
        {
            using var map = Pmem2Map.Create(T.Config(), src);
            address = map.Address;
        }

        var created = Assert.Single(listener.Events, e => e.EventId == 1 && (long)e.Payload![0]! == address);
        Assert.Equal((long)(1 << 20), created.Payload![1]);
        Assert.Equal("CacheLine", created.Payload[2]);
        Assert.Equal(EventLevel.Informational, created.Level);
        Assert.Contains(listener.Events, e => e.EventId == 2 && (long)e.Payload![0]! == address);
        Assert.Contains(listener.Events, e => e.EventId == 3 && (string)e.Payload![0]! == "cache_line" && (string)e.Payload[1]! == "CacheLine");
    }

    private sealed class Listener : EventListener
    {
        public ConcurrentQueue<EventWrittenEventArgs> Events { get; } = new();

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == Pmem2EventSource.ProviderName)
            {
                EnableEvents(eventSource, EventLevel.Verbose);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData) => Events.Enqueue(eventData);
    }
}
