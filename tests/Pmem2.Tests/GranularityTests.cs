using Pmem2.Internal;

namespace Pmem2.Tests;

/// <summary>
/// Port of src/test/pmem2_granularity (the 3x3 matrix; libpmem2 mocks mmap and the sysfs, here the
/// MAP_SYNC outcome and the eADR sysfs root are injected through internal seams while the mapping,
/// the sysfs walk and the granularity decision are real).
/// </summary>
public class GranularityTests
{
    public static TheoryData<bool, bool, Pmem2Granularity, int, Pmem2Granularity?> Matrix() => new()
    {
        // available BYTE (MAP_SYNC + eADR)
        { true, true, Pmem2Granularity.Byte, 0, Pmem2Granularity.Byte },
        { true, true, Pmem2Granularity.CacheLine, 0, Pmem2Granularity.Byte },
        { true, true, Pmem2Granularity.Page, 0, Pmem2Granularity.Byte },
        // available CACHE_LINE (MAP_SYNC, no eADR)
        { true, false, Pmem2Granularity.Byte, (int)Pmem2ErrorCode.GranularityNotSupported, null },
        { true, false, Pmem2Granularity.CacheLine, 0, Pmem2Granularity.CacheLine },
        { true, false, Pmem2Granularity.Page, 0, Pmem2Granularity.CacheLine },
        // available PAGE (no MAP_SYNC)
        { false, false, Pmem2Granularity.Byte, (int)Pmem2ErrorCode.GranularityNotSupported, null },
        { false, false, Pmem2Granularity.CacheLine, (int)Pmem2ErrorCode.GranularityNotSupported, null },
        { false, false, Pmem2Granularity.Page, 0, Pmem2Granularity.Page },
        // eADR without MAP_SYNC is still PAGE
        { false, true, Pmem2Granularity.CacheLine, (int)Pmem2ErrorCode.GranularityNotSupported, null },
        { false, true, Pmem2Granularity.Page, 0, Pmem2Granularity.Page },
    };

    [Theory]
    [MemberData(nameof(Matrix))]
    public void AvailableVersusRequested(bool mapSync, bool eadr, Pmem2Granularity requested, int error, Pmem2Granularity? effective)
    {
        using var file = new TempFile(1 << 20);
        using var platform = T.Platform(mapSync, eadr);
        using var src = file.OpenSource();
        var before = MapRegistry.Count;
        if (effective is { } expected)
        {
            using var map = Pmem2Map.Create(T.Config(requested), src);
            Assert.Equal(expected, map.StoreGranularity);
            Assert.Equal(mapSync, map.IsMapSync);
            return;
        }

        var e = T.Fails((Pmem2ErrorCode)error, () => Pmem2Map.Create(T.Config(requested), src));
        var message = mapSync ? GranularityPolicy.NoEadrMessage : GranularityPolicy.NoMapSyncMessage;
        Assert.Equal(message, e.Message);
        Assert.True(MapRegistry.Count <= before + 1); // nothing of ours left registered (other tests run in parallel)
    }

    [Fact]
    public void ExactMessages()
    {
        Assert.Equal(
            "requested granularity not available because fd doesn't point to DAX-enabled file or kernel doesn't support MAP_SYNC flag (Linux >= 4.15)",
            GranularityPolicy.NoMapSyncMessage);
        Assert.Equal("requested granularity not available because the platform doesn't support eADR", GranularityPolicy.NoEadrMessage);
    }

    [Fact]
    public void RealMachineHasNoMapSyncOnTempFiles()
    {
        // Without seams: tmpfs/ext4 without -o dax refuse MAP_SYNC (EOPNOTSUPP), so PAGE.
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        Assert.False(map.IsMapSync);
        Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);
        var e = T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => Pmem2Map.Create(T.Config(Pmem2Granularity.CacheLine), src));
        Assert.Equal(GranularityPolicy.NoMapSyncMessage, e.Message);
    }

    [Fact]
    public void PrivateMapsAreByteWhateverThePlatform()
    {
        using var file = new TempFile(1 << 20);
        using var platform = T.Platform(mapSync: false, eadr: false);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Byte, sharing: Pmem2Sharing.Private), src);
        Assert.Equal(Pmem2Granularity.Byte, map.StoreGranularity);
        Assert.False(map.IsMapSync);
    }

    [Fact]
    public void GranularityFailureUndoesTheMapping()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        for (var i = 0; i < 200; i++)
        {
            T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => Pmem2Map.Create(T.Config(Pmem2Granularity.Byte), src));
        }

        // Each failed attempt unmapped its 1 MiB: the process maps no more than a handful of them.
        var maps = File.ReadAllLines("/proc/self/maps").Count(l => l.Contains(file.Path, StringComparison.Ordinal));
        Assert.Equal(0, maps);
    }

    public static TheoryData<string[], bool> EadrLayouts() => new()
    {
        { ["cpu_cache\n"], true },
        { ["cpu_cache\n", "cpu_cache\n"], true },
        { ["cpu_cache\n", "memory_controller\n"], false },
        { ["cpu_cache"], false },
        { [""], false },
        { [], false },
    };

    [Theory]
    [MemberData(nameof(EadrLayouts))]
    public void EadrNeedsEveryRegionInTheCpuCacheDomain(string[] domains, bool expected)
    {
        using var dir = new TempDir();
        var bus = Directory.CreateDirectory(Path.Combine(dir.Path, "bus"));
        for (var i = 0; i < domains.Length; i++)
        {
            var real = Directory.CreateDirectory(Path.Combine(dir.Path, $"real{i}"));
            File.WriteAllText(Path.Combine(real.FullName, "persistence_domain"), domains[i]);
            File.CreateSymbolicLink(Path.Combine(bus.FullName, $"region{i}"), real.FullName);
        }

        // Entries that are not region symlinks are ignored.
        Directory.CreateDirectory(Path.Combine(bus.FullName, "region-not-a-link"));
        File.CreateSymbolicLink(Path.Combine(bus.FullName, "ndbus0"), dir.Path);
        Assert.Equal(expected, GranularityPolicy.DetectEadr(bus.FullName));
    }

    [Fact]
    public void MissingBusOrMissingDomainFileIsNoEadr()
    {
        using var dir = new TempDir();
        Assert.False(GranularityPolicy.DetectEadr(Path.Combine(dir.Path, "nope")));
        var real = Directory.CreateDirectory(Path.Combine(dir.Path, "real"));
        File.CreateSymbolicLink(Path.Combine(dir.Path, "region0"), real.FullName);
        Assert.False(GranularityPolicy.DetectEadr(dir.Path));
    }

    [Fact]
    public void MinGranularityRules()
    {
        Assert.Equal(Pmem2Granularity.Byte, GranularityPolicy.MinGranularity(false, false, Pmem2Sharing.Private));
        Assert.Equal(Pmem2Granularity.Page, GranularityPolicy.MinGranularity(true, false, Pmem2Sharing.Shared));
        Assert.Equal(Pmem2Granularity.CacheLine, GranularityPolicy.MinGranularity(false, true, Pmem2Sharing.Shared));
        Assert.Equal(Pmem2Granularity.Byte, GranularityPolicy.MinGranularity(true, true, Pmem2Sharing.Shared));
    }
}

