using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Mem;

namespace Pmem2.Tests.Mem;

/// <summary>
/// pmem2_mem_ext-style checks through the internal trace hook: which variant (t/nt, flush kind)
/// runs per flag set and size, where the sfence goes, that temporal stores are flushed in non-eADR
/// mode, and that every store is at least 8 bytes wide for 8-aligned destinations and lengths.
/// </summary>
public class MemExtTests
{
    private const Pmem2MemFlags NT = Pmem2MemFlags.NonTemporal;
    private const Pmem2MemFlags T = Pmem2MemFlags.Temporal;
    private const Pmem2MemFlags ND = Pmem2MemFlags.NoDrain;

    /// <summary>Expected variant at 128 and 1024 bytes (mem_ext TESTS.py and reference §5).</summary>
    private static readonly (Pmem2MemFlags Flags, MemPath At128, MemPath At1024, MemPath Eadr)[] s_table =
    [
        (0, MemPath.TemporalFlush, MemPath.NonTemporalFlush, MemPath.TemporalEmpty),
        (ND, MemPath.TemporalFlush, MemPath.NonTemporalFlush, MemPath.TemporalEmpty),
        (NT, MemPath.NonTemporalFlush, MemPath.NonTemporalFlush, MemPath.NonTemporalEmpty),
        (T, MemPath.TemporalFlush, MemPath.TemporalFlush, MemPath.TemporalEmpty),
        (NT | T, MemPath.NonTemporalFlush, MemPath.NonTemporalFlush, MemPath.NonTemporalEmpty),
        (NT | ND, MemPath.NonTemporalFlush, MemPath.NonTemporalFlush, MemPath.NonTemporalEmpty),
        (Pmem2MemFlags.WriteCombining, MemPath.NonTemporalFlush, MemPath.NonTemporalFlush, MemPath.TemporalEmpty),
        (Pmem2MemFlags.WriteBack, MemPath.TemporalFlush, MemPath.TemporalFlush, MemPath.TemporalEmpty),
        (Pmem2MemFlags.NoFlush, MemPath.TemporalNoFlush, MemPath.TemporalNoFlush, MemPath.TemporalNoFlush),
        ((Pmem2MemFlags)63, MemPath.TemporalNoFlush, MemPath.TemporalNoFlush, MemPath.TemporalNoFlush),
    ];

    [Theory]
    [MemberData(nameof(MemMatrix.EngineIds), MemberType = typeof(MemMatrix))]
    public void VariantPerFlagAndSize(string engineId) => RunVariants(engineId);

    [Avx512Theory]
    [InlineData("avx512f")]
    public void VariantPerFlagAndSize_Avx512F(string engineId) => RunVariants(engineId);

