using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Pmem2.Internal;
using Pmem2.Internal.BadBlocks;

namespace Pmem2.Tests;

/// <summary>
/// Bad blocks (pmem2_badblock_*) against fake sysfs trees (the machine has no NVDIMM) with real
/// FIEMAP extents of real ext4 files under /tmp: the fake tree maps the temp file's st_dev to a pmem
/// block device on region0, whose bad sectors are placed inside the file's real physical extents
/// (cross-checked with e2fsprogs' filefrag), so the translation to file offsets, the rounding to
/// the filesystem block and the clear (punch hole + reallocate) all run on the real filesystem.
/// </summary>
public sealed partial class BadBlockTests : IDisposable
{
    private const ulong RegionResource = 0x1_0000_0000;
    private readonly TempDir _root = new();
    private readonly string _previousRoot = DeviceDax.SysRoot;

    public BadBlockTests() => DeviceDax.SysRoot = _root.Path;

    public void Dispose()
    {
        DeviceDax.SysRoot = _previousRoot;
        _root.Dispose();
    }

    [Fact]
    public void FiemapExtentsMatchFilefrag()
    {
        using var file = TwoExtentFile(out var handle);
        using (handle)
        {
            var (blockSize, extents) = Extents.Get(handle, deviceDax: false);
            Assert.Equal(4096UL, blockSize);
            var expected = Filefrag(file.Path);
            Assert.Equal(expected, extents);
            Assert.Equal(2, extents.Length);
        }
    }

    [Theory]
    [InlineData("fsdax")]
    [InlineData("raw")]
    public void BadSectorsInsideTheFileBecomeBlockAlignedFileRanges(string mode)
    {
        using var file = TwoExtentFile(out var handle);
        using (handle)
        {
            using var src = Pmem2Source.FromHandle(handle);
            var extents = Filefrag(file.Path);
            var a = extents[0].Physical + (3 * 4096) + 1024;       // 2 sectors inside block 3 of extent 0
            var b = extents[1].Physical + 8192 - 512;              // 2 sectors straddling blocks 1 and 2 of extent 1
            var expected = new List<(ulong Physical, Pmem2BadBlock Bb)>
            {
                (a, new Pmem2BadBlock(3 * 4096, 4096)),
                (b, new Pmem2BadBlock(extents[1].Logical + 4096, 8192)),
            };
            expected.Sort((x, y) => x.Physical.CompareTo(y.Physical));
            var sectors = new List<(ulong Sector, ulong Count)> { (0, 8) }; // the superblock: never part of a file
            sectors.AddRange(expected.Select(e => (e.Physical / 512, 2UL)));
            FakeBlockDevice(src.FileSystemDevice, mode, sectors);

            using var ctx = Pmem2BadBlockContext.Create(src);
            Assert.True(ctx.HasDevice);
            Assert.Equal(expected.Select(e => e.Bb), ctx.ReadAll());
            var e = T.Fails(Pmem2ErrorCode.NoBadBlockFound, () => ctx.Next());
            Assert.Equal("no more bad blocks", e.Message);
        }
    }

    [Fact]
    public void ClearDeallocatesAndReallocatesTheBlocks()
    {
        using var file = TwoExtentFile(out var handle);
        using (handle)
        {
            var size = RandomAccess.GetLength(handle);
            var pattern = Enumerable.Repeat((byte)0xAB, (int)size).ToArray();
            RandomAccess.Write(handle, pattern, 0);
            RandomAccess.FlushToDisk(handle);
            using var src = Pmem2Source.FromHandle(handle);
            var extents = Filefrag(file.Path);
            FakeBlockDevice(src.FileSystemDevice, "fsdax", [((extents[0].Physical / 512) + 17, 1)]);

            using var ctx = Pmem2BadBlockContext.Create(src);
            var bb = ctx.Next();
            Assert.Equal(new Pmem2BadBlock(8192, 4096), bb);
            ctx.Clear(bb);

            var after = new byte[size];
            Assert.Equal(size, RandomAccess.Read(handle, after, 0));
            Assert.Equal(size, RandomAccess.GetLength(handle));
            Assert.All(after.AsSpan(8192, 4096).ToArray(), x => Assert.Equal(0, x));
            Assert.False(after.AsSpan(0, 8192).ContainsAnyExcept((byte)0xAB));
            Assert.False(after.AsSpan(12288).ContainsAnyExcept((byte)0xAB));
            // Reallocated: still no hole (the extents cover the same bytes as before).
            Assert.Equal(extents.Sum(x => (long)x.Length), Filefrag(file.Path).Sum(x => (long)x.Length));
        }
    }

