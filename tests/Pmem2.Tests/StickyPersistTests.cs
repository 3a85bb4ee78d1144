using Pmem2.Internal;
using PmemTests.Shared;

namespace Pmem2.Tests;

/// <summary>
/// Sticky persist errors: after one failed msync a map refuses every later persist with the original
/// errno and never calls msync again. The first test uses a real kernel EIO (tests/faultfs, FUSE);
/// the others use the per-map msync seam for what FUSE cannot stage deterministically (granularities,
/// a concurrent msync that the kernel told "success").
/// </summary>
public class StickyPersistTests
{
    private const int EIO = 5;
    private const int ENOSPC = 28;

    [FuseFact]
    public void RealMsyncEioOnFuseIsStickyAndTheKernelWouldHaveForgotten()
    {
        using var fs = FaultFs.Mount();
        var path = Path.Combine(fs.MountPoint, "region");
        using (var f = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            f.SetLength(1 << 20);
        }

        var first = Enumerable.Repeat((byte)0xA1, 4096).ToArray();
        var second = Enumerable.Repeat((byte)0xB2, 4096).ToArray();
        Pmem2Exception failed;
        using (var src = Pmem2Source.Open(path, FileAccess.ReadWrite))
        using (var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src))
        {
            Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);
            map.Memcpy(0, first); // persisted: reaches the backing file
            Assert.False(map.IsPersistFailed);

            fs.Fail("write", "EIO");
            failed = Assert.Throws<Pmem2Exception>(() => map.Memcpy(4096, second));
            Assert.Equal(EIO, failed.Errno);
            Assert.True(failed.IsPersistFailure);
            Assert.True(fs.FailedCount("write") > 0, "the write-back WRITE reached faultfs and was failed there");
            Assert.Same(failed, map.PersistFailure);

