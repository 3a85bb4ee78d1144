using Pmem2.Internal;
using Pmem2.Internal.Flush;

namespace Pmem2.Tests;

/// <summary>
/// Device DAX handling against a fake sysfs tree (the machine has no DAX device): /dev/null (1:3)
/// is presented as dax0.0 of region0. Recognition, size, alignment, the devdax-specific map errors
/// and the region deep_flush protocol run for real against that tree.
/// </summary>
public sealed class DeviceDaxTests : IDisposable
{
    private readonly TempDir _root = new();
    private readonly string _deepFlush;
    private readonly string _previousRoot = DeviceDax.SysRoot;

    public DeviceDaxTests()
    {
        var root = _root.Path;
        var region = Directory.CreateDirectory(Path.Combine(root, "devices", "platform", "ndbus0", "region0"));
        var dax = Directory.CreateDirectory(Path.Combine(region.FullName, "dax0.0"));
        Directory.CreateDirectory(Path.Combine(region.FullName, "dax_region"));
        File.WriteAllText(Path.Combine(region.FullName, "dax_region", "align"), "2097152\n");
        File.WriteAllText(Path.Combine(dax.FullName, "size"), "1073741824\n");
        var daxClass = Directory.CreateDirectory(Path.Combine(root, "class", "dax"));
        File.CreateSymbolicLink(Path.Combine(dax.FullName, "subsystem"), daxClass.FullName);
        Directory.CreateDirectory(Path.Combine(root, "dev", "char"));
        File.CreateSymbolicLink(Path.Combine(root, "dev", "char", "1:3"), dax.FullName);
        var bus = Directory.CreateDirectory(Path.Combine(root, "bus", "nd", "devices", "region0"));
        _deepFlush = Path.Combine(bus.FullName, "deep_flush");
        File.WriteAllText(Path.Combine(bus.FullName, "numa_node"), "1\n");
        File.WriteAllText(Path.Combine(bus.FullName, "mappings"), "2\n");
        File.WriteAllText(Path.Combine(bus.FullName, "mapping0"), "nmem0,0,4294967296,0\n");
        File.WriteAllText(Path.Combine(bus.FullName, "mapping1"), "nmem1,0,4294967296,1\n");
        for (var i = 0; i < 2; i++)
        {
            var nfit = Directory.CreateDirectory(Path.Combine(root, "bus", "nd", "devices", $"nmem{i}", "nfit"));
            File.WriteAllText(Path.Combine(nfit.FullName, "dirty_shutdown"), $"{3 + i}\n");
            File.WriteAllText(Path.Combine(nfit.FullName, "id"), $"8089-a2-1837-0000000{i}\n");
        }

        DeviceDax.SysRoot = root;
    }

    public void Dispose()
    {
        DeviceDax.SysRoot = _previousRoot;
        _root.Dispose();
    }

    [Fact]
    public void CharacterDeviceWithDaxSubsystemIsADeviceDax()
    {
        using var src = Pmem2Source.Open("/dev/null");
        Assert.Equal(Pmem2SourceType.DeviceDax, src.Type);
        Assert.Equal(1UL << 30, src.GetSize());
        Assert.Equal(2UL << 20, src.GetAlignment());
    }

    [Fact]
    public void RegionFactsComeFromTheRegionAndItsDimms()
    {
        using var src = Pmem2Source.Open("/dev/null");
        Assert.Equal(1, src.GetNumaNode());
        Assert.Equal(7UL, src.GetDeviceUsc());
        Assert.Equal("8089-a2-1837-000000008089-a2-1837-00000001", src.GetDeviceId());

        File.Delete(Path.Combine(_root.Path, "bus", "nd", "devices", "nmem1", "nfit", "dirty_shutdown"));
        var e = T.Fails(Pmem2ErrorCode.NoSupp, () => src.GetDeviceUsc());
        Assert.Equal("Unsafe shutdown count is not supported for this source", e.Message);
        File.Delete(Path.Combine(_root.Path, "bus", "nd", "devices", "nmem0", "nfit", "id"));
        T.Fails(Pmem2ErrorCode.NoSupp, () => src.GetDeviceId());
    }

