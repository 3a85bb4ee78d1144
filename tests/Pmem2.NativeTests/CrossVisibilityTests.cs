using System.Runtime.InteropServices;
using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// The same file mapped SHARED by native libpmem2 and by ours at once: bytes written through one
/// (memcpy / memmove / memset with every flag set, plain stores + persist) are read back through the
/// other's address, then from the file itself with pread after both maps are gone. PRIVATE maps on
/// either side stay invisible to the other and to the file.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class CrossVisibilityTests
{
    private const ulong FileSize = 2 << 20;

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public CrossVisibilityTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    public static TheoryData<string> Modes() => ["PAGE", "CACHE_LINE", "BYTE"];

    [Theory]
    [MemberData(nameof(Modes))]
    public void WritesThroughOneMappingAreSeenThroughTheOther(string modeName)
    {
        var mode = MemMode.All.Single(m => m.Name.StartsWith(modeName, StringComparison.Ordinal));
        var path = _files.NewPath("cross");
        var initial = MemCases.Pattern(FileSize, 77);
        File.WriteAllBytes(path, initial);
        var model = new ModelSide((byte[])initial.Clone());
        var failures = new List<string>();
        var checks = 0;
        try
        {
            using (ForceGranularity.Set(mode.Force))
            using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite))
            {
                Assert.Equal(0, NativeMap.TryCreate((int)handle.DangerousGetHandle(), mode.Requested, 0, 0, Raw.Shared, Raw.RW, out var nativeMap));
                using (nativeMap)
                using (var source = Pmem2Source.FromHandle(handle))
                using (var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = (Pmem2Granularity)mode.Requested }, source))
                {
                    Assert.Equal(mode.Expected, nativeMap!.Granularity);
                    Assert.Equal(mode.Expected, (int)map.StoreGranularity);
                    Assert.NotEqual(nativeMap.Address, map.Address);
                    var native = new NativeSideMem(nativeMap, failures);
                    var ours = new OursSideMem(map);

                    // Ours writes, native reads (first MiB); native writes, ours reads (second MiB).
                    foreach (var (writer, reader, area) in new (IMemSide, IMemSide, ulong)[] { (ours, native, 0), (native, ours, FileSize / 2) })
                    {
                        var i = 0;
                        foreach (var f in MemCases.FlagSets)
                        {
                            var baseOff = area + ((ulong)i * 48 * 1024);
                            var data = MemCases.Pattern(1000 + ((ulong)i * 321), i + (int)area);
                            var ops = new MemOp[]
                            {
                                new CopyInOp(baseOff + 7, data, f),
                                new MemsetOp(baseOff + 8192 + 3, (byte)(0x10 + i), 4096 + 61, f),
                                new MemmoveOp(baseOff + 16384 + 1, baseOff + 7, (ulong)data.Length, f), // disjoint
                                new MemmoveOp(baseOff + 9, baseOff + 7, 777, f), // overlapping, backward
                                new MemcpyOp(baseOff + 24576, baseOff + 8192, 4096, f),
                                new WriteOp(baseOff + 32768 + 5, data),
                            };
                            foreach (var op in ops)
                            {
                                op.Apply(model);
                                op.Apply(writer);
                                var (off, len) = Range(op);
                                if ((f & (Pmem2MemFlags.NoFlush | Pmem2MemFlags.NoDrain)) != 0 || op is WriteOp)
                                {
                                    writer.Persist(off, len);
                                }

                                checks++;
                                var expected = new byte[len];
                                var seen = new byte[len];
                                model.Read(off, expected, (int)len);
                                reader.Read(off, seen, (int)len);
                                if (!expected.AsSpan().SequenceEqual(seen))
                                {
                                    failures.Add($"[{mode.Name}] {MemCases.Describe(op)} written by {writer.Name}: {reader.Name} sees different bytes at offset {off + (ulong)expected.AsSpan().CommonPrefixLength(seen)}");
                                }
                            }

                            i++;
                        }
                    }
                }
            }

            // Both maps are gone: the file (pread) holds every write of both sides.
            var file = File.ReadAllBytes(path);
            checks++;
            if (!file.AsSpan().SequenceEqual(model.Bytes))
            {
                failures.Add($"[{mode.Name}] file after unmapping differs from the expected bytes at offset {file.AsSpan().CommonPrefixLength(model.Bytes)}");
            }
        }
        finally
        {
            File.Delete(path);
        }

        _output.WriteLine($"{mode.Name}: {checks} cross-visibility checks, {failures.Count} failures");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(checks >= 120, $"only {checks} checks");
    }

    /// <summary>A PRIVATE map on either side is invisible to the other side's SHARED map and to the file.</summary>
    [Fact]
    public void PrivateMappingsStayPrivateOnBothSides()
    {
        var path = _files.NewPath("private");
        var initial = MemCases.Pattern(1 << 20, 5);
        File.WriteAllBytes(path, initial);
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            var fd = (int)handle.DangerousGetHandle();
            using var source = Pmem2Source.FromHandle(handle);

            // Ours PRIVATE, native SHARED.
            Assert.Equal(0, NativeMap.TryCreate(fd, Raw.Page, 0, 0, Raw.Shared, Raw.RW, out var nativeShared));
            using (nativeShared)
            using (var oursPrivate = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Sharing = Pmem2Sharing.Private }, source))
            {
                Assert.Equal(Pmem2Granularity.Byte, oursPrivate.StoreGranularity);
                oursPrivate.Memset(4096, 0xAB, 8192);
                oursPrivate.Memcpy(65536, new byte[] { 1, 2, 3, 4, 5 });
                oursPrivate.Persist(0, oursPrivate.Size);
                var seen = new byte[8192];
                Marshal.Copy(nativeShared!.Address + 4096, seen, 0, seen.Length);
                Assert.Equal(initial.AsSpan(4096, 8192).ToArray(), seen);
                Assert.Equal(0xAB, oursPrivate.GetSpan()[4096]);
            }

            // Native PRIVATE, ours SHARED.
            Assert.Equal(0, NativeMap.TryCreate(fd, Raw.Page, 0, 0, Raw.Private, Raw.RW, out var nativePrivate));
            using (nativePrivate)
            using (var oursShared = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, source))
            {
                Assert.Equal(Raw.Byte, nativePrivate!.Granularity);
                nativePrivate.Memset(nativePrivate.Address + 4096, 0xCD, 8192, 0);
                nativePrivate.Persist(nativePrivate.Address, nativePrivate.Size);
                var seen = new byte[8192];
                oursShared.Read(4096, seen);
                Assert.Equal(initial.AsSpan(4096, 8192).ToArray(), seen);
            }

            Assert.Equal(initial, File.ReadAllBytes(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static (ulong Off, ulong Len) Range(MemOp op) => op switch
    {
        CopyInOp c => (c.Dst, (ulong)c.Data.Length),
        MemsetOp s => (s.Dst, s.Len),
        MemmoveOp m => (m.Dst, m.Len),
        MemcpyOp m => (m.Dst, m.Len),
        WriteOp w => (w.Off, (ulong)w.Data.Length),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };
}