    private static void RunVariants(string engineId)
    {
        var engine = MemTestAccess.Find(engineId);
        var dst = new PinnedBuffer(4096);
        var src = new PinnedBuffer(4096);
        var rec = MemTrace.Begin();
        try
        {
            foreach (var (flags, at128, at1024, atEadr) in s_table)
            {
                foreach (var eadr in new[] { false, true })
                {
                    foreach (var fenceAfterNt in new[] { false, true })
                    {
                        foreach (var len in new[] { 128, 1024 })
                        {
                            var expected = eadr ? atEadr : len == 128 ? at128 : at1024;
                            if (!engine.HasNonTemporal)
                            {
                                // generic / libc: no NT variant; temporal with the same flush kind.
                                expected = expected switch
                                {
                                    MemPath.NonTemporalFlush => MemPath.TemporalFlush,
                                    MemPath.NonTemporalEmpty => MemPath.TemporalEmpty,
                                    _ => expected,
                                };
                            }

                            for (int op = 0; op < 2; op++)
                            {
                                rec.Clear();
                                nint d = dst.Address + 3;
                                if (op == 0)
                                {
                                    MemTestAccess.Memmove(engine, 256, d, src.Address + 5, (nuint)len, flags, eadr, fenceAfterNt);
                                }
                                else
                                {
                                    MemTestAccess.Memset(engine, 256, d, 0x77, (nuint)len, flags, eadr, fenceAfterNt);
                                }

                                string what = $"{engineId} {(op == 0 ? "memmove" : "memset")} flags={flags} len={len} eadr={eadr} fenceAfterNt={fenceAfterNt}";
                                Assert.True(rec.Paths.Count == 1, what);
                                Assert.True(expected == rec.Paths[0].Path, $"{what}: expected {expected}, got {rec.Paths[0].Path}");
                                AssertFlushAndFence(rec, expected, d, len, fenceAfterNt, what);
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            MemTrace.End();
        }
    }

    private static void AssertFlushAndFence(MemTraceRecorder rec, MemPath path, nint d, int len, bool fenceAfterNt, string what)
    {
        switch (path)
        {
            case MemPath.TemporalNoFlush:
            case MemPath.TemporalEmpty:
                Assert.True(rec.Flushes.Count == 0, $"{what}: {path} must not flush");
                Assert.True(rec.Fences == 0, $"{what}: {path} must not fence");
                break;
            case MemPath.TemporalFlush:
                AssertCovered(rec, d, len, what);
                Assert.True(rec.Fences == 0, $"{what}: temporal copy must leave the fence to the drain");
                break;
            case MemPath.NonTemporalFlush:
                Assert.True(rec.Fences == (fenceAfterNt ? 1 : 0), $"{what}: sfence after NT stores only for CLFLUSH/msync kinds");
                break;
            case MemPath.NonTemporalEmpty:
                Assert.True(rec.Flushes.Count == 0, $"{what}: eADR NT must not flush");
                Assert.True(rec.Fences == 1, $"{what}: eADR NT must sfence");
                break;
        }
    }

    /// <summary>Every byte of [start, start+len) lies in a recorded flush, and no flush leaves it.</summary>
    private static void AssertCovered(MemTraceRecorder rec, nint start, int len, string what)
    {
        if (len == 0)
        {
            return;
        }

        var covered = new bool[len];
        foreach (var (addr, n) in rec.Flushes)
        {
            if (addr < start || addr + (nint)n > start + len)
            {
                Assert.Fail($"{what}: flush [{addr - start}, +{n}) leaves the stored range");
            }

            for (nint i = addr - start; i < addr - start + (nint)n; i++)
            {
                covered[i] = true;
            }
        }

        int hole = Array.IndexOf(covered, false);
        Assert.True(hole < 0, $"{what}: byte {hole} stored with temporal stores is not flushed");
    }

    [Fact]
    public void ThresholdDecidesBetweenTemporalAndNonTemporal()
    {
        var engine = MemTestAccess.Find(MemMatrix.Engines.First());
        var buf = new PinnedBuffer(16384);
        var rec = MemTrace.Begin();
        try
        {
            foreach (var (threshold, len, expected) in new (nuint, int, MemPath)[]
            {
                (256, 255, MemPath.TemporalFlush), (256, 256, MemPath.NonTemporalFlush),
                (0, 1, MemPath.NonTemporalFlush), (1024, 1023, MemPath.TemporalFlush),
                (1024, 1024, MemPath.NonTemporalFlush), (5, 4, MemPath.TemporalFlush), (5, 5, MemPath.NonTemporalFlush),
                (99999, 8000, MemPath.TemporalFlush),
            })
            {
                rec.Clear();
                MemTestAccess.Memmove(engine, threshold, buf.Address, buf.Address + 8192, (nuint)len, 0, false, false);
                Assert.Equal(expected, rec.Paths.Single().Path);
            }

            // len 0 and dst == src return before any dispatch
            rec.Clear();
            MemTestAccess.Memmove(engine, 256, buf.Address, buf.Address + 64, 0, 0, false, false);
            MemTestAccess.Memmove(engine, 256, buf.Address, buf.Address, 4096, 0, false, false);
            MemTestAccess.Memset(engine, 256, buf.Address, 1, 0, 0, false, false);
            Assert.Empty(rec.Paths);
            Assert.Empty(rec.Flushes);
        }
        finally
        {
            MemTrace.End();
        }
    }

    [Fact]
    public void StartupEntryPointsUseTheStartupEngineAndThreshold()
    {
        var buf = new PinnedBuffer(8192);
        var rec = MemTrace.Begin();
        try
        {
            int below = (int)Math.Min(MemOps.MovntThreshold, 4096) - 1;
            MemTestAccess.MemmoveNodrain(buf.Address, buf.Address + 4096, 4096, 0, false, false);
            MemTestAccess.MemsetNodrain(buf.Address, 9, 4096, Pmem2MemFlags.NoFlush, false, false);
            Assert.Equal(MemOps.Engine.HasNonTemporal && MemOps.MovntThreshold <= 4096 ? MemPath.NonTemporalFlush : MemPath.TemporalFlush, rec.Paths[0].Path);
            Assert.Equal(MemPath.TemporalNoFlush, rec.Paths[1].Path);
            Assert.True(buf.Span[..4096].IndexOfAnyExcept((byte)9) < 0);
            if (below > 0)
            {
                rec.Clear();
                MemTestAccess.MemmoveNodrain(buf.Address + 1, buf.Address + 4096, (nuint)below, 0, false, false);
                Assert.Equal(MemPath.TemporalFlush, rec.Paths.Single().Path);
            }
        }
        finally
        {
            MemTrace.End();
        }
    }

    // ---------------------------------------------------------------------------------------
    // flush coverage of temporal stores (non-eADR)
    // ---------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(MemMatrix.EngineIds), MemberType = typeof(MemMatrix))]
    public void TemporalStoresAreFlushed(string engineId) => RunFlushCoverage(engineId);

    [Avx512Theory]
    [InlineData("avx512f")]
    public void TemporalStoresAreFlushed_Avx512F(string engineId) => RunFlushCoverage(engineId);

    private static void RunFlushCoverage(string engineId)
    {
        var engine = MemTestAccess.Find(engineId);
        var buf = new PinnedBuffer(16384);
        int[] lens = [.. Enumerable.Range(1, 300), 511, 1000, 1024, 2047, 4096 + 13, 5000];
        var rec = MemTrace.Begin();
        try
        {
            foreach (int len in lens)
            {
                for (int off = 0; off < 64; off += len > 300 ? 7 : 1)
                {
                    foreach (var flags in new[] { T, NT })
                    {
                        nint lo = buf.Address + 128 + off;
                        nint hi = buf.Address + 128 + 64 + 5000 + off;

                        // memmove forward (dst below src), backward (dst above src, overlapping), memset
                        for (int op = 0; op < 3; op++)
                        {
                            rec.Clear();
                            nint d = op == 1 ? lo + 40 : lo;
                            nint s = op == 0 ? hi : lo;
                            if (op == 2)
                            {
                                MemTestAccess.Memset(engine, 256, d, 0xA5, (nuint)len, flags, false, false);
                            }
                            else
                            {
                                MemTestAccess.Memmove(engine, 256, d, s, (nuint)len, flags, false, false);
                            }

                            string what = FormattableString.Invariant($"{engineId} op={op} flags={flags} off={off} len={len}");
                            var path = rec.Paths.Single().Path;
                            if (path == MemPath.TemporalFlush)
                            {
                                AssertCovered(rec, d, len, what);
                            }
                            else
                            {
                                Assert.Equal(MemPath.NonTemporalFlush, path);
                                AssertNtPiecesCovered(rec, d, len, backward: op == 1 && len > 40, what);
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            MemTrace.End();
        }
    }

    /// <summary>NT copy: the unaligned head and a tail that is not exactly 4/8/16/32 bytes are stored
    /// with temporal stores and must be flushed; the rest is NT and must not be.</summary>
    private static void AssertNtPiecesCovered(MemTraceRecorder rec, nint d, int len, bool backward, string what)
    {
        var expected = new bool[len];
        long start = d;
        long end = d + len;
        int head;
        int tail;
        if (!backward)
        {
            head = (int)Math.Min((64 - (start & 63)) & 63, len);
            tail = (len - head) & 63;
            Mark(expected, 0, head);
            if (tail is not (0 or 4 or 8 or 16 or 32))
            {
                Mark(expected, len - tail, tail);
            }
        }
        else
        {
            head = (int)Math.Min(end & 63, len);
            tail = (len - head) & 63;
            Mark(expected, len - head, head);
            if (tail is not (0 or 4 or 8 or 16 or 32))
            {
                Mark(expected, 0, tail);
            }
        }

        var covered = new bool[len];
        foreach (var (addr, n) in rec.Flushes)
        {
            if (addr < d || addr + (nint)n > d + len)
            {
                Assert.Fail($"{what}: flush leaves the stored range");
            }

            Mark(covered, (int)(addr - d), (int)n);
        }

        for (int i = 0; i < len; i++)
        {
            if (expected[i] && !covered[i])
            {
                Assert.Fail($"{what}: temporal byte {i} not flushed");
            }
        }
    }

    private static void Mark(bool[] a, int from, int count) => a.AsSpan(from, count).Fill(true);

    // ---------------------------------------------------------------------------------------
    // "every store at least 8 bytes wide when dst and len are 8-byte aligned"
    // ---------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(MemMatrix.EngineIds), MemberType = typeof(MemMatrix))]
    public void AlignedDestinationAndLengthUseOnlyWideStores(string engineId) => RunWideStores(engineId);

    [Avx512Theory]
    [InlineData("avx512f")]
    public void AlignedDestinationAndLengthUseOnlyWideStores_Avx512F(string engineId) => RunWideStores(engineId);

    private static void RunWideStores(string engineId)
    {
        var engine = MemTestAccess.Find(engineId);
        if (engine.Name == "libc")
        {
            // The libc engine is the runtime's memmove/memset (PMEM_NO_GENERIC_MEMCPY); its store
            // widths are not ours to trace, as with libc in libpmem2.
            return;
        }

        var buf = new PinnedBuffer(16384);
        var rec = MemTrace.Begin();
        try
        {
            foreach (var flags in MemMatrix.FlagSets)
            {
                foreach (var eadr in new[] { false, true })
                {
                    for (int len = 8; len <= 1024; len += 8)
                    {
                        foreach (int dOff in new[] { 0, 8, 24, 56 })
                        {
                            rec.Clear();
                            nint d = buf.Address + 64 + dOff;
                            MemTestAccess.Memmove(engine, 256, d, buf.Address + 8192 + 3, (nuint)len, (Pmem2MemFlags)flags, eadr, false);
                            MemTestAccess.Memmove(engine, 256, d + 8, d, (nuint)len, (Pmem2MemFlags)flags, eadr, false);
                            MemTestAccess.Memmove(engine, 256, d, d + 16, (nuint)len, (Pmem2MemFlags)flags, eadr, false);
                            MemTestAccess.Memset(engine, 256, d, 0x5A, (nuint)len, (Pmem2MemFlags)flags, eadr, false);
                            Assert.True(rec.NarrowStores == 0, $"{engineId} flags={flags} eadr={eadr} len={len} dOff={dOff}: {rec.NarrowStores} stores narrower than 8 bytes");
                        }
                    }
                }
            }

            // The hook sees narrow stores where they are unavoidable (unaligned destination or length).
            rec.Clear();
            MemTestAccess.Memmove(engine, 256, buf.Address + 64, buf.Address + 8192, 7, Pmem2MemFlags.Temporal, false, false);
            MemTestAccess.Memset(engine, 256, buf.Address + 67, 1, 5, Pmem2MemFlags.Temporal, false, false);
            Assert.True(rec.NarrowStores >= 2, $"{engineId}: trace hook did not observe narrow stores");
        }
        finally
        {
            MemTrace.End();
        }
    }

    // ---------------------------------------------------------------------------------------
    // start-up configuration (PMEM_* variables)
    // ---------------------------------------------------------------------------------------

    private static MemEngine Select(params (string Name, string Value)[] vars)
    {
        var env = vars.ToDictionary(v => v.Name, v => v.Value);
        return MemConfig.SelectEngine(n => env.TryGetValue(n, out var v) ? v : null);
    }

    [Fact]
    public void EngineSelectionHonoursEnvironment()
    {
        string best = Avx512F.IsSupported ? "avx512f" : Avx.IsSupported ? "avx" : "sse2";
        Assert.Equal(best, Select().Name);
        Assert.Equal("generic", Select(("PMEM_NO_MOVNT", "1")).Name);
        Assert.Equal("libc", Select(("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "1")).Name);
        Assert.Equal("libc", Select(("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "2x")).Name);
        Assert.Equal("generic", Select(("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "0")).Name);
        Assert.Equal("generic", Select(("PMEM_NO_MOVNT", "1"), ("PMEM_NO_GENERIC_MEMCPY", "abc")).Name);
        Assert.Equal(best, Select(("PMEM_NO_MOVNT", "yes")).Name); // exactly "1" only
        Assert.Equal(best, Select(("PMEM_NO_GENERIC_MEMCPY", "1")).Name); // needs NO_MOVNT
        Assert.Equal("sse2", Select(("PMEM_AVX512F", "0"), ("PMEM_AVX", "0")).Name);
        if (!Avx512F.IsSupported)
        {
            Assert.Equal("sse2", Select(("PMEM_AVX", "0")).Name);
        }

        if (Avx.IsSupported)
        {
            Assert.Equal("avx", Select(("PMEM_AVX512F", "0")).Name);
            Assert.Equal("avx", Select(("PMEM_AVX512F", "0"), ("PMEM_AVX", "false")).Name); // exactly "0" only
        }

        // WC workaround: default only on GenuineIntel; "1"/"0" force it; AVX-512F never uses it.
        var wcDefault = Select(("PMEM_AVX512F", "0"));
        Assert.Equal(MemConfig.IsGenuineIntel(), wcDefault.WcBarrier);
        Assert.True(Select(("PMEM_AVX512F", "0"), ("PMEM_WC_WORKAROUND", "1")).WcBarrier);
        Assert.False(Select(("PMEM_AVX512F", "0"), ("PMEM_WC_WORKAROUND", "0")).WcBarrier);
        Assert.False(MemEngine.Avx512F().WcBarrier);
    }

    [Fact]
    public void StartupEngineMatchesProcessEnvironment()
    {
        Assert.Equal(MemConfig.SelectEngine(Environment.GetEnvironmentVariable).Name, MemOps.EngineName);
        Assert.Equal(MemConfig.ParseThreshold(Environment.GetEnvironmentVariable("PMEM_MOVNT_THRESHOLD")), MemOps.MovntThreshold);
        Assert.Contains(MemOps.EngineName, new[] { "avx512f", "avx", "sse2", "generic", "libc" });
    }

    [Theory]
    [InlineData(null, 256UL)]
    [InlineData("1024", 1024UL)]
    [InlineData("5", 5UL)]
    [InlineData("-15", 256UL)]
    [InlineData("0", 0UL)]
    [InlineData("  12abc", 12UL)]
    [InlineData("abc", 0UL)]
    [InlineData("+7", 7UL)]
    [InlineData("99999999999999999999999", 9223372036854775807UL)]
    public void MovntThresholdParsesLikeAtoll(string? value, ulong expected) =>
        Assert.Equal((nuint)expected, MemConfig.ParseThreshold(value));
}
