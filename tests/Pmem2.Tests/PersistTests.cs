using System.Globalization;
using Pmem2.Internal;

namespace Pmem2.Tests;

/// <summary>
/// Port of src/test/pmem2_persist and pmem2_deep_flush: the count of msync / CPU flush / fence calls
/// per granularity (observed through Pmem2Diagnostics while the real calls are made), plus the real
/// effect of msync on the page cache's dirty state.
/// </summary>
public class PersistTests
{
    private const long MapSize = (20 << 20) + (5 << 10);

    private static Pmem2Map MapAt(TempFile file, Pmem2Granularity granularity)
    {
        using var src = file.OpenSource();
        IDisposable? platform = granularity switch
        {
            Pmem2Granularity.CacheLine => T.Platform(mapSync: true, eadr: false),
            Pmem2Granularity.Byte => T.Platform(mapSync: true, eadr: true),
            _ => null,
        };
        using (platform)
        {
            var map = Pmem2Map.Create(T.Config(granularity), src);
            Assert.Equal(granularity, map.StoreGranularity);
            return map;
        }
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page, 1, 0, 0)]
    [InlineData(Pmem2Granularity.CacheLine, 0, 1, 1)]
    [InlineData(Pmem2Granularity.Byte, 0, 0, 1)]
    public void PersistCounts(Pmem2Granularity g, int msync, int flush, int fence)
    {
        using var file = new TempFile(MapSize);
        using var map = MapAt(file, g);
        using var counts = Pmem2Diagnostics.BeginCounting();
        map.Persist(0, map.Size);
        Assert.Equal((msync, flush, fence), counts.Triple);
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page, 1, 0, 0)]
    [InlineData(Pmem2Granularity.CacheLine, 0, 1, 0)]
    [InlineData(Pmem2Granularity.Byte, 0, 0, 0)]
    public void FlushCounts(Pmem2Granularity g, int msync, int flush, int fence)
    {
        using var file = new TempFile(MapSize);
        using var map = MapAt(file, g);
        using var counts = Pmem2Diagnostics.BeginCounting();
        map.Flush(0, map.Size);
        Assert.Equal((msync, flush, fence), counts.Triple);
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page, 0, 0, 0)]
    [InlineData(Pmem2Granularity.CacheLine, 0, 0, 1)]
    [InlineData(Pmem2Granularity.Byte, 0, 0, 1)]
    public void DrainCounts(Pmem2Granularity g, int msync, int flush, int fence)
    {
        using var file = new TempFile(MapSize);
        using var map = MapAt(file, g);
        using var counts = Pmem2Diagnostics.BeginCounting();
        map.Drain();
        Assert.Equal((msync, flush, fence), counts.Triple);
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page, 0)]
    [InlineData(Pmem2Granularity.CacheLine, 1)]
    [InlineData(Pmem2Granularity.Byte, 1)]
    public void DeepFlushOfARegularFileCounts(Pmem2Granularity g, int msync)
    {
        using var file = new TempFile(8 << 20);
        using var map = MapAt(file, g);
        using var counts = Pmem2Diagnostics.BeginCounting();
        map.DeepFlush(0, map.Size);
        Assert.Equal((msync, 0, 0), counts.Triple);
        Assert.Equal(0, counts.SysfsRead + counts.SysfsWrite);
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page)]
    [InlineData(Pmem2Granularity.CacheLine)]
    [InlineData(Pmem2Granularity.Byte)]
    public void DeepFlushRanges(Pmem2Granularity g)
    {
        using var file = new TempFile(8 << 20);
        using var map = MapAt(file, g);
        var size = map.Size;
        map.DeepFlush(0, size);
        map.DeepFlush(size / 4, size / 2);
        map.DeepFlush(size, 0);
        var e = T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(size, 1));
        Assert.StartsWith("requested deep flush rage ptr", e.Message);
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(size + 1, 0)); // addr + size + 1
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(1, size));
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(unchecked(0UL - size), size)); // addr - size
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(1024, size));
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(size / 2, size));
        T.Fails(Pmem2ErrorCode.DeepFlushRange, () => map.DeepFlush(0, ulong.MaxValue));

        // Unaligned persist then deep flush at +256 (pmem2_integration).
        map.Memset(100, 1, 1000, Pmem2MemFlags.NoFlush);
        map.Persist(100, 1000);
        map.DeepFlush(256, 4096);
    }

    [Fact]
    public void PagePersistCleansTheDirtyPages()
    {
        using var file = new TempFile(1 << 20);
        using var map = MapAt(file, Pmem2Granularity.Page);
        map.GetSpan().Slice(0, 256 << 10).Fill(0xA5);
        Assert.True(DirtyKiB(map.Address) >= 256, "writes through the map should dirty its pages");
        map.Persist(0, 256 << 10);
        Assert.Equal(0, DirtyKiB(map.Address));
    }

    [Fact]
    public void PagePersistOutsideAnyMapIsANoOp()
    {
        var buffer = GC.AllocateArray<byte>(8192, pinned: true);
        var address = System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0);
        using var counts = Pmem2Diagnostics.BeginCounting();
        Persistence.PersistPages(address, 8192);
        Assert.Equal(0, counts.Msync);
    }

    [Fact]
    public void PagePersistMsyncsOnlyTheCoveredPieces()
    {
        using var file = new TempFile(1 << 20);
        using var map = MapAt(file, Pmem2Granularity.Page);
        using var counts = Pmem2Diagnostics.BeginCounting();
        // A range that starts 1 MiB before the map and ends inside it: one msync of the covered piece.
        Persistence.PersistPages(map.Address - (1 << 20), (2 << 20) - 4096);
        Assert.Equal(1, counts.Msync);
        // Unaligned start inside the map: rounded down to the page.
        counts.Reset();
        map.Persist(4097, 10);
        Assert.Equal(1, counts.Msync);
    }

    /// <summary>Dirty kilobytes (Shared_Dirty + Private_Dirty) of the VMA starting at <paramref name="address"/>.</summary>
    internal static int DirtyKiB(nint address)
    {
        var header = ((ulong)address).ToString("x", CultureInfo.InvariantCulture) + "-";
        var lines = File.ReadAllLines("/proc/self/smaps");
        var i = Array.FindIndex(lines, l => l.StartsWith(header, StringComparison.Ordinal));
        Assert.True(i >= 0, "mapping not found in /proc/self/smaps");
        var dirty = 0;
        for (var j = i + 1; j < lines.Length; j++)
        {
            if (lines[j].StartsWith("Shared_Dirty:", StringComparison.Ordinal) || lines[j].StartsWith("Private_Dirty:", StringComparison.Ordinal))
            {
                dirty += int.Parse(lines[j].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }

            if (lines[j].StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                break;
            }
        }

        return dirty;
    }
}