    [Fact]
    public void DeviceDaxReportsTheRegionRangesClippedToTheNamespace()
    {
        var region = Directory.CreateDirectory(Path.Combine(_root.Path, "devices", "platform", "e820_pmem", "ndbus0", "region0")).FullName;
        File.WriteAllText(Path.Combine(region, "resource"), $"0x{RegionResource:x}\n");
        File.WriteAllText(Path.Combine(region, "badblocks"), "0 8\n4100 16\n2101240 16\n4194304 8\n");
        Directory.CreateDirectory(Path.Combine(region, "dax_region"));
        File.WriteAllText(Path.Combine(region, "dax_region", "align"), "4096\n");
        var claim = Directory.CreateDirectory(Path.Combine(region, "dax0.1")).FullName;
        File.WriteAllText(Path.Combine(claim, "resource"), $"0x{RegionResource + (2 << 20):x}\n");
        File.WriteAllText(Path.Combine(claim, "size"), "1073741824\n");
        var dax = Directory.CreateDirectory(Path.Combine(claim, "dax0.0")).FullName;
        File.WriteAllText(Path.Combine(dax, "size"), "1073741824\n");
        var daxClass = Directory.CreateDirectory(Path.Combine(_root.Path, "class", "dax")).FullName;
        File.CreateSymbolicLink(Path.Combine(dax, "subsystem"), daxClass);
        Directory.CreateDirectory(Path.Combine(_root.Path, "dev", "char"));
        File.CreateSymbolicLink(Path.Combine(_root.Path, "dev", "char", "1:3"), dax);

        using var src = Pmem2Source.Open("/dev/null");
        Assert.Equal(Pmem2SourceType.DeviceDax, src.Type);
        using (var ctx = Pmem2BadBlockContext.Create(src))
        {
            Assert.Equal([new Pmem2BadBlock(2048, 8192), new Pmem2BadBlock(1073737728, 4096)], ctx.ReadAll());
            if (!File.Exists("/dev/ndctl0"))
            {
                var e = T.Fails(Pmem2ErrorCode.NoSupp, () => ctx.Clear(new Pmem2BadBlock(2048, 8192)));
                Assert.StartsWith("failed to create cmd (bus 'ndbus0')", e.Message);
            }
        }

        File.Delete(Path.Combine(claim, "resource"));
        var bounds = T.Fails(Pmem2ErrorCode.CannotReadBounds, () => Pmem2BadBlockContext.Create(src));
        Assert.Equal("(dax) cannot read offset of the namespace", bounds.Message);
    }

    [Fact]
    public void NoNamespaceMeansNoBadBlocksAndAnonymousIsNotSupported()
    {
        using var file = new TempFile(8192);
        using var src = file.OpenSource();
        using var ctx = Pmem2BadBlockContext.Create(src);
        Assert.False(ctx.HasDevice);
        Assert.False(ctx.TryGetNext(out _));
        var e = T.Fails(Pmem2ErrorCode.NoBadBlockFound, () => ctx.Next());
        Assert.Equal("Cannot find any matching device, no bad blocks found", e.Message);

        using var anon = Pmem2Source.FromAnonymous(4096);
        var n = T.Fails(Pmem2ErrorCode.NoSupp, () => Pmem2BadBlockContext.Create(anon));
        Assert.Equal("Anonymous source does not support bad blocks", n.Message);
    }

    /// <summary>The extent walk on synthetic extents: a range spanning two physically adjacent extents
    /// yields one block-rounded result per extent, a range in no extent is skipped, a range inside a
    /// later extent maps through that extent's logical offset.</summary>
    [Fact]
    public void ARangeSpanningTwoExtentsYieldsOneResultPerExtent()
    {
        const ulong p0 = 245 * 4096;
        FileExtent[] extents = [new(0, p0, 8192), new(8192, p0 + 8192, 8192), new(65536, 500 * 4096, 4096)];
        Pmem2BadBlock[] ranges = [new(p0 + 4096 + 100, 8192), new(1000, 512), new((500 * 4096) + 512, 512)];
        using var file = new TempFile(4096);
        using var src = file.OpenSource();
        using var ctx = Pmem2BadBlockContext.ForExtents(src, ranges, extents, 4096);
        Assert.Equal([new Pmem2BadBlock(4096, 4096), new Pmem2BadBlock(8192, 8192), new Pmem2BadBlock(65536, 4096)], ctx.ReadAll());

        using var devdax = Pmem2BadBlockContext.ForExtents(src, ranges, null, 0);
        Assert.Equal(ranges, devdax.ReadAll());
    }

