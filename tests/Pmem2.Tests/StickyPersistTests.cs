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
}
