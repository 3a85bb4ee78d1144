using System.Runtime.InteropServices;

namespace Pmem2.Tests;

/// <summary>Port of src/test/pmem2_map and pmem2_integration (reference sections 2-3).</summary>
public class MapTests
{
    private const ulong Size16M = 16 * T.MiB;

    private static Pmem2Map Map(TempFile file, Pmem2Config cfg, FileAccess access = FileAccess.ReadWrite)
    {
        using var src = file.OpenSource(access);
        return Pmem2Map.Create(cfg, src);
    }

    [Fact]
    public void WholeFileMapsAtPageGranularityWithoutDax()
    {
        using var file = new TempFile((long)Size16M);
        using var map = Map(file, T.Config());
        Assert.Equal(Size16M, map.Size);
        Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);
        Assert.False(map.IsMapSync);
        Assert.Equal(0, map.Address % (nint)(2 * T.MiB));
        Assert.Equal((ulong)Size16M, map.Handle.ByteLength);
    }

    public static TheoryData<ulong, ulong, ulong> ValidRanges()
    {
        const ulong s2 = Size16M / 2 / 4096 * 4096;
        return new TheoryData<ulong, ulong, ulong>
        {
            { 0, 0, Size16M },
            { 0, Size16M, Size16M },
            { 0, s2, s2 },
            { 4096, s2, s2 },
            { 4096, 0, Size16M - 4096 },
            { 8 * T.MiB, 8 * T.MiB, 8 * T.MiB },
        };
    }

    [Theory]
    [MemberData(nameof(ValidRanges))]
    public void ValidRangesMapTheExpectedSize(ulong offset, ulong length, ulong expected)
    {
        using var file = new TempFile((long)Size16M);
        using var map = Map(file, T.Config(offset: offset, length: length));
        Assert.Equal(expected, map.Size);
    }

    public static TheoryData<ulong, ulong, int, string> InvalidRanges()
    {
        const ulong s2 = Size16M / 2 / 4096 * 4096;
        return new TheoryData<ulong, ulong, int, string>
        {
            { 1024, 0, (int)Pmem2ErrorCode.OffsetUnaligned, "offset is not a multiple of 4096" },
            { 0, 4097, (int)Pmem2ErrorCode.LengthUnaligned, "length is not a multiple of 4096" },
            { 0, 32 * T.MiB, (int)Pmem2ErrorCode.MapRange, "mapping larger than file size" },
            { 8 * T.MiB, 8 * T.MiB + 4096, (int)Pmem2ErrorCode.MapRange, "mapping larger than file size" },
            { 4096, ulong.MaxValue & ~4095UL, (int)Pmem2ErrorCode.MapRange, "overflow of offset and length" },
            { 32 * T.MiB, 0, (int)Pmem2ErrorCode.MapRange, "mapping larger than file size" },
            { s2 + (4 * T.MiB), s2, (int)Pmem2ErrorCode.MapRange, "mapping larger than file size" },
            { 2 * Size16M, 0, (int)Pmem2ErrorCode.MapRange, "mapping larger than file size" },
            // offset == size with length 0 passes validation with a content length of 0; mmap refuses it.
            { Size16M, 0, -22, "mmap: Invalid argument" },
        };
    }

    [Theory]
    [MemberData(nameof(InvalidRanges))]
    public void InvalidRangesFailWithLibpmem2sErrors(ulong offset, ulong length, int code, string message)
    {
        using var file = new TempFile((long)Size16M);
        var e = T.Fails((Pmem2ErrorCode)code, () => Map(file, T.Config(offset: offset, length: length)));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void GranularityMustBeSetFirst()
    {
        // Checked before anything else: even an empty file and an unaligned offset lose to it.
        using var file = new TempFile(0);
        var e = T.Fails(Pmem2ErrorCode.GranularityNotSet, () => Map(file, new Pmem2Config { Offset = 1 }));
        Assert.Equal("please define the max granularity requested for the mapping", e.Message);
    }

    [Fact]
    public void SmallUnalignedFileMapsWithLengthZeroOnly()
    {
        using var file = new TempFile(3 * (long)T.KiB);
        using (var map = Map(file, T.Config()))
        {
            Assert.Equal(3072UL, map.Size);
            map.GetSpan()[3071] = 7;
            map.Persist(0, map.Size);
        }

        T.Fails(Pmem2ErrorCode.LengthUnaligned, () => Map(file, T.Config(length: 3072)));
        Assert.Equal(7, File.ReadAllBytes(file.Path)[3071]);
    }

    [Fact]
    public void FileOfSixteenMiBMinusOneRefusesAlignedUpLength()
    {
        using var file = new TempFile((long)Size16M - 1);
        var e = T.Fails(Pmem2ErrorCode.MapRange, () => Map(file, T.Config(length: Size16M)));
        Assert.Equal("mapping larger than file size", e.Message);
        using var map = Map(file, T.Config());
        Assert.Equal(Size16M - 1, map.Size);
    }

    [Fact]
    public void EmptyFileIsSourceEmpty()
    {
        using var file = new TempFile(0);
        var e = T.Fails(Pmem2ErrorCode.SourceEmpty, () => Map(file, T.Config()));
        Assert.Equal("file length is equal 0", e.Message);
    }

    [Fact]
    public void ReadOnlyDescriptorSharedIsNoAccess()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        var e = T.Fails(Pmem2ErrorCode.NoAccess, () => Map(file, T.Config(), FileAccess.Read));
        Assert.Equal("mmap: Permission denied", e.Message);
    }

    [Fact]
    public void ReadOnlyDescriptorPrivateIsWritableAndLeavesTheFileUnchanged()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        File.WriteAllBytes(file.Path, Enumerable.Repeat((byte)0x11, 64 * 1024).ToArray());
        using (var map = Map(file, T.Config(sharing: Pmem2Sharing.Private), FileAccess.Read))
        {
            Assert.Equal(Pmem2Granularity.Byte, map.StoreGranularity);
            map.Memset(0, 0xEE, map.Size);
            map.Memcpy(100, [1, 2, 3]);
            map.Memmove(200, 100, 3);
            map.Persist(0, map.Size);
            map.DeepFlush(0, map.Size);
            Assert.Equal(0xEE, map.GetSpan()[0]);
            Assert.Equal(3, map.GetSpan()[202]);
        }

        Assert.All(File.ReadAllBytes(file.Path), b => Assert.Equal(0x11, b));
    }

    [Fact]
    public void SharedMapsSeeEachOthersWritesAndTheFileToo()
    {
        using var file = new TempFile(2 * (long)T.MiB);
        using var a = Map(file, T.Config());
        using var b = Map(file, T.Config());
        Assert.NotEqual(a.Address, b.Address);
        a.Memcpy(4096, "hello"u8);
        var read = new byte[5];
        b.Read(4096, read);
        Assert.Equal("hello"u8.ToArray(), read);
        using var fs = new FileStream(file.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        fs.Position = 4096;
        fs.ReadExactly(read);
        Assert.Equal("hello"u8.ToArray(), read);
    }

    [Fact]
    public void PrivateMapIsIsolatedFromSharedMapsAndFromReopening()
    {
        using var file = new TempFile(2 * (long)T.MiB);
        using var shared = Map(file, T.Config());
        using (var priv = Map(file, T.Config(sharing: Pmem2Sharing.Private)))
        {
            priv.Memset(0, 0x5A, 4096);
            Assert.Equal(0, shared.GetSpan()[0]);
        }

        using var again = Map(file, T.Config(sharing: Pmem2Sharing.Private));
        Assert.Equal(0, again.GetSpan()[0]);
    }

    [Fact]
    public void SmallMapsArePageAlignedLargeOnes2MiBAligned()
    {
        using var small = new TempFile(16 * (long)T.KiB);
        using var smallMap = Map(small, T.Config());
        Assert.Equal(0, smallMap.Address % 4096);
        // libpmem2 aligns every map to 2 MiB (probe: a 64 KiB map was 2 MiB-aligned).
        Assert.Equal(0, smallMap.Address % (nint)(2 * T.MiB));

        using var big = new TempFile((long)Size16M);
        using var bigMap = Map(big, T.Config());
        Assert.Equal(0, bigMap.Address % (nint)(2 * T.MiB));
    }

    [Fact]
    public void MapsOfTwoGiBOrMoreAreOneGiBAligned()
    {
        // Anonymous memory is not committed until touched, so this costs only address space.
        using var src = Pmem2Source.FromAnonymous(4UL << 30);
        using var map = Pmem2Map.Create(T.Config(), src);
        Assert.Equal(0, map.Address % (1L << 30));
        Assert.Equal(4UL << 30, map.Size);
        Assert.Throws<InvalidOperationException>(() => map.GetSpan());
        Assert.Equal(16, map.GetSpan((3UL << 30) + 5, 16).Length);
    }

    [Fact]
    public void ClosedDescriptorAtMapTimeIsInvalidFileHandle()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        var handle = file.OpenHandle();
        using var src = Pmem2Source.FromHandle(handle);
        handle.Dispose();
        var e = T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Map.Create(T.Config(), src));
        Assert.Equal("fstat: Bad file descriptor", e.Message);
    }

    [Fact]
    public void MapOutlivesItsSourceAndDescriptor()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        Pmem2Map map;
        using (var src = file.OpenSource())
        {
            map = Pmem2Map.Create(T.Config(), src);
        }

        using (map)
        {
            map.Memcpy(0, "after close"u8);
            map.Persist(0, 11);
        }

        Assert.Equal("after close"u8.ToArray(), File.ReadAllBytes(file.Path)[..11]);
    }

    [Fact]
    public void ConfigCanBeReusedAcrossMapsAndSources()
    {
        using var f1 = new TempFile(64 * (long)T.KiB);
        using var f2 = new TempFile(128 * (long)T.KiB);
        var cfg = T.Config();
        using var m1 = Map(f1, cfg);
        using var m2 = Map(f1, cfg);
        using var m3 = Map(f2, cfg);
        Assert.Equal(64 * T.KiB, m1.Size);
        Assert.Equal(64 * T.KiB, m2.Size);
        Assert.Equal(128 * T.KiB, m3.Size);
    }

    [Fact]
    public void EveryPageAlignedWindowSeesTheSameBytesAsTheBaseMap()
    {
        const int size = 64 * 1024;
        using var file = new TempFile(size);
        var content = new byte[size];
        new Random(42).NextBytes(content);
        File.WriteAllBytes(file.Path, content);
        using var src = file.OpenSource();
        for (ulong off = 0; off < size; off += 4096 * 3)
        {
            for (ulong len = 4096; off + len <= size; len += 4096 * 5)
            {
                using var map = Pmem2Map.Create(T.Config(offset: off, length: len), src);
                Assert.True(map.GetSpan().SequenceEqual(content.AsSpan((int)off, (int)len)));
            }
        }

        T.Fails(Pmem2ErrorCode.LengthUnaligned, () => Pmem2Map.Create(T.Config(length: size - 4096 - 1), src));
        T.Fails(Pmem2ErrorCode.OffsetUnaligned, () => Pmem2Map.Create(T.Config(offset: 4095), src));
    }

    [Theory]
    [InlineData(Pmem2Sharing.Private, Pmem2Granularity.Byte)]
    [InlineData(Pmem2Sharing.Shared, Pmem2Granularity.Byte)]
    [InlineData(Pmem2Sharing.Shared, Pmem2Granularity.Page)]
    public void AnonymousMapsAreByteGranularityAndIgnoreTheOffset(Pmem2Sharing sharing, Pmem2Granularity requested)
    {
        using var src = Pmem2Source.FromAnonymous(1 << 20);
        using var map = Pmem2Map.Create(T.Config(requested, offset: 4096, length: 0, sharing: sharing), src);
        Assert.Equal(1UL << 20, map.Size);
        Assert.Equal(Pmem2Granularity.Byte, map.StoreGranularity);
        Assert.All(map.GetSpan().ToArray(), b => Assert.Equal(0, b));
        var e = T.Fails(Pmem2ErrorCode.NoSupp, () => map.DeepFlush(0, map.Size));
        Assert.Equal("Anonymous source does not support deep flush", e.Message);
    }

    [Fact]
    public void AnonymousLengthRules()
    {
        using var src = Pmem2Source.FromAnonymous(1 << 30);
        using (var whole = Pmem2Map.Create(T.Config(), src))
        {
            Assert.Equal(1UL << 30, whole.Size);
        }

        using (var part = Pmem2Map.Create(T.Config(length: 1 << 20), src))
        {
            Assert.Equal(1UL << 20, part.Size);
        }

        T.Fails(Pmem2ErrorCode.LengthUnaligned, () => Pmem2Map.Create(T.Config(length: 1024), src));
        using var empty = Pmem2Source.FromAnonymous(0);
        T.Fails(Pmem2ErrorCode.SourceEmpty, () => Pmem2Map.Create(T.Config(), empty));
    }

    [Fact]
    public void ProtectionReadOnlyMapsAndRefusesNothingAtMapTime()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        File.WriteAllBytes(file.Path, Enumerable.Repeat((byte)9, 64 * 1024).ToArray());
        var cfg = T.Config();
        cfg.Protection = Pmem2Protection.Read;
        using var src = file.OpenSource(FileAccess.Read);
        using var map = Pmem2Map.Create(cfg, src);
        var b = new byte[1];
        map.Read(100, b);
        Assert.Equal(9, b[0]);
        cfg.Protection = Pmem2Protection.None;
        using var none = Pmem2Map.Create(cfg, src);
        Assert.Equal(64 * T.KiB, none.Size);
    }

    [Fact]
    public void OutOfRangeAccessIsRefusedBeforeTouchingMemory()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        using var map = Map(file, T.Config());
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memcpy(map.Size - 2, "abc"u8));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memset(ulong.MaxValue, 0, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memmove(0, map.Size, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Persist(1, map.Size));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Read(map.Size, new byte[1]));
        map.Persist(map.Size, 0);
    }

    [Fact]
    public void HandleIsASafeBufferOverTheContent()
    {
        using var file = new TempFile(64 * (long)T.KiB);
        using var map = Map(file, T.Config());
        map.Handle.Write(10, 0xABCDu);
        Assert.Equal(0xCD, map.GetSpan()[10]);
        Assert.Throws<ArgumentException>(() => map.Handle.Read<int>(map.Size - 2));
        Assert.Equal(map.Address, map.Handle.DangerousGetHandle());
        Assert.True(Marshal.SizeOf<nint>() == 8);
    }
}