    [Fact]
    public void DeviceDaxMapRules()
    {
        using var src = Pmem2Source.Open("/dev/null");
        var e = T.Fails(Pmem2ErrorCode.OffsetUnaligned, () => Pmem2Map.Create(T.Config(offset: 4096), src));
        Assert.Equal("offset is not a multiple of 2097152", e.Message);
        e = T.Fails(Pmem2ErrorCode.SrcDevdaxPrivate, () => Pmem2Map.Create(T.Config(sharing: Pmem2Sharing.Private), src));
        Assert.Equal("device DAX does not support mapping with MAP_PRIVATE", e.Message);
        T.Fails(Pmem2ErrorCode.LengthUnaligned, () => Pmem2Map.Create(T.Config(length: 4096), src));
        // Validation passes; the kernel then refuses to mmap /dev/null (ENODEV), the placeholder is undone.
        e = T.Fails((Pmem2ErrorCode)(-19), () => Pmem2Map.Create(T.Config(length: 2 << 20), src));
        Assert.Equal("mmap: No such device", e.Message);
    }

    [Fact]
    public void UnreadableOrOddSysfsValuesAreReported()
    {
        File.WriteAllText(Path.Combine(_root.Path, "devices", "platform", "ndbus0", "region0", "dax0.0", "size"), "12abc\n");
        using var src = Pmem2Source.Open("/dev/null");
        T.Fails(Pmem2ErrorCode.InvalidSizeFormat, () => src.GetSize());
        File.WriteAllText(Path.Combine(_root.Path, "devices", "platform", "ndbus0", "region0", "dax_region", "align"), "3000\n");
        T.Fails(Pmem2ErrorCode.InvalidAlignmentValue, () => src.GetAlignment());
        File.WriteAllText(Path.Combine(_root.Path, "devices", "platform", "ndbus0", "region0", "dax_region", "align"), "200000\n");
        Assert.Equal(0x200000UL, src.GetAlignment()); // not a power of two in decimal: retried as hex
    }

    [Theory]
    [InlineData("x\n", 1, 1, "1\n")]
    [InlineData("0\n", 1, 0, "0\n")]
    public void RegionDeepFlushReadsThenWrites(string content, int reads, int writes, string after)
    {
        File.WriteAllText(_deepFlush, content);
        using var src = Pmem2Source.Open("/dev/null");
        using var counts = Pmem2Diagnostics.BeginCounting();
        DeviceDax.DeepFlushRegion(src.DeviceNumber);
        Assert.Equal((reads, writes), (counts.SysfsRead, counts.SysfsWrite));
        Assert.Equal(after, File.ReadAllText(_deepFlush));
    }

    [Fact]
    public void RegionDeepFlushSwallowsSysfsErrorsLikeLibpmem2()
    {
        // No deep_flush file: libpmem2 logs and returns 0 (issue #5992).
        using var src = Pmem2Source.Open("/dev/null");
        DeviceDax.DeepFlushRegion(src.DeviceNumber);
    }
}

/// <summary>The msync fallback used when executable memory for the flush routine is refused.</summary>
public class MsyncFallbackTests
{
    [Fact]
    public void MsyncFailureIsAnExceptionNotAnAbort()
    {
        // Nothing can ever be mapped at 0x1000 (below vm.mmap_min_addr): msync fails with ENOMEM.
        // libpmem2 would abort() the process here; we throw.
        var e = T.Fails((Pmem2ErrorCode)(-12), () => CpuFlush.MsyncFallback(0x1000, 4096));
        Assert.Equal("msync: Cannot allocate memory", e.Message);
        Assert.Equal(12, e.Errno);
    }

    [Fact]
    public void FallbackFlushWritesBackTheDirtyPages()
    {
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        map.GetSpan().Slice(4096, 128 << 10).Fill(0x77);
        Assert.True(PersistTests.DirtyKiB(map.Address) >= 128);
        using var counts = Pmem2Diagnostics.BeginCounting();
        CpuFlush.MsyncFallback(map.Address + 4096 + 5, (128 << 10) - 5);
        Assert.Equal(1, counts.Msync);
        Assert.Equal(0, PersistTests.DirtyKiB(map.Address));
    }
}
