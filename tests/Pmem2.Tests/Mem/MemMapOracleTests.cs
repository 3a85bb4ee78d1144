using System.Runtime.InteropServices;
using Pmem2.Oracle;

namespace Pmem2.Tests.Mem;

/// <summary>
/// End to end on real files, with native libpmem2 as the oracle: the same sequence of memcpy,
/// memmove (overlapping both ways) and memset calls, with every flag set, through our public
/// Pmem2Map API on one file and through native libpmem2's memcpy_fn/memmove_fn/memset_fn on another
/// file with the same initial contents; pread of both files must agree after each flag set. Runs at
/// the true PAGE granularity and at forced CACHE_LINE and BYTE (PMEM2_FORCE_GRANULARITY, seen by both).
/// </summary>
[Collection(EnvironmentCollection.Name)]
public class MemMapOracleTests
{
    private const int FileSize = 64 * 1024;
    private const uint ReadWrite = (1u << 30) | (1u << 31);

    [Theory]
    [InlineData(null)]
    [InlineData("CACHE_LINE")]
    [InlineData("BYTE")]
    public void SameBytesAsNativeLibpmem2(string? forced)
    {
        Assert.True(NativePmem2.IsAvailable, "libpmem2.so.1 is not installed (apt-get install libpmem2)");
        var initial = new byte[FileSize];
        new Random(5).NextBytes(initial);
        using var oursFile = new TempFile(FileSize);
        using var nativeFile = new TempFile(FileSize);
        File.WriteAllBytes(oursFile.Path, initial);
        File.WriteAllBytes(nativeFile.Path, initial);

        using var oursFd = oursFile.OpenHandle();
        using var nativeFd = nativeFile.OpenHandle();
        Pmem2Map ours;
        NativeMap? native;
        using (T.Env("PMEM2_FORCE_GRANULARITY", forced))
        {
            using var src = Pmem2Source.FromHandle(oursFd);
            ours = Pmem2Map.Create(T.Config(Pmem2Granularity.Page), src);
            Assert.Equal(0, NativeMap.TryCreate((int)nativeFd.DangerousGetHandle(), 2, 0, 0, 0, ReadWrite, out native));
        }

        using (ours)
        using (native)
        {
            Assert.NotNull(native);
            Assert.Equal((int)ours.StoreGranularity, native.Granularity);
            Assert.Equal(forced switch { "CACHE_LINE" => Pmem2Granularity.CacheLine, "BYTE" => Pmem2Granularity.Byte, _ => Pmem2Granularity.Page }, ours.StoreGranularity);

            var source = GC.AllocateUninitializedArray<byte>(16384, pinned: true);
            new Random(6).NextBytes(source);
            nint srcAddr = Marshal.UnsafeAddrOfPinnedArrayElement(source, 0);
            nint nbase = native.Address;

            foreach (var flags in MemMatrix.FlagSets)
            {
                var f = (Pmem2MemFlags)flags;
                foreach (var (dstOff, srcOff, len) in new[] { (0, 0, 4096), (7, 0, 4096), (7, 9, 4096), (0, 9, 4096), (4096 * 3 + 13, 1, 255), (40000, 3, 8), (45000, 0, 16384 - 64) })
                {
                    ours.Memcpy((ulong)dstOff, source.AsSpan(srcOff, len), f);
                    native.Memcpy(nbase + dstOff, srcAddr + srcOff, (nuint)len, flags);
                }

                foreach (var (d, s, len) in new[] { (100, 123, 4096), (20000 + 33, 20000, 2048), (30000, 30063, 4), (8 + 2, 8, 8), (60000, 1000, 5000) })
                {
                    ours.Memmove((ulong)d, (ulong)s, (ulong)len, f);
                    native.Memmove(nbase + d, nbase + s, (nuint)len, flags);
                }

                foreach (var (off, len) in new[] { (0, 8), (13, 4096), (12345, 300), (65536 - 1000, 1000) })
                {
                    ours.Memset((ulong)off, (byte)(flags + 1), (ulong)len, f);
                    native.Memset(nbase + off, (int)flags + 1, (nuint)len, flags);
                }

                var a = new byte[FileSize];
                var b = new byte[FileSize];
                Assert.Equal(FileSize, RandomAccess.Read(oursFd, a, 0));
                Assert.Equal(FileSize, RandomAccess.Read(nativeFd, b, 0));
                MemPortTests.AssertEqual(b, a, $"file contents after flags={flags} granularity={ours.StoreGranularity}");
            }
        }
    }
}