    [Fact]
    public void SysfsBadblocksFormatIsParsedLikeTheKernelWritesIt()
    {
        Assert.Equal([new SectorRange(8, 16), new SectorRange(4096, 1)], NdNamespace.ParseBadBlocks("8 16\n4096 1\n"));
        Assert.Empty(NdNamespace.ParseBadBlocks(""));
        Assert.Equal([new SectorRange(1, 1)], NdNamespace.ParseBadBlocks("garbage\n1 1\n2 0\n"));
    }

    /// <summary>An fallocated 1 MiB + a 256 KiB piece at 3 MiB: two unwritten extents on ext4.</summary>
    private static TempFile TwoExtentFile(out Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        var file = new TempFile(0, "pmem2-bb", ExtentDirectory.Path);
        handle = file.OpenHandle();
        Pmem2Files.Allocate(handle, 1 << 20);
        Assert.Equal(0, Internal.Interop.LibC.fallocate(handle, 0, 3 << 20, 256 << 10));
        return file;
    }

    /// <summary>Presents <paramref name="dev"/> as pmem0 of region0: fsdax (pfn0.1 claims namespace0.0,
    /// the block device lists namespace-relative sectors) or raw (the region lists region-relative
    /// sectors; namespace0.0 starts 1 MiB into the region).</summary>
    private void FakeBlockDevice(ulong dev, string mode, List<(ulong Sector, ulong Count)> sectors)
    {
        var region = Directory.CreateDirectory(Path.Combine(_root.Path, "devices", "platform", "e820_pmem", "ndbus0", "region0")).FullName;
        File.WriteAllText(Path.Combine(region, "resource"), $"0x{RegionResource:x}\n");
        var claim = Directory.CreateDirectory(Path.Combine(region, mode == "fsdax" ? "pfn0.1" : "namespace0.0")).FullName;
        var block = Directory.CreateDirectory(Path.Combine(claim, "block", "pmem0")).FullName;
        if (mode == "fsdax")
        {
            File.WriteAllText(Path.Combine(block, "badblocks"), string.Concat(sectors.Select(s => $"{s.Sector} {s.Count}\n")));
            File.WriteAllText(Path.Combine(region, "badblocks"), "1 1\n"); // must not be used for fsdax
        }
        else
        {
            const ulong nsOffset = 1 << 20;
            File.WriteAllText(Path.Combine(claim, "resource"), $"0x{RegionResource + nsOffset:x}\n");
            File.WriteAllText(Path.Combine(claim, "size"), $"{1UL << 40}\n");
            File.WriteAllText(Path.Combine(region, "badblocks"), "0 8\n" + string.Concat(sectors.Select(s => $"{s.Sector + (nsOffset / 512)} {s.Count}\n")));
        }

        Directory.CreateDirectory(Path.Combine(_root.Path, "dev", "block"));
        File.CreateSymbolicLink(Path.Combine(_root.Path, "dev", "block",
            $"{Internal.Interop.LibC.Major(dev)}:{Internal.Interop.LibC.Minor(dev)}"), block);
    }

    /// <summary>e2fsprogs' view of the extents, in bytes (filefrag -v -b1).</summary>
    private static FileExtent[] Filefrag(string path)
    {
        var psi = new ProcessStartInfo("filefrag", ["-v", "-b1", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000), "filefrag did not finish");
        Assert.Equal(0, p.ExitCode);
        return ExtentLine().Matches(output).Select(m => new FileExtent(
            ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            ulong.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            ulong.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToArray();
    }

    [GeneratedRegex(@"^\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):", RegexOptions.Multiline)]
    private static partial Regex ExtentLine();
}

/// <summary>A directory on a filesystem with FIEMAP and fallocate (ext4 / xfs / btrfs): the temp
/// directory if it is one, else /var/tmp (tmpfs has no FIEMAP). Fails, naming both, when neither is.</summary>
internal static class ExtentDirectory
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        string[] candidates = [System.IO.Path.GetTempPath(), "/var/tmp"];
        foreach (var dir in candidates)
        {
            var psi = new ProcessStartInfo("stat", ["-f", "-c", "%T", dir]) { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var type = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(10_000);
            if (type is "ext2/ext3" or "xfs" or "btrfs")
            {
                return dir;
            }
        }

        throw new InvalidOperationException($"bad-block tests need FIEMAP: neither {string.Join(" nor ", candidates)} is on ext4, xfs or btrfs");
    }
}
