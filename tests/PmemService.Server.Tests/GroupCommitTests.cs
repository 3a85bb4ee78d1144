using Grpc.Core;
using PmemService.Server.Internal;
using PmemService.Server.Internal.DataPath;

namespace PmemService.Server.Tests;

/// <summary>
/// GroupCommit through its persist seam (a fake msync that records its ranges and can be held or
/// made to fail), so the ordering and failure rules are checked deterministically.
/// </summary>
public sealed class GroupCommitTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    /// <summary>A fake msync: records each range, blocks while <see cref="Hold"/> is closed, throws when told.</summary>
    private sealed class FakeSync
    {
        public readonly List<(ulong Start, ulong End)> Calls = [];
        public readonly ManualResetEventSlim Hold = new(true);
        public readonly SemaphoreSlim Entered = new(0);
        public Exception? FailWith;

        public void Persist(ulong offset, ulong length)
        {
            lock (Calls)
            {
                Calls.Add((offset, offset + length));
            }

            Entered.Release();
            Assert.True(Hold.Wait(Wait));
            if (FailWith is { } e)
            {
                throw e;
            }
        }
    }

    [Fact]
    public async Task A_lone_caller_syncs_its_own_range_inline()
    {
        var sync = new FakeSync();
        var commit = new GroupCommit(sync.Persist);
        var task = commit.PersistAsync(4096, 100);
        Assert.True(task.IsCompletedSuccessfully);
        await task;
        Assert.Equal([(4096UL, 4196UL)], sync.Calls);
    }

    [Fact]
    public async Task Callers_queued_during_an_msync_are_answered_by_one_later_msync_covering_them_all()
    {
        var sync = new FakeSync();
        var commit = new GroupCommit(sync.Persist, parallelism: 1);
        sync.Hold.Reset();
        var leader = Task.Run(() => commit.PersistAsync(0, 10).AsTask());
        Assert.True(await sync.Entered.WaitAsync(Wait));

        // While the leader's msync runs, three more writers arrive.
        var queued = new[] { commit.PersistAsync(8192, 4096).AsTask(), commit.PersistAsync(100, 50).AsTask(), commit.PersistAsync(40_000, 1).AsTask() };
        await Task.Delay(50);
        Assert.All(queued, t => Assert.False(t.IsCompleted)); // never answered by the msync already running
        Assert.False(leader.IsCompleted);

        sync.Hold.Set();
        await leader.WaitAsync(Wait);
        await Task.WhenAll(queued).WaitAsync(Wait);
        Assert.Equal(2, sync.Calls.Count);
        Assert.Equal((0UL, 10UL), sync.Calls[0]);
        Assert.Equal((100UL, 40_001UL), sync.Calls[1]); // one msync of the range covering all three
        Assert.Equal(2, commit.Rounds);
    }

    [Fact]
    public async Task A_failed_msync_fails_every_waiter_it_covered_and_is_sticky()
    {
        var sync = new FakeSync();
        var commit = new GroupCommit(sync.Persist, parallelism: 1);
        sync.Hold.Reset();
        var leader = Task.Run(() => commit.PersistAsync(0, 10).AsTask());
        Assert.True(await sync.Entered.WaitAsync(Wait));
        var covered = new[] { commit.PersistAsync(4096, 10).AsTask(), commit.PersistAsync(8192, 10).AsTask() };

        sync.FailWith = new IOException("EIO from msync");
        sync.Hold.Set();
        foreach (var task in covered.Append(leader))
        {
            var error = await Assert.ThrowsAsync<PmemServiceException>(() => task.WaitAsync(Wait));
            Assert.Equal(StatusCode.DataLoss, error.Code);
            Assert.Equal("IO_ERROR", error.Reason);
        }

        // Sticky: a later persist fails without another msync, even though the fake would now succeed.
        sync.FailWith = null;
        var calls = sync.Calls.Count;
        var later = await Assert.ThrowsAsync<PmemServiceException>(() => commit.PersistAsync(0, 1).AsTask());
        Assert.Equal(StatusCode.DataLoss, later.Code);
        Assert.Equal(calls, sync.Calls.Count);
    }

    [Fact]
    public async Task Up_to_the_parallelism_callers_sync_concurrently_and_the_rest_are_group_committed_after_one_returns()
    {
        var sync = new FakeSync();
        var commit = new GroupCommit(sync.Persist, parallelism: 2);
        sync.Hold.Reset();
        var first = Task.Run(() => commit.PersistAsync(0, 10).AsTask());
        var second = Task.Run(() => commit.PersistAsync(1 << 20, 10).AsTask());
        Assert.True(await sync.Entered.WaitAsync(Wait));
        Assert.True(await sync.Entered.WaitAsync(Wait)); // both msyncs are running at once

        var queued = new[] { commit.PersistAsync(8192, 4096).AsTask(), commit.PersistAsync(100, 50).AsTask() };
        await Task.Delay(50);
        Assert.All(queued, t => Assert.False(t.IsCompleted)); // never answered by an msync already running
        Assert.Equal(2, sync.Calls.Count);

        sync.Hold.Set();
        await Task.WhenAll(first, second).WaitAsync(Wait);
        await Task.WhenAll(queued).WaitAsync(Wait);
        Assert.Equal(3, sync.Calls.Count); // one more msync answered both queued callers
        Assert.Equal((100UL, 12_288UL), sync.Calls[2]);

        // Idle again: a lone caller syncs inline.
        var lone = commit.PersistAsync(5, 5);
        Assert.True(lone.IsCompletedSuccessfully);
        Assert.Equal(4, commit.Rounds);
    }

    [Fact]
    public void Parallelism_below_one_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new GroupCommit((_, _) => { }, parallelism: 0));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    public async Task Many_concurrent_callers_are_each_answered_after_an_msync_covering_their_range(int parallelism)
    {
        // A fake msync that takes a little time, so rounds overlap and several queued rounds run at once
        // (the parallelism-2 case once crashed the process: two rounds shared one batch list).
        var synced = new List<(ulong Start, ulong End)>();
        var commit = new GroupCommit((offset, length) =>
        {
            Thread.SpinWait(2000);
            lock (synced)
            {
                synced.Add((offset, offset + length));
            }
        }, parallelism);

        var callers = Enumerable.Range(0, 16).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 200; i++) // bounded
            {
                var offset = (ulong)((worker * 200) + i) * 4096;
                await commit.PersistAsync(offset, 4096);
                lock (synced)
                {
                    Assert.Contains(synced, r => r.Start <= offset && offset + 4096 <= r.End);
                }
            }
        })).ToArray();

        await Task.WhenAll(callers).WaitAsync(Wait);
        Assert.InRange(commit.Rounds, 1, 16 * 200);
    }
}
