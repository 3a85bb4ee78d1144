using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// pmem2_deep_flush: range validation and per-granularity result (PAGE no-op, CACHE_LINE / BYTE msync on a
/// regular file, NOSUPP on anonymous memory) against native over a grid of (offset, length) pairs.
/// Codes only: native's DEEP_FLUSH_RANGE message prints pointers (of the map structure), which cannot match.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class DeepFlushTests
{
    private const ulong MapLength = 64 * 1024;

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public DeepFlushTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    [Fact]
    public void DeepFlushRangesAndResultsMatchNative()
    {
        var differ = new Differ("deep flush");
        var byDesign = new List<string>();
        var file = _files[16 * OracleFiles.MiB];
        const ulong size = MapLength;
        ulong[] offsets = [0, 1, 1024, 4096, size / 2, size - 1, size, size + 1, 2 * size, unchecked(0UL - 4096), unchecked(0UL - 1)];
        ulong[] lengths = [0, 1, 64, 4096, size / 2, size - 1, size, size + 1, 2 * size, ulong.MaxValue - 4095, ulong.MaxValue];
        var modes = new (string Name, string? Force, int Sharing, bool Anonymous)[]
        {
            ("PAGE", null, Raw.Shared, false),
            ("CACHE_LINE (forced)", "CACHE_LINE", Raw.Shared, false),
            ("BYTE (forced)", "BYTE", Raw.Shared, false),
            ("PRIVATE (BYTE)", null, Raw.Private, false),
            ("anonymous (BYTE)", null, Raw.Shared, true),
        };

        using var force = ForceGranularity.Set(null);
        foreach (var mode in modes)
        {
            ForceGranularity.Change(mode.Force);
            nint nsrc;
            if (mode.Anonymous)
            {
                Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out nsrc, (nuint)size));
            }
            else
            {
                Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out nsrc, file.Fd(false)));
            }

            try
            {
                Assert.Equal(0, NativeMap.TryCreate(nsrc, Raw.Page, 0, size, mode.Sharing, Raw.RW, out var nativeMap));
                using (nativeMap)
                using (var source = mode.Anonymous ? Pmem2Source.FromAnonymous(size) : Pmem2Source.FromHandle(file.ReadWrite))
                using (var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Length = size, Sharing = (Pmem2Sharing)mode.Sharing }, source))
                {
                    Assert.Equal(nativeMap!.Granularity, (int)map.StoreGranularity);
                    foreach (var off in offsets)
                    {
                        foreach (var len in lengths)
                        {
                            var label = $"[{mode.Name}] deep_flush(addr+{Raw.Size(off)}, {Raw.Size(len)})";
                            var rc = NativePmem2.pmem2_deep_flush(nativeMap.Handle, unchecked(nativeMap.Address + (nint)off), (nuint)len);
                            var native = rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, null);
                            var ours = OursSide.Run(() =>
                            {
                                map.DeepFlush(off, len);
                                return Outcome.Ok();
                            });

                            // libpmem2 computes ptr + size without an overflow check, so a range that wraps
                            // around the address space passes its range check; ours rejects it.
                            var wraps = unchecked((ulong)nativeMap.Address + off + len) < unchecked((ulong)nativeMap.Address + off);
                            if (wraps && ours.Code == (int)Pmem2ErrorCode.DeepFlushRange && native.Code != ours.Code)
                            {
                                byDesign.Add($"{label}: native {native}, ours {ours}");
                                continue;
                            }

                            differ.Compare(label, native, ours, compareMessages: false);
                        }
                    }
                }
            }
            finally
            {
                NativePmem2.pmem2_source_delete(ref nsrc);
            }
        }

        _output.WriteLine($"by-design differences (wrap-around ranges): {byDesign.Count}");
        foreach (var d in byDesign.Take(10))
        {
            _output.WriteLine("  " + d);
        }

        differ.AssertClean(_output, minimumCases: 400);
    }
}
