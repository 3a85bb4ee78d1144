using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2.Tests;

/// <summary>
/// Issue 9 item 7: a PAGE persist (msync of unbounded length) must not run under the process-wide
/// map registry lock. Made deterministic with the <see cref="Persistence.BeforePageMsync"/> seam: the
/// long persist is held inside its msync step while another map registers (a writer) and a third
/// persists; with the msync under the read lock, the writer queues and the small persist queues
/// behind it until the long one ends.
/// </summary>
public class RegistryLockTests
{
    [Fact]
    public async Task A_long_page_persist_does_not_block_mapping_or_persisting_other_maps()
    {
        using var bigFile = new TempFile(8 << 20);
        using var smallFile = new TempFile(64 << 10);
        using var thirdFile = new TempFile(64 << 10);
        using var bigSource = bigFile.OpenSource();
        using var smallSource = smallFile.OpenSource();
        using var big = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), bigSource);
        using var small = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), smallSource);
        var bigStart = (nuint)big.Address;
        var bigEnd = bigStart + (nuint)big.Size;
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        Persistence.BeforePageMsync = (from, _) =>
        {
            if (from >= bigStart && from < bigEnd)
            {
                entered.Set();
                release.Wait(TimeSpan.FromSeconds(60));
            }
        };

        Task longPersist = Task.CompletedTask;
        Task<Pmem2Map>? mapper = null;
        try
        {
            longPersist = Task.Run(() => big.Persist(0, big.Size));
            Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the long persist never reached its msync");

            mapper = Task.Run(() =>
            {
                using var src = thirdFile.OpenSource();
                return Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
            });
            // Either the new map registered already, or it is queued as a writer on the registry lock.
            Assert.True(SpinWait.SpinUntil(() => mapper.IsCompleted || MapRegistry.WaitingWriters > 0, TimeSpan.FromSeconds(30)));

            var smallPersist = Task.Run(() => small.Persist(0, small.Size));
            Assert.True(await Finishes(smallPersist), "a small persist of another map waited for the long persist");
            Assert.True(await Finishes(mapper), "mapping another file waited for the long persist");
            Assert.False(longPersist.IsCompleted);
        }
        finally
        {
            release.Set();
            Persistence.BeforePageMsync = null;
        }

        await longPersist.WaitAsync(TimeSpan.FromSeconds(30));
        if (mapper is not null)
        {
            (await mapper.WaitAsync(TimeSpan.FromSeconds(30))).Dispose();
        }
    }

    private static async Task<bool> Finishes(Task task) =>
        await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(20))) == task;

    [Fact]
    public void Persist_of_a_range_covering_an_unmapped_map_skips_it()
    {
        // The walk takes a reference on each covered map; a map disposed concurrently is skipped, not msynced.
        using var file = new TempFile(64 << 10);
        using var source = file.OpenSource();
        var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), source);
        var address = map.Address;
        var size = (nuint)map.Size;
        map.Dispose();
        using var counts = Pmem2Diagnostics.BeginCounting();
        Persistence.PersistPages(address, size);
        Assert.Equal(0, counts.Msync);
    }
}

/// <summary>Issue 9 items 4 and 8 at the Pmem2 level: descriptor-relative directory operations and the MAP_SYNC probe.</summary>
public class DirectoryTests
{
    [Fact]
    public void OpenFile_refuses_a_symlink_with_eloop_and_never_reaches_its_target()
    {
        using var dir = new TempDir();
        var outside = Path.Combine(dir.Path, "outside");
        File.WriteAllBytes(outside, [1, 2, 3]);
        var pool = Directory.CreateDirectory(Path.Combine(dir.Path, "pool")).FullName;
        File.CreateSymbolicLink(Path.Combine(pool, "x"), outside);
        using var directory = Pmem2Directory.Open(pool);
        var e = Assert.Throws<Pmem2Exception>(() => directory.OpenFile("x"));
        Assert.Equal(LibC.ELOOP, e.Errno);
        Assert.True(directory.TryGetStatus("x")!.Value.IsSymbolicLink);
        Assert.Throws<Pmem2Exception>(() => directory.CreateFile("x", UnixFileMode.UserRead | UnixFileMode.UserWrite));
        directory.Delete("x"); // removes the link, not the target
        Assert.True(File.Exists(outside));
        Assert.Null(directory.TryGetStatus("x"));
        Assert.Throws<ArgumentException>(() => directory.OpenFile("../outside"));
    }

    [Fact]
    public void Create_rename_noreplace_stat_and_identity()
    {
        using var dir = new TempDir();
        using var directory = Pmem2Directory.Open(dir.Path);
        using (var handle = directory.CreateFile("a", UnixFileMode.UserRead | UnixFileMode.UserWrite))
        {
            Pmem2Files.Allocate(handle, 8192);
            var status = Pmem2Files.GetStatus(handle);
            Assert.Equal(8192, status.Size);
            Assert.True(status.IsRegularFile);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, status.Permissions);
            directory.RenameNoReplace("a", "b");
            Assert.True(directory.TryGetStatus("b")!.Value.IsSameFile(status));
            using (directory.CreateFile("c", UnixFileMode.UserRead))
            {
            }

            var e = Assert.Throws<Pmem2Exception>(() => directory.RenameNoReplace("c", "b"));
            Assert.Equal(LibC.EEXIST, e.Errno);
            directory.Delete("b");
            Assert.Equal(0UL, Pmem2Files.GetStatus(handle).Links); // unlinked, still open
            directory.Sync();
        }

        Assert.Equal(["c"], directory.EnumerateNames());
    }

    [Fact]
    public void HasMapSync_is_the_kernel_answer_whatever_PMEM2_FORCE_GRANULARITY_says()
    {
        using var file = new TempFile(4096);
        using var handle = file.OpenHandle();
        var real = Pmem2Files.HasMapSync(handle, 4096);
        // The forced-granularity seam makes pmem2 maps claim MAP_SYNC; the probe does not consult it.
        GranularityPolicy.MapSyncOverride = true;
        try
        {
            Assert.Equal(real, Pmem2Files.HasMapSync(handle, 4096));
        }
        finally
        {
            GranularityPolicy.MapSyncOverride = null;
        }

        if (!Directory.Exists("/sys/bus/nd/devices") || !Directory.EnumerateFileSystemEntries("/sys/bus/nd/devices").Any())
        {
            Assert.False(real); // no pmem on this machine: no DAX, no MAP_SYNC
        }
    }

    [Theory]
    [InlineData(LibC.EINVAL, true)]
    [InlineData(LibC.EOPNOTSUPP, true)]
    [InlineData(LibC.ENOMEM, false)]
    [InlineData(LibC.EACCES, false)]
    public void A_MAP_SYNC_probe_failure_other_than_einval_or_eopnotsupp_fails_the_map(int errno, bool fallBackToShared)
    {
        // ENOMEM used to fall through to MAP_FIXED|MAP_SYNC over the placeholder: a refusal then left a hole.
        Assert.Equal(fallBackToShared, Mapper.ProbeRefusalMeansNoMapSync(errno));
    }
}
