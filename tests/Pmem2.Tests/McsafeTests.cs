namespace Pmem2.Tests;

/// <summary>Port of the mcsafe cases of src/test/pmem2_source (regular files).</summary>
public class McsafeTests
{
    [Fact]
    public void WriteThenMapSeesTheBytesAndReadBackMatches()
    {
        using var file = new TempFile(8192);
        using var src = file.OpenSource();
        var data = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray();
        src.PwriteMcsafe(data, 1000);
        using (var map = Pmem2Map.Create(T.Config(), src))
        {
            Assert.True(map.GetSpan().Slice(1000, 5000).SequenceEqual(data));
        }

        var back = new byte[5000];
        src.PreadMcsafe(back, 1000);
        Assert.Equal(data, back);
        src.PreadMcsafe(new byte[8192], 0);
        src.PreadMcsafe([], 8192);
    }

    [Fact]
    public void RangesBeyondTheEndAreLengthOutOfRange()
    {
        using var file = new TempFile(8192);
        using var src = file.OpenSource();
        var e = T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PreadMcsafe(new byte[8193], 0));
        Assert.Equal("size of read 8193 from offset 0 goes beyond the file length 8192", e.Message); // libpmem2's text
        T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PwriteMcsafe(new byte[8193], 0));
        // libpmem2 prints the remainder size - offset (unsigned) as "the file length".
        e = T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PwriteMcsafe(new byte[4096], 8000));
        Assert.Equal("size of read 4096 from offset 8000 goes beyond the file length 192", e.Message);
        e = T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PreadMcsafe(new byte[1], 8192));
        Assert.Equal("size of read 1 from offset 8192 goes beyond the file length 0", e.Message);
        e = T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PreadMcsafe(new byte[10000], ulong.MaxValue));
        Assert.Equal("size of read 10000 from offset 18446744073709551615 goes beyond the file length 8193", e.Message);
        // An offset past the end that fits the wrapped-around remainder: libpmem2 lets it through, ours refuses.
        e = T.Fails(Pmem2ErrorCode.LengthOutOfRange, () => src.PreadMcsafe(new byte[10], 9000));
        Assert.Equal("offset 9000 goes beyond the file length 8192", e.Message);
        Assert.Equal(8192L, new FileInfo(file.Path).Length);
    }

    [Fact]
    public void AnonymousSourceIsNotSupported()
    {
        using var src = Pmem2Source.FromAnonymous(4096);
        var e = T.Fails(Pmem2ErrorCode.SourceTypeNotSupported, () => src.PreadMcsafe(new byte[10], 0));
        Assert.Equal("operation doesn't support provided source type, only sources created from file descriptor or file handle are supported", e.Message);
        T.Fails(Pmem2ErrorCode.SourceTypeNotSupported, () => src.PwriteMcsafe(new byte[10], 0));
    }

    [Fact]
    public void ReadOnlySourceCannotWrite()
    {
        using var file = new TempFile(8192);
        using var src = file.OpenSource(FileAccess.Read);
        var e = T.Fails((Pmem2ErrorCode)(-9), () => src.PwriteMcsafe(new byte[10], 0));
        Assert.Equal("pwrite: Bad file descriptor", e.Message);
    }
}
