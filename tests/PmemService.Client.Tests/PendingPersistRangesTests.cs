using PmemService.Client.Internal;

namespace PmemService.Client.Tests;

/// <summary>
/// The direct client's NoDrain bookkeeping (<see cref="PendingPersistRanges"/>): copies flushed but not
/// fenced wait for the next drain before they are reported to watchers; contiguous pieces merge into one
/// report, separate ones stay separate (a gap may hold NoFlush bytes that are not persistent), and the
/// list is bounded.
/// </summary>
public sealed class PendingPersistRangesTests
{
    [Fact]
    public void Contiguous_pieces_merge_and_gaps_stay_separate()
    {
        var pending = new PendingPersistRanges();
        for (var i = 0; i < 1024; i++)
        {
            Assert.False(pending.Add(i * 1024L, 1024)); // a bulk copy in 1 KiB pieces
        }

        Assert.False(pending.Add(2 << 20, 100)); // after a gap
        Assert.False(pending.Add(0, 0));         // empty: nothing
        Assert.Equal([(0L, 1L << 20), (2L << 20, 100L)], pending.TakeAll());
        Assert.Empty(pending.TakeAll());
    }

    [Fact]
    public void The_list_is_bounded_and_says_when_to_drain()
    {
        var pending = new PendingPersistRanges();
        for (var i = 0; i < PendingPersistRanges.Capacity - 1; i++)
        {
            Assert.False(pending.Add(i * 10L, 5));
        }

        Assert.True(pending.Add(10_000, 5));
        Assert.Equal(PendingPersistRanges.Capacity, pending.TakeAll().Length);
    }
}
