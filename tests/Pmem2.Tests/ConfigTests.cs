namespace Pmem2.Tests;

/// <summary>Port of src/test/pmem2_config.</summary>
public class ConfigTests
{
    [Fact]
    public void DefaultsMatchPmem2ConfigInit()
    {
        var cfg = new Pmem2Config();
        Assert.Null(cfg.RequiredStoreGranularity);
        Assert.Equal(0UL, cfg.Offset);
        Assert.Equal(0UL, cfg.Length);
        Assert.Equal(Pmem2Sharing.Shared, cfg.Sharing);
        Assert.Equal(Pmem2Protection.Read | Pmem2Protection.Write, cfg.Protection);
    }

    [Theory]
    [InlineData(Pmem2Granularity.Byte)]
    [InlineData(Pmem2Granularity.CacheLine)]
    [InlineData(Pmem2Granularity.Page)]
    public void GranularitySticks(Pmem2Granularity g)
    {
        var cfg = new Pmem2Config { RequiredStoreGranularity = g };
        Assert.Equal(g, cfg.RequiredStoreGranularity);
    }

    [Fact]
    public void InvalidGranularityIsRefusedAndOldValueKept()
    {
        var cfg = new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Byte };
        var e = T.Fails(Pmem2ErrorCode.GranularityNotSupported, () => cfg.RequiredStoreGranularity = (Pmem2Granularity)999);
        Assert.Equal("unknown granularity value 999", e.Message);
        Assert.Equal(Pmem2Granularity.Byte, cfg.RequiredStoreGranularity);
    }

    [Fact]
    public void OffsetAboveInt64MaxIsRefusedAndOldValueKept()
    {
        var cfg = new Pmem2Config { Offset = 4096 };
        var e = T.Fails(Pmem2ErrorCode.OffsetOutOfRange, () => cfg.Offset = (ulong)long.MaxValue + 1);
        Assert.Equal("offset is greater than INT64_MAX", e.Message);
        Assert.Equal(4096UL, cfg.Offset);
    }

    [Fact]
    public void LargestAlignedOffsetAndAnyLengthAreAccepted()
    {
        var cfg = new Pmem2Config();
        var largest = (ulong)long.MaxValue / 4096 * 4096;
        cfg.Offset = largest;
        Assert.Equal(largest, cfg.Offset);
        cfg.Offset = (ulong)long.MaxValue;
        Assert.Equal((ulong)long.MaxValue, cfg.Offset);
        cfg.Length = 4096;
        Assert.Equal(4096UL, cfg.Length);
        cfg.Length = ulong.MaxValue; // validated only at map time
        Assert.Equal(ulong.MaxValue, cfg.Length);
    }

    [Fact]
    public void SharingPrivateSticksAndInvalidIsRefused()
    {
        var cfg = new Pmem2Config { Sharing = Pmem2Sharing.Private };
        Assert.Equal(Pmem2Sharing.Private, cfg.Sharing);
        var e = T.Fails(Pmem2ErrorCode.InvalidSharingValue, () => cfg.Sharing = (Pmem2Sharing)777);
        Assert.Equal("unknown sharing value 777", e.Message);
        Assert.Equal(Pmem2Sharing.Private, cfg.Sharing);
    }

    [Theory]
    [InlineData(Pmem2Protection.Read)]
    [InlineData(Pmem2Protection.Write)]
    [InlineData(Pmem2Protection.Exec)]
    [InlineData(Pmem2Protection.None)]
    [InlineData(Pmem2Protection.Read | Pmem2Protection.Write | Pmem2Protection.Exec)]
    public void ValidProtectionSticks(Pmem2Protection prot)
    {
        var cfg = new Pmem2Config { Protection = prot };
        Assert.Equal(prot, cfg.Protection);
    }

    [Fact]
    public void RawProtWriteIsRefusedAndReadWriteKept()
    {
        var cfg = new Pmem2Config();
        var e = T.Fails(Pmem2ErrorCode.InvalidProtFlag, () => cfg.Protection = (Pmem2Protection)2);
        Assert.Equal("invalid flag 2", e.Message);
        Assert.Equal(Pmem2Protection.Read | Pmem2Protection.Write, cfg.Protection);
    }

    [Fact]
    public void ErrorCodesHaveLibpmem2Values()
    {
        Assert.Equal(-100000, (int)Pmem2ErrorCode.Unknown);
        Assert.Equal(-100009, (int)Pmem2ErrorCode.GranularityNotSupported);
        Assert.Equal(-100024, (int)Pmem2ErrorCode.DeepFlushRange);
        Assert.Equal(-100034, (int)Pmem2ErrorCode.MapExists);
        Assert.Equal(-100037, (int)Pmem2ErrorCode.IoFail);
        var errno = new Pmem2Exception((Pmem2ErrorCode)(-22), "mmap: Invalid argument");
        Assert.Equal(22, errno.Errno);
        Assert.Equal(-22, errno.HResult);
        Assert.Equal(0, new Pmem2Exception(Pmem2ErrorCode.MapRange, "x").Errno);
    }
}
