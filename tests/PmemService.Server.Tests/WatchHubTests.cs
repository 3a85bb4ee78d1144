using PmemService.Contracts.V1;
using PmemService.Server;
using PmemService.Server.Internal;
using PmemService.Server.Internal.Sharing;

namespace PmemService.Server.Tests;

/// <summary>RegionWatchHub (issue 14) on its own: ordering under concurrent publishers, bounded history, slow readers.</summary>
public sealed class WatchHubTests
{
    [Fact]
    public async Task Concurrent_publishers_give_every_watcher_one_gapless_order()
    {
        var hub = new RegionWatchHub(historyLength: 64, bufferLength: 100_000);
        using var a = hub.Subscribe("r", 0, string.Empty, fromHistory: false);
        using var b = hub.Subscribe("r", 0, string.Empty, fromHistory: false);
        const int Publishers = 4, Each = 2000;
        await Task.WhenAll(Enumerable.Range(0, Publishers).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < Each; i++)
            {
                hub.Publish("r", WatchEventKind.Write, (ulong)((p * Each) + i), 1, FlushType.Persistent);
            }
        })));

        var seenA = Drain(a);
        var seenB = Drain(b);
        Assert.Equal(Enumerable.Range(1, Publishers * Each).Select(i => (ulong)i), seenA.Select(e => e.Sequence));
        Assert.Equal(seenA, seenB);
        Assert.Equal((ulong)(Publishers * Each), hub.LatestSequence("r"));
        Assert.Equal(0UL, hub.LatestSequence("other"));
    }

    [Fact]
    public void A_watcher_that_does_not_read_is_ended_with_WATCH_HISTORY_OVERFLOW_and_can_resume_from_the_history()
    {
        var hub = new RegionWatchHub(historyLength: 8, bufferLength: 4);
        using var slow = hub.Subscribe("r", 0, hub.Epoch, fromHistory: false);
        for (var i = 0; i < 13; i++)
        {
            hub.Publish("r", WatchEventKind.Persist, (ulong)i, 1, FlushType.Persistent);
        }

        // 12 queued (history + buffer), the 13th overflows: the queued ones are still readable, then the error.
        var got = new List<WatchEvent>();
        while (slow.Reader.TryRead(out var e))
        {
            got.Add(e);
        }

        Assert.Equal(12, got.Count);
        Assert.True(slow.Reader.Completion.IsFaulted);
        var error = Assert.IsType<PmemServiceException>(slow.Reader.Completion.Exception!.InnerException);
        Assert.Equal(PmemErrorReasons.WatchHistoryOverflow, error.Reason);

        // Resume after the last event read: 13 is still in the 8-event history.
        using var resumed = hub.Subscribe("r", 12, hub.Epoch, fromHistory: false);
        Assert.True(resumed.Reader.TryRead(out var next));
        Assert.Equal(13UL, next.Sequence);
        Assert.Equal(PmemErrorReasons.WatchHistoryOverflow, Assert.Throws<PmemServiceException>(() => hub.Subscribe("r", 2, hub.Epoch, false)).Reason);
        Assert.Equal(PmemErrorReasons.WatchSequenceAhead, Assert.Throws<PmemServiceException>(() => hub.Subscribe("r", 14, hub.Epoch, false)).Reason);
        Assert.Equal(PmemErrorReasons.WatchHistoryOverflow, Assert.Throws<PmemServiceException>(() => hub.Subscribe("r", 12, "another-epoch", false)).Reason);
    }

    private static List<WatchEvent> Drain(RegionWatchHub.WatchSubscription subscription)
    {
        var list = new List<WatchEvent>();
        while (subscription.Reader.TryRead(out var e))
        {
            list.Add(e);
        }

        return list;
    }
}
