using System.Globalization;
using PmemTests.Shared;

namespace Pmem2.Tests;

/// <summary><see cref="Pmem2Files"/> against real files on tmpfs (/dev/shm) and on the temp directory's filesystem.</summary>
public sealed class FilesTests
{
    private const ulong Length = 3UL << 20; // 3 MiB: a whole number of blocks on both filesystems.

    public static TheoryData<string> Roots => new() { "/dev/shm", Path.GetTempPath() };

    [Theory]
    [MemberData(nameof(Roots))]
    public void Allocate_extends_a_fresh_file_and_allocates_every_block(string root)
    {
        var path = Path.Combine(root, $"pmem2-files-{Guid.NewGuid():N}");
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                Pmem2Files.Allocate(handle, Length);
                Assert.Equal((long)Length, RandomAccess.GetLength(handle));
            }

            Assert.True(AllocatedBytes(path) >= (long)Length, $"{path}: {AllocatedBytes(path)} bytes allocated, expected >= {Length}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [MemberData(nameof(Roots))]
    public void A_file_extended_with_SetLength_is_sparse_so_the_allocation_check_can_fail(string root)
    {
        var path = Path.Combine(root, $"pmem2-files-{Guid.NewGuid():N}");
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                RandomAccess.SetLength(handle, (long)Length);
            }

            Assert.True(AllocatedBytes(path) < (long)Length);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Allocate_does_not_shrink_and_allocates_holes_of_a_sparse_file()
    {
        using var file = new TempFile((long)Length * 2);
        using (var handle = file.OpenHandle())
        {
            Pmem2Files.Allocate(handle, Length);
            Assert.Equal((long)Length * 2, RandomAccess.GetLength(handle));
        }

        var allocated = AllocatedBytes(file.Path);
        Assert.True(allocated >= (long)Length && allocated < (long)Length * 2, $"{allocated} bytes allocated");
    }

    [Fact]
    public void Allocate_of_zero_bytes_is_a_no_op()
    {
        using var file = new TempFile(0);
        using var handle = file.OpenHandle();
        Pmem2Files.Allocate(handle, 0);
        Assert.Equal(0, RandomAccess.GetLength(handle));
    }

    [Fact]
    public void Allocate_beyond_the_free_space_of_tmpfs_throws_ENOSPC_and_leaves_the_file_empty()
    {
        // 1 PiB on tmpfs: fallocate refuses at once with ENOSPC instead of leaving a sparse file.
        var path = Path.Combine("/dev/shm", $"pmem2-files-{Guid.NewGuid():N}");
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.Allocate(handle, 1UL << 50));
            Assert.Equal((Pmem2ErrorCode)(-28), e.Code);
            Assert.Equal(28, e.Errno);
            Assert.Equal("fallocate: No space left on device", e.Message);
            Assert.Equal(0, RandomAccess.GetLength(handle));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WriteZeros_turns_the_unwritten_extents_of_Allocate_into_written_zeros()
    {
        // The temp directory's disk filesystem (ext4 here): filefrag -v flags unwritten extents. Allocate alone
        // is the control (the check must see them); after WriteZeros there are none and every byte is 0.
        using var file = new TempFile(0);
        using (var handle = file.OpenHandle())
        {
            Pmem2Files.Allocate(handle, Length);
            Assert.Contains("unwritten", FileProbes.Filefrag(file.Path), StringComparison.Ordinal);
            RandomAccess.Write(handle, new byte[] { 1, 2, 3 }, 4096); // written bytes are overwritten too
            Pmem2Files.WriteZeros(handle, Length);
            RandomAccess.FlushToDisk(handle); // WriteZeros, like Allocate, leaves the fsync to the caller: write-back converts the extents
        }

        Assert.DoesNotContain("unwritten", FileProbes.Filefrag(file.Path), StringComparison.Ordinal);
        Assert.Equal((long)Length, new FileInfo(file.Path).Length);
        Assert.True(File.ReadAllBytes(file.Path).All(b => b == 0));
    }

    [Fact]
    public void After_WriteZeros_a_persisted_4_KiB_write_writes_back_only_its_page()
    {
        // WriteZeros writes 4 KiB at a time so the page cache holds single-page folios: a 4 KiB persist through
        // a PAGE mapping then sends ~4 KiB to the block layer (write_bytes of /proc/thread-self/io counts the
        // pages this thread dirties). Zeros written in 1 MiB pwrites leave large folios: hundreds of KiB each.
        using var file = new TempFile(0);
        using var handle = file.OpenHandle();
        const ulong Size = 16UL << 20;
        Pmem2Files.Allocate(handle, Size);
        Pmem2Files.WriteZeros(handle, Size);
        RandomAccess.FlushToDisk(handle); // as the service does before it maps a new region
        using var source = Pmem2Source.FromHandle(handle);
        using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, PageCacheAdvice = Pmem2PageCacheAdvice.Random }, source);
        PersistedPages.AssertWriteBackPerPersistAtMost(map, 16 * 1024, seed: 3);
    }

    [Fact]
    public void WriteZeros_stops_when_cancelled_and_fails_on_a_read_only_descriptor()
    {
        using var file = new TempFile(8192);
        using (var handle = file.OpenHandle())
        {
            RandomAccess.Write(handle, new byte[] { 7 }, 0);
            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.Throws<OperationCanceledException>(() => Pmem2Files.WriteZeros(handle, 8192, cancelled.Token));
        }

        Assert.Equal(7, File.ReadAllBytes(file.Path)[0]); // nothing written

        using var readOnly = file.OpenHandle(FileAccess.Read);
        var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.WriteZeros(readOnly, 8192));
        Assert.Equal((Pmem2ErrorCode)(-9), e.Code);
        Assert.Equal("pwrite: Bad file descriptor", e.Message);
        Pmem2Files.WriteZeros(readOnly, 0); // nothing to write: no write is attempted
    }

    [Fact]
    public void Allocate_on_a_read_only_descriptor_throws_EBADF()
    {
        using var file = new TempFile(0);
        using var handle = file.OpenHandle(FileAccess.Read);
        var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.Allocate(handle, 4096));
        Assert.Equal((Pmem2ErrorCode)(-9), e.Code);
        Assert.Equal("fallocate: Bad file descriptor", e.Message);
    }

    [Fact]
    public void Allocate_where_fallocate_is_unsupported_throws_instead_of_falling_back()
    {
        // A character device has no blocks to allocate: the kernel answers ENODEV; Allocate reports it
        // rather than pretending, as .NET's preallocationSize does for EOPNOTSUPP.
        using var handle = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite);
        var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.Allocate(handle, 4096));
        Assert.Equal((Pmem2ErrorCode)(-19), e.Code);
        Assert.StartsWith("fallocate: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Allocate_rejects_lengths_beyond_off_t()
    {
        using var file = new TempFile(0);
        using var handle = file.OpenHandle();
        Assert.Throws<ArgumentOutOfRangeException>(() => Pmem2Files.Allocate(handle, (ulong)long.MaxValue + 1));
        Assert.Throws<ArgumentNullException>(() => Pmem2Files.Allocate(null!, 1));
    }

    [Fact]
    public void SyncDirectory_succeeds_on_an_existing_directory_after_a_rename()
    {
        using var dir = new TempDir();
        var temp = Path.Combine(dir.Path, "a.tmp");
        File.WriteAllBytes(temp, [1, 2, 3]);
        File.Move(temp, Path.Combine(dir.Path, "a"));
        Pmem2Files.SyncDirectory(dir.Path);
        Pmem2Files.SyncDirectory("/dev/shm");
    }

    [Fact]
    public void SyncDirectory_of_a_missing_directory_throws_ENOENT()
    {
        using var dir = new TempDir();
        var missing = Path.Combine(dir.Path, "missing");
        var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.SyncDirectory(missing));
        Assert.Equal((Pmem2ErrorCode)(-2), e.Code);
        Assert.Equal(2, e.Errno);
        Assert.Equal($"open \"{missing}\": No such file or directory", e.Message);
    }

    [Fact]
    public void SyncDirectory_of_a_regular_file_throws_ENOTDIR()
    {
        using var file = new TempFile(1);
        var e = Assert.Throws<Pmem2Exception>(() => Pmem2Files.SyncDirectory(file.Path));
        Assert.Equal((Pmem2ErrorCode)(-20), e.Code);
        Assert.Throws<ArgumentException>(() => Pmem2Files.SyncDirectory(""));
    }

    /// <summary>Allocated bytes (st_blocks * st_blocksize unit) from stat(1); there is no managed st_blocks.</summary>
    private static long AllocatedBytes(string path)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path])
        {
            RedirectStandardOutput = true,
        })!;
        var output = process.StandardOutput.ReadToEnd().Trim().Split(' ');
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return long.Parse(output[0], CultureInfo.InvariantCulture) * long.Parse(output[1], CultureInfo.InvariantCulture);
    }
}
