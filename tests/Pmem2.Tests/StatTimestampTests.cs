using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Pmem2.Tests;

/// <summary>
/// Pmem2's stat calls (<see cref="Pmem2Files.GetStatus"/>, <see cref="Pmem2Files.TryGetStatus"/>,
/// <see cref="Pmem2Directory.TryGetStatus"/>, <see cref="Pmem2Source.GetSize"/>) do not read timestamps,
/// so they do not mark them "queried" for the kernel's multigrain timestamps (Linux 6.13+: ext4, xfs,
/// btrfs, tmpfs). A queried timestamp makes the next write take a fine-grained timestamp, which dirties
/// the inode on every write and, at PAGE granularity, adds an inode write to every msync; the service
/// stats the region on every call.
/// <para>
/// The observable, per round: write A; the stat under test; note the time t; write B right after; then
/// read the mtime. Write B changes the mtime (mtime &gt;= t) only when it took a fine-grained timestamp,
/// i.e. when the stat in between queried it (write A took a fine-grained one, because the previous round's
/// read queried it, so B's coarse clock is not newer). A stat that reads mtime (the control) must show it
/// in nearly every round, or the check proves nothing.
/// </para>
/// </summary>
public sealed class StatTimestampTests(ITestOutputHelper output)
{
    private const int Rounds = 40;

    public static TheoryData<string> Roots => new() { Path.GetTempPath(), "/dev/shm" };

    [Theory]
    [MemberData(nameof(Roots))]
    public void Pmem2_stat_calls_do_not_mark_timestamps_queried(string root)
    {
        var directory = Path.Combine(root, $"pmem2-mgtime-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "file");
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            RandomAccess.Write(handle, new byte[8192], 0);
            using var dir = Pmem2Directory.Open(directory);
            using var source = Pmem2Source.FromHandle(handle);

            var control = FineGrainedWrites(handle, path, () => _ = File.GetLastWriteTimeUtc(path));
            var descriptor = FineGrainedWrites(handle, path, () => _ = Pmem2Files.GetStatus(handle));
            var byPath = FineGrainedWrites(handle, path, () => _ = Pmem2Files.TryGetStatus(path));
            var byName = FineGrainedWrites(handle, path, () => _ = dir.TryGetStatus("file"));
            var size = FineGrainedWrites(handle, path, () => _ = source.GetSize());
            var report = string.Create(CultureInfo.InvariantCulture,
                $"{root} ({Kernel()}): rounds where the write after the stat took a fine-grained mtime, of {Rounds}: control (File.GetLastWriteTimeUtc) {control}, GetStatus {descriptor}, TryGetStatus(path) {byPath}, Pmem2Directory.TryGetStatus {byName}, Pmem2Source.GetSize {size}");
            output.WriteLine(report);
            if (Environment.OSVersion.Version >= new Version(6, 13))
            {
                // Multigrain timestamps exist on this kernel: the control must see them, or the check is blind.
                Assert.True(control >= Rounds * 8 / 10, report);
            }

            // A few rounds may see another process's fine-grained timestamp raise the system-wide floor.
            Assert.True(descriptor <= Rounds / 5 && byPath <= Rounds / 5 && byName <= Rounds / 5 && size <= Rounds / 5, report);

            // The fields still match what the kernel says (statx without the time fields).
            var status = Pmem2Files.GetStatus(handle);
            Assert.Equal(8192, status.Size);
            Assert.Equal(1UL, status.Links);
            Assert.True(status.IsRegularFile);
            Assert.Equal(status, Pmem2Files.TryGetStatus(path));
            Assert.Equal(status, dir.TryGetStatus("file"));
            Assert.Equal(Stat("%d %i %s %h %u %a", path),
                string.Create(CultureInfo.InvariantCulture, $"{status.Device} {status.Inode} {status.Size} {status.Links} {status.Uid} {Convert.ToString((int)status.Permissions, 8)}"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void A_character_device_and_a_directory_are_described_as_stat_describes_them()
    {
        var devNull = Pmem2Files.TryGetStatus("/dev/null")!.Value;
        Assert.Equal(0x2000u, devNull.Mode & 0xF000);
        Assert.Equal(Stat("%d %i %h", "/dev/null"), string.Create(CultureInfo.InvariantCulture, $"{devNull.Device} {devNull.Inode} {devNull.Links}"));

        var tmp = Pmem2Files.TryGetStatus("/tmp")!.Value;
        Assert.Equal(0x4000u, tmp.Mode & 0xF000);
        Assert.Equal(Stat("%d %i %h %u", "/tmp"), string.Create(CultureInfo.InvariantCulture, $"{tmp.Device} {tmp.Inode} {tmp.Links} {tmp.Uid}"));

        Assert.Null(Pmem2Files.TryGetStatus($"/tmp/pmem2-missing-{Guid.NewGuid():N}"));
    }

    /// <summary>Rounds (of <see cref="Rounds"/>) in which the write right after <paramref name="stat"/> changed the mtime.</summary>
    private static int FineGrainedWrites(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, Action stat)
    {
        var fine = 0;
        ReadOnlySpan<byte> a = "a"u8;
        ReadOnlySpan<byte> b = "b"u8;
        _ = File.GetLastWriteTimeUtc(path); // query, so the first write A is fine-grained like the rest
        for (var i = 0; i < Rounds; i++)
        {
            RandomAccess.Write(handle, a, 0);
            stat();
            var before = DateTime.UtcNow;
            RandomAccess.Write(handle, b, 4096);
            if (File.GetLastWriteTimeUtc(path) >= before)
            {
                fine++;
            }
        }

        return fine;
    }

    private static string Kernel() => Environment.OSVersion.Version.ToString();

    /// <summary>coreutils stat -c FORMAT (a separate process: the kernel's own view, with glibc's makedev for %d).</summary>
    private static string Stat(string format, string path)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", format, path])
        {
            RedirectStandardOutput = true,
            StandardOutputEncoding = Encoding.UTF8,
        })!;
        var output = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
        return output;
    }
}
