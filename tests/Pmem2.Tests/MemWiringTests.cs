using Pmem2.Internal;

namespace Pmem2.Tests;

/// <summary>
/// The map layer around the copy engines (MemOps contract): data is right whatever the flags, and
/// the final drain / msync follow libpmem2's rules per granularity.
/// </summary>
public class MemWiringTests
{
    public static TheoryData<Pmem2Granularity> Granularities() => [Pmem2Granularity.Page, Pmem2Granularity.CacheLine, Pmem2Granularity.Byte];

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
            return Pmem2Map.Create(T.Config(granularity), src);
        }
    }

    [Theory]
    [MemberData(nameof(Granularities))]
    public void CopiesAreExactForEveryFlagSet(Pmem2Granularity g)
    {
        const int size = 64 * 1024;
        using var file = new TempFile(size);
        using var map = MapAt(file, g);
        var expected = new byte[size];
        var rng = new Random(7);
        Pmem2MemFlags[] flagSets =
        [
            Pmem2MemFlags.None, Pmem2MemFlags.NoDrain, Pmem2MemFlags.NonTemporal, Pmem2MemFlags.Temporal,
            Pmem2MemFlags.NonTemporal | Pmem2MemFlags.Temporal, Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain,
            Pmem2MemFlags.WriteCombining, Pmem2MemFlags.WriteBack, Pmem2MemFlags.NoFlush, (Pmem2MemFlags)63,
        ];
        foreach (var flags in flagSets)
        {
            foreach (var (dst, len) in new[] { (0, 4096), (7, 4096), (13, 1), (4095, 3), (100, 20000) })
            {
                var data = new byte[len];
                rng.NextBytes(data);
                map.Memcpy((ulong)dst, data, flags);
                data.CopyTo(expected, dst);

                map.Memset((ulong)(dst + 30000), (byte)len, (ulong)len, flags);
                expected.AsSpan(dst + 30000, len).Fill((byte)len);

                // Overlapping moves, forward and backward.
                map.Memmove((ulong)dst + 9, (ulong)dst, (ulong)len, flags);
                expected.AsSpan(dst, len).CopyTo(expected.AsSpan(dst + 9));
                map.Memmove((ulong)dst, (ulong)dst + 33, (ulong)len, flags);
                expected.AsSpan(dst + 33, len).ToArray().CopyTo(expected, dst);
            }

            Assert.True(map.GetSpan().SequenceEqual(expected), $"contents differ after flags {flags}");
        }

        map.Persist(0, map.Size);
        map.Dispose();
        Assert.Equal(expected, File.ReadAllBytes(file.Path));
    }

    [Theory]
    [InlineData(Pmem2Granularity.CacheLine, Pmem2MemFlags.None, 0, 1)]
    [InlineData(Pmem2Granularity.CacheLine, Pmem2MemFlags.NoDrain, 0, 0)]
    [InlineData(Pmem2Granularity.CacheLine, Pmem2MemFlags.NoFlush, 0, 0)]
    [InlineData(Pmem2Granularity.CacheLine, Pmem2MemFlags.NonTemporal, 0, 1)]
    [InlineData(Pmem2Granularity.Byte, Pmem2MemFlags.None, 0, 1)]
    [InlineData(Pmem2Granularity.Byte, Pmem2MemFlags.NoDrain, 0, 0)]
    [InlineData(Pmem2Granularity.Byte, Pmem2MemFlags.NoFlush, 0, 0)]
    [InlineData(Pmem2Granularity.Page, Pmem2MemFlags.None, 1, 1)]
    [InlineData(Pmem2Granularity.Page, Pmem2MemFlags.NoDrain, 1, 1)]
    [InlineData(Pmem2Granularity.Page, Pmem2MemFlags.NoFlush, 0, 0)]
    public void FinalDrainAndMsyncFollowTheGranularity(Pmem2Granularity g, Pmem2MemFlags flags, int msync, int fence)
    {
        using var file = new TempFile(1 << 20);
        using var map = MapAt(file, g);
        var data = new byte[10000];
        foreach (var op in new Action[]
        {
            () => map.Memcpy(5, data, flags),
            () => map.Memmove(20000, 5, 10000, flags),
            () => map.Memset(40000, 1, 10000, flags),
        })
        {
            using var counts = Pmem2Diagnostics.BeginCounting();
            op();
            Assert.Equal(msync, counts.Msync);
            Assert.Equal(fence, counts.Fence);

            // The engines' per-block flushes are internal (CpuFlush.FlushLines): only flush_fn /
            // persist_fn calls are counted, so a copy reports none.
            Assert.Equal(0, counts.Flush);
        }
    }

    [Theory]
    [InlineData(Pmem2Granularity.Page, 1)]
    [InlineData(Pmem2Granularity.CacheLine, 0)]
    [InlineData(Pmem2Granularity.Byte, 0)]
    public void DeferredCopiesPersistOnCompletion(Pmem2Granularity g, int msyncOnComplete)
    {
        using var file = new TempFile(1 << 20);
        using var map = MapAt(file, g);
        var data = new byte[300_000];
        new Random(3).NextBytes(data);
        using (var counts = Pmem2Diagnostics.BeginCounting())
        {
            map.CopyNonTemporalDeferred(4096 + 3, data);
            Assert.Equal((0, 0), (counts.Msync, counts.Fence));
        }

        using (var counts = Pmem2Diagnostics.BeginCounting())
        {
            map.CompleteDeferred(4096 + 3, (ulong)data.Length);
            Assert.Equal((msyncOnComplete, 1), (counts.Msync, counts.Fence));
        }

        var back = new byte[data.Length];
        map.Read(4096 + 3, back);
        Assert.Equal(data, back);
        if (g == Pmem2Granularity.Page)
        {
            Assert.Equal(0, PersistTests.DirtyKiB(map.Address));
        }
    }

    [Fact]
    public void RawEntryPointsAreThePerMapFunctions()
    {
        using var file = new TempFile(1 << 20);
        using var map = MapAt(file, Pmem2Granularity.Page);
        var buffer = GC.AllocateArray<byte>(64, pinned: true);
        buffer.AsSpan().Fill(0x3C);
        var src = System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0);
        using var counts = Pmem2Diagnostics.BeginCounting();
        Assert.Equal(map.Address + 128, map.MemcpyRaw(map.Address + 128, src, 64, Pmem2MemFlags.None));
        Assert.Equal(map.Address + 512, map.MemsetRaw(map.Address + 512, 7, 64, Pmem2MemFlags.NoFlush));
        map.PersistRaw(map.Address + 512, 64);
        map.FlushRaw(map.Address, 1);
        map.DrainRaw();
        Assert.Equal(3, counts.Msync);
        Assert.Equal(0x3C, map.GetSpan()[191]);
        Assert.Equal(7, map.GetSpan()[575]);
    }
}