            // The storage is healthy again, and the kernel has marked the pages clean: a retried msync
            // would return 0. The map must not: same errno, and no msync at all.
            fs.Clear();
            using (var counts = Pmem2Diagnostics.BeginCounting())
            {
                var again = Assert.Throws<Pmem2Exception>(() => map.Persist(4096, 4096));
                Assert.Equal(EIO, again.Errno);
                Assert.True(again.IsPersistFailure);
                Assert.Same(failed, again.InnerException);
                Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.CompleteDeferred(0, 8192)).Errno);
                Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.Flush(0, 4096)).Errno);
                Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.Memcpy(0, first)).Errno);
                Assert.Equal(0, counts.Msync);
            }

            // Proof that a retry would have lied: the kernel reported the error once and marked the
            // pages clean, so a plain msync of the same range (Persistence, below the sticky map) now
            // returns 0 ...
            Persistence.PersistPages(map.Address + 4096, 4096);
        }

        // ... that never reached storage.
        var stored = File.ReadAllBytes(Path.Combine(fs.Backing, "region"));
        Assert.Equal(first, stored.AsSpan(0, 4096).ToArray());
        Assert.NotEqual(second, stored.AsSpan(4096, 4096).ToArray());
    }

    [Fact]
    public void FailedMsyncIsStickyForEveryPersistingCallAndNeverMsyncsAgain()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        var fail = 1;
        map.MsyncFaultForTesting = () => Interlocked.Exchange(ref fail, 0) == 1 ? EIO : 0;

        var first = Assert.Throws<Pmem2Exception>(() => map.Persist(0, 4096));
        Assert.Equal(EIO, first.Errno);
        Assert.True(first.IsPersistFailure);
        Assert.True(map.IsPersistFailed);

        var before = new byte[4096];
        map.Read(8192, before);
        using (var counts = Pmem2Diagnostics.BeginCounting())
        {
            foreach (var call in new Action[]
            {
                () => map.Persist(0, 1),
                () => map.Flush(0, 1),
                () => map.Drain(),
                () => map.DeepFlush(0, 4096),
                () => map.CompleteDeferred(0, 4096),
                () => map.Memcpy(8192, new byte[4096].AsSpan()),
                () => map.Memset(8192, 0x55, 4096),
                () => map.Memmove(8192, 0, 4096),
            })
            {
                var e = Assert.Throws<Pmem2Exception>(call);
                Assert.Equal(EIO, e.Errno);
                Assert.True(e.IsPersistFailure);
                Assert.Same(first, e.InnerException);
            }

            Assert.Equal(0, counts.Msync);
        }

        // A refused persisting copy stores nothing; a NOFLUSH copy and reads still work (they claim nothing).
        var after = new byte[4096];
        map.Read(8192, after);
        Assert.Equal(before, after);
        map.Memset(8192, 0x66, 16, Pmem2MemFlags.NoFlush);
        map.CopyNonTemporalDeferred(12288, new byte[64]);
        Assert.Equal(0x66, map.GetSpan(8192, 1)[0]);
    }

    /// <summary>
    /// Setting an attribute through the map (<see cref="Pmem2FileAttributes.Set(Microsoft.Win32.SafeHandles.SafeFileHandle, string, ReadOnlySpan{byte}, Pmem2Map)"/>)
    /// makes its fsync a persist of that map: a failed fsync fails the map (sticky, like a failed msync), and a
    /// failed map refuses the next attribute before changing it. The real kernel EIO (an fsync of the mapped
    /// descriptor told about a failed write-back) is FaultTests' SharingFuseFaultTests.AnUploadRecordsFsyncThatSeesAFailedWriteBackFailsTheMapping.
    /// </summary>
    [Fact]
    public void AnAttributeFsyncThroughTheMapIsAPersistOfTheMap()
    {
        using var file = new TempFile(64 << 10);
        using var handle = file.OpenHandle();
        using var src = Pmem2Source.FromHandle(handle);
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        Pmem2FileAttributes.Set(handle, "user.pmem.test", "a"u8, map);
        Assert.False(map.IsPersistFailed);

        var fail = 1;
        map.MsyncFaultForTesting = () => Interlocked.Exchange(ref fail, 0) == 1 ? EIO : 0;
        var failed = Assert.Throws<Pmem2Exception>(() => Pmem2FileAttributes.Set(handle, "user.pmem.test", "b"u8, map));
        Assert.Equal(EIO, failed.Errno);
        Assert.True(failed.IsPersistFailure);
        Assert.Same(failed, map.PersistFailure);

        // Sticky: the next persist and the next attribute through the map are refused (the attribute unchanged).
        Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.Persist(0, 4096)).Errno);
        var refused = Assert.Throws<Pmem2Exception>(() => Pmem2FileAttributes.Set(handle, "user.pmem.test", "c"u8, map));
        Assert.True(refused.IsPersistFailure);
        Assert.Same(failed, refused.InnerException);
        Assert.Equal("b"u8.ToArray(), Pmem2FileAttributes.Get(handle, "user.pmem.test"));
    }

    [Fact]
    public void TheErrorIsPerMappingAndKeepsItsErrno()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var failing = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        using var healthy = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        failing.MsyncFaultForTesting = () => ENOSPC;

        Assert.Equal(ENOSPC, Assert.Throws<Pmem2Exception>(() => failing.Memcpy(0, new byte[10].AsSpan())).Errno);
        failing.MsyncFaultForTesting = null;
        Assert.Equal(ENOSPC, Assert.Throws<Pmem2Exception>(() => failing.Persist(0, 10)).Errno);

        healthy.Memcpy(0, new byte[10].AsSpan());
        healthy.Persist(0, 4096);
        Assert.False(healthy.IsPersistFailed);
        Assert.Null(healthy.PersistFailure);
    }

    [Fact]
    public void CacheLineMapFailsStickyAfterAFailedDeepFlush()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        Pmem2Map map;
        using (T.Platform(mapSync: true, eadr: false))
        {
            map = Pmem2Map.Create(T.Config(Pmem2Granularity.CacheLine), src);
        }

        using (map)
        {
            Assert.Equal(Pmem2Granularity.CacheLine, map.StoreGranularity);
            map.Persist(0, 64);
            map.MsyncFaultForTesting = () => EIO;
            Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.DeepFlush(0, 4096)).Errno);
            map.MsyncFaultForTesting = null;
            using var counts = Pmem2Diagnostics.BeginCounting();
            Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.Persist(0, 64)).Errno);
            Assert.Equal(EIO, Assert.Throws<Pmem2Exception>(() => map.Memcpy(0, new byte[64].AsSpan())).Errno);
            Assert.Equal((0, 0, 0), counts.Triple);
        }
    }

    /// <summary>
    /// The kernel reports a write-back error to one msync only. Thread A's msync is held inside the
    /// seam and then fails; thread B's msync, which ran meanwhile, got 0 from the kernel. B must not
    /// report success: its pages may be the ones that failed.
    /// </summary>
    [Fact]
    public void AConcurrentSuccessIsNotTrustedWhenAnOverlappingMsyncFails()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        using var aInside = new ManualResetEventSlim();
        using var bInside = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var aThread = -1;
        map.MsyncFaultForTesting = () =>
        {
            if (Environment.CurrentManagedThreadId != Volatile.Read(ref aThread))
            {
                bInside.Set(); // B's real msync follows and returns 0
                return 0;
            }

            aInside.Set();
            Assert.True(release.Wait(TimeSpan.FromSeconds(30)));
            return EIO;
        };

        Exception? aError = null;
        var a = new Thread(() =>
        {
            Volatile.Write(ref aThread, Environment.CurrentManagedThreadId);
            aError = Record.Exception(() => map.Persist(0, 4096));
        });
        a.Start();
        Assert.True(aInside.Wait(TimeSpan.FromSeconds(30)));

        Exception? bError = null;
        var b = new Thread(() => bError = Record.Exception(() => map.Persist(8192, 4096)));
        b.Start();
        // B's msync returns 0 but B must wait for A; it cannot finish before A is released. (Under
        // load B may not get that far in 200 ms; then this only fails to detect, never fails wrongly.)
        Assert.True(bInside.Wait(TimeSpan.FromSeconds(30)));
        Assert.False(b.Join(TimeSpan.FromMilliseconds(200)), "B answered while an overlapping msync was still running");
        release.Set();
        Assert.True(a.Join(TimeSpan.FromSeconds(30)));
        Assert.True(b.Join(TimeSpan.FromSeconds(30)));

        Assert.Equal(EIO, Assert.IsType<Pmem2Exception>(aError).Errno);
        var be = Assert.IsType<Pmem2Exception>(bError);
        Assert.Equal(EIO, be.Errno);
        Assert.True(be.IsPersistFailure);
    }

    [Fact]
    public void AnMsyncThatStartsAfterAnotherEndedDoesNotWaitForIt()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        for (var i = 0; i < 100; i++)
        {
            map.Memcpy((ulong)(i % 16) * 4096, new byte[] { (byte)i });
        }

        Parallel.For(0, 4, i =>
        {
            for (var j = 0; j < 200; j++)
            {
                map.Persist((ulong)i * 4096, 4096);
            }
        });
        Assert.False(map.IsPersistFailed);
    }

    [ThreadStatic]
    private static long t_seamEnter;
    [ThreadStatic]
    private static long t_seamExit;

    /// <summary>
    /// The lock-free gate under a real race: four threads persist one map; the n-th msync (random) fails
    /// and is held until another thread's msync has started. Every call is stamped from one sequence
    /// (call start, seam entry, seam exit). Invariants: (1) no success whose msync could have overlapped
    /// the failing one (its seam exit comes before the failing seam's entry); (2) every call that
    /// started after the failing msync started fails; (3) the overlapping msync that got 0 from the
    /// kernel fails with the sticky error; (4) the running count returns to zero.
    /// </summary>
    [Fact]
    public void ConcurrentPersistsWhereOneFailsNeverReportAnOverlappingOrLaterSuccess()
    {
        const int threads = 4;
        const int perThread = 120;
        const int rounds = 8;
        var seed = Environment.TickCount;
        var rng = new Random(seed);
        var overlapsSeen = 0;
        for (var round = 0; round < rounds; round++)
        {
            using var file = new TempFile(64 << 10);
            using var src = file.OpenSource();
            using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
            long seq = 0;
            long msyncs = 0;
            var failAt = rng.Next(5, threads * perThread / 2);
            long failEnter = long.MaxValue;
            long failExit = long.MaxValue;
            long othersEntered = 0;
            map.MsyncFaultForTesting = () =>
            {
                t_seamEnter = Interlocked.Increment(ref seq);
                if (Interlocked.Increment(ref msyncs) == failAt)
                {
                    Volatile.Write(ref failEnter, t_seamEnter);
                    var before = Volatile.Read(ref othersEntered);
                    // Hold the failing msync until another msync of the map has started (bounded).
                    var deadline = Environment.TickCount64 + 5000;
                    while (Volatile.Read(ref othersEntered) == before && Environment.TickCount64 < deadline)
                    {
                        Thread.Sleep(1);
                    }

                    t_seamExit = Interlocked.Increment(ref seq);
                    Volatile.Write(ref failExit, t_seamExit);
                    return EIO;
                }

                Interlocked.Increment(ref othersEntered);
                Thread.SpinWait(50 * (int)(t_seamEnter % 8));
                t_seamExit = Interlocked.Increment(ref seq);
                return 0;
            };

            var results = new List<(long Start, long Enter, long Exit, Pmem2Exception? Error)>[threads];
            var workers = new Thread[threads];
            for (var t = 0; t < threads; t++)
            {
                var mine = results[t] = new List<(long, long, long, Pmem2Exception?)>(perThread);
                var offset = (ulong)t * 8192;
                workers[t] = new Thread(() =>
                {
                    for (var j = 0; j < perThread; j++)
                    {
                        t_seamEnter = t_seamExit = 0;
                        var start = Interlocked.Increment(ref seq);
                        Pmem2Exception? error = null;
                        try
                        {
                            map.Persist(offset, 4096);
                        }
                        catch (Pmem2Exception e)
                        {
                            error = e;
                        }

                        mine.Add((start, t_seamEnter, t_seamExit, error));
                    }
                });
                workers[t].Start();
            }

            foreach (var w in workers)
            {
                Assert.True(w.Join(TimeSpan.FromSeconds(60)), $"a persisting thread hung (seed {seed})");
            }

            Assert.True(map.IsPersistFailed, $"seed {seed}");
            Assert.Equal(0, map.MsyncsRunning);
            var failed = Volatile.Read(ref failEnter);
            var failedExit = Volatile.Read(ref failExit);
            var all = results.SelectMany(r => r).ToList();
            Assert.Equal(threads * perThread, all.Count);
            foreach (var (start, enter, exit, error) in all)
            {
                if (error is null)
                {
                    Assert.True(exit != 0 && exit < failed,
                        $"a success overlapped or followed the failing msync (call {start}, msync {enter}-{exit}, failing msync from {failed}; seed {seed})");
                }
                else
                {
                    Assert.Equal(EIO, error.Errno);
                    Assert.True(error.IsPersistFailure);
                }

                if (start > failed)
                {
                    Assert.NotNull(error);
                }

                if (enter != 0 && enter != failed && enter < failedExit && exit > failed)
                {
                    // Its own msync ran (the kernel said 0) while the failing one was held: must have failed.
                    Assert.NotNull(error);
                    overlapsSeen++;
                }
            }

            Assert.Single(all, r => r.Enter == failed && r.Error is not null);
        }

        Assert.True(overlapsSeen > 0, $"no msync ever overlapped the failing one (seed {seed})");
    }

    /// <summary>An exception from the msync step that is not an msync error must not leak the running count
    /// (later persists would otherwise wait for an msync that never ends) nor poison the map.</summary>
    [Fact]
    public async Task AnExceptionThatIsNotAnMsyncErrorLeavesTheGateClean()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        map.MsyncFaultForTesting = () => throw new InvalidOperationException("seam");
        Assert.Throws<InvalidOperationException>(() => map.Persist(0, 4096));
        Assert.Equal(0, map.MsyncsRunning);
        Assert.False(map.IsPersistFailed);
        map.MsyncFaultForTesting = null;
        // WaitAsync throws TimeoutException when a later persist waits for the msync that threw.
        await Task.Run(() => map.Persist(0, 4096)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(map.IsPersistFailed);
    }

    /// <summary>Issue 15: the PAGE persist of one map goes straight to msync (one call, no registry list,
    /// no allocation); a raw range reaching past the map still takes the registry walk.</summary>
    [Fact]
    public void APagePersistOfOneMapMsyncsOnceAndAllocatesNothing()
    {
        using var file = new TempFile(64 << 10);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        for (var i = 0; i < 100; i++)
        {
            map.Persist(64, 64);
            map.PersistRaw(map.Address, 4096);
        }

        using (var counts = Pmem2Diagnostics.BeginCounting())
        {
            map.Persist(64, 64);
            Assert.Equal(1, counts.Msync);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            map.Persist(64, 64);
            map.PersistRaw(map.Address + 4096, 8192);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

        // Past the end of the map: only what registered maps cover is msynced (libpmem2's walk), no ENOMEM.
        using (var counts = Pmem2Diagnostics.BeginCounting())
        {
            map.PersistRaw(map.Address + (nint)map.Size - 64, 1 << 20);
            Assert.True(counts.Msync >= 1);
        }

        Assert.False(map.IsPersistFailed);
    }
}