/// <summary>Port of src/test/pmem2_granularity_detection: PMEM2_FORCE_GRANULARITY, read on every map.</summary>
[Collection(EnvironmentCollection.Name)]
public class ForcedGranularityTests
{
    [Theory]
    [InlineData("page", Pmem2Granularity.Page)]
    [InlineData("PAGE", Pmem2Granularity.Page)]
    [InlineData("cache_line", Pmem2Granularity.CacheLine)]
    [InlineData("CaCHe_Line", Pmem2Granularity.CacheLine)]
    [InlineData("CACHELINE", Pmem2Granularity.CacheLine)]
    [InlineData("byte", Pmem2Granularity.Byte)]
    public void ForcedValueWinsOverDetection(string value, Pmem2Granularity expected)
    {
        using var env = T.Env(GranularityPolicy.ForceVariable, value);
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        Assert.Equal(expected, map.StoreGranularity);
        Assert.False(map.IsMapSync);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("")]
    [InlineData("CACHE_LINES")]
    [InlineData("bytes")]
    public void InvalidValuesAreIgnored(string value)
    {
        using var env = T.Env(GranularityPolicy.ForceVariable, value);
        Assert.Null(GranularityPolicy.ReadForcedGranularity());
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
        Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);
    }

    [Theory]
    [InlineData("page")]
    [InlineData("cache_line")]
    [InlineData("CaCHe_Line")]
    [InlineData("CACHELINE")]
    [InlineData("byte")]
    [InlineData("0")]
    [InlineData("CACHE_LINE_")]
    public void NativeLibraryAgrees(string value)
    {
        Assert.True(Oracle.NativePmem2.IsAvailable, "libpmem2.so.1 is not installed");
        using var env = T.Env(GranularityPolicy.ForceVariable, value);
        using var file = new TempFile(1 << 20);
        using var handle = file.OpenHandle();
        foreach (var requested in new[] { Pmem2Granularity.Byte, Pmem2Granularity.CacheLine, Pmem2Granularity.Page })
        {
            var rc = Oracle.NativeMap.TryCreate((int)handle.DangerousGetHandle(), (int)requested, 0, 0, 0, (1u << 30) | (1u << 31), out var native);
            var nativeGranularity = native?.Granularity ?? -1;
            native?.Dispose();
            using var src = Pmem2Source.FromHandle(handle);
            try
            {
                using var map = Pmem2Map.Create(T.Config(requested), src);
                Assert.Equal(0, rc);
                Assert.Equal(nativeGranularity, (int)map.StoreGranularity);
            }
            catch (Pmem2Exception e)
            {
                Assert.Equal(rc, (int)e.Code);
            }
        }
    }

    [Fact]
    public void ReadOnEveryMapAndNeverForPrivateOrAnonymous()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using (T.Env(GranularityPolicy.ForceVariable, "CACHE_LINE"))
        {
            using var cl = Pmem2Map.Create(T.Config(Pmem2Granularity.CacheLine), src);
            Assert.Equal(Pmem2Granularity.CacheLine, cl.StoreGranularity);
            using var priv = Pmem2Map.Create(T.Config(Pmem2Granularity.Page, sharing: Pmem2Sharing.Private), src);
            Assert.Equal(Pmem2Granularity.Byte, priv.StoreGranularity);
            using var anon = Pmem2Source.FromAnonymous(1 << 20);
            using var a = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), anon);
            Assert.Equal(Pmem2Granularity.Byte, a.StoreGranularity);
        }

        using (T.Env(GranularityPolicy.ForceVariable, "PAGE"))
        {
            var e = T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => Pmem2Map.Create(T.Config(Pmem2Granularity.CacheLine), src));
            Assert.Equal(GranularityPolicy.NoMapSyncMessage, e.Message);
        }

        using (T.Env(GranularityPolicy.ForceVariable, "CACHE_LINE"))
        {
            var e = T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => Pmem2Map.Create(T.Config(Pmem2Granularity.Byte), src));
            Assert.Equal(GranularityPolicy.NoEadrMessage, e.Message);
        }
    }
}