/// <summary>Port of src/test/pmem2_map_prot: the protection reaches the page tables.</summary>
public class ProtectionTests
{
    private static string Permissions(nint address)
    {
        var header = ((ulong)address).ToString("x") + "-";
        return File.ReadLines("/proc/self/maps").Single(l => l.StartsWith(header, StringComparison.Ordinal)).Split(' ')[1];
    }

    [Theory]
    [InlineData(Pmem2Protection.Read | Pmem2Protection.Write, Pmem2Sharing.Shared, "rw-s")]
    [InlineData(Pmem2Protection.Read, Pmem2Sharing.Shared, "r--s")]
    [InlineData(Pmem2Protection.Read | Pmem2Protection.Exec, Pmem2Sharing.Shared, "r-xs")]
    [InlineData(Pmem2Protection.None, Pmem2Sharing.Shared, "---s")]
    [InlineData(Pmem2Protection.Read | Pmem2Protection.Write | Pmem2Protection.Exec, Pmem2Sharing.Private, "rwxp")]
    public void ProtectionIsApplied(Pmem2Protection protection, Pmem2Sharing sharing, string expected)
    {
        using var file = new TempFile(64 * 1024);
        using var src = file.OpenSource();
        var cfg = T.Config(sharing: sharing);
        cfg.Protection = protection;
        using var map = Pmem2Map.Create(cfg, src);
        Assert.Equal(expected, Permissions(map.Address));
    }

    [Fact]
    public void AccessTheProtectionForbidsIsRefusedNotCrashed()
    {
        using var file = new TempFile(64 * 1024);
        using var src = file.OpenSource();
        var cfg = T.Config();
        cfg.Protection = Pmem2Protection.Read;
        using (var ro = Pmem2Map.Create(cfg, src))
        {
            Assert.Throws<UnauthorizedAccessException>(() => ro.Memcpy(0, "x"u8));
            Assert.Throws<UnauthorizedAccessException>(() => ro.Memset(0, 1, 1));
            Assert.Throws<UnauthorizedAccessException>(() => ro.Memmove(0, 1, 1));
            Assert.Throws<UnauthorizedAccessException>(() => ro.CopyNonTemporalDeferred(0, "x"u8));
            ro.Read(0, new byte[4]);
            ro.Persist(0, 4096);
        }

        cfg.Protection = Pmem2Protection.None;
        using (var none = Pmem2Map.Create(cfg, src))
        {
            Assert.Throws<UnauthorizedAccessException>(() => none.Read(0, new byte[1]));
            none.Persist(0, 4096); // PAGE: msync of a PROT_NONE range is harmless
        }

        using var platform = T.Platform(mapSync: true, eadr: false);
        using var cl = Pmem2Map.Create(cfg, src);
        Assert.Equal(Pmem2Granularity.CacheLine, cl.StoreGranularity);
        Assert.Throws<UnauthorizedAccessException>(() => cl.Persist(0, 64)); // clwb of a PROT_NONE line faults
        Assert.Throws<UnauthorizedAccessException>(() => cl.Flush(0, 64));
    }

    [Fact]
    public void ReadOnlyDescriptorWithReadProtectionMapsShared()
    {
        using var file = new TempFile(64 * 1024);
        using var src = file.OpenSource(FileAccess.Read);
        var cfg = T.Config();
        cfg.Protection = Pmem2Protection.Read;
        using var map = Pmem2Map.Create(cfg, src);
        Assert.Equal("r--s", Permissions(map.Address));
    }
}
