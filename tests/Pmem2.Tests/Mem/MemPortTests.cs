using Pmem2.Internal.Mem;

namespace Pmem2.Tests.Mem;

/// <summary>
/// Ports of libpmem2's pmem2_memcpy, pmem2_memmove, pmem2_memset and pmem2_movnt tests, run for
/// every engine (forced in-process) and every flag set of memmove_common.c, in non-eADR
/// (CACHE_LINE/PAGE) and eADR (BYTE) dispatch.
/// </summary>
public class MemPortTests
{
    private static readonly bool[] s_eadrModes = [false, true];

    // ---------------------------------------------------------------------------------------
    // pmem2_memcpy: (dst_off, src_off, len)
    // ---------------------------------------------------------------------------------------

    private static readonly (int DstOff, int SrcOff, int Len)[] s_memcpyCases =
        [(0, 0, 4096), (7, 0, 4096), (7, 9, 4096), (0, 9, 4096)];

    [Theory]
    [MemberData(nameof(MemMatrix.EngineFlags), MemberType = typeof(MemMatrix))]
    public void Memcpy(string engine, uint flags) => RunMemcpy(engine, flags);

    [Avx512Theory]
    [MemberData(nameof(MemMatrix.Avx512Flags), MemberType = typeof(MemMatrix))]
    public void Memcpy_Avx512F(string engine, uint flags) => RunMemcpy(engine, flags);

    private static void RunMemcpy(string engine, uint flags)
    {
        var run = new EngineRunner(engine);
        const int Region = 8192;
        var buf = new PinnedBuffer(2 * Region);
        var shadow = new byte[2 * Region];
        var rnd = new Random(1234);
        foreach (var eadr in s_eadrModes)
        {
            foreach (var (dstOff, srcOff, len) in s_memcpyCases)
            {
                rnd.NextBytes(buf.Span);
                buf.Span.CopyTo(shadow);
                nint dst = buf.Address;
                nint src = buf.Address + Region;

                // copy onto itself: no-op
                run.Move(dst + dstOff, dst + dstOff, len, flags, eadr);
                Assert.True(buf.Span.SequenceEqual(shadow), "copy onto itself changed memory");

                // len 0: no-op
                run.Move(dst + dstOff, src + srcOff, 0, flags, eadr);
                Assert.True(buf.Span.SequenceEqual(shadow), "len 0 changed memory");

                run.Move(dst + dstOff, src + srcOff, len, flags, eadr);
                shadow.AsSpan(Region + srcOff, len).CopyTo(shadow.AsSpan(dstOff));
                AssertEqual(shadow, buf.Span, $"memcpy {engine} flags={flags} eadr={eadr} ({dstOff},{srcOff},{len})");
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // pmem2_memmove: b: bytes, d: dst offset, s: src offset, o:1 same buffer
    // ---------------------------------------------------------------------------------------

    private static readonly (int Bytes, int DstOff, int SrcOff, bool SameBuffer)[] s_memmoveCases =
    [
        (4096, 0, 0, false), (4096, 7, 0, false), (4096, 7, 9, false), (4096, 0, 9, false),
        (4096, 0, 23, true), (2048, 33, 0, true), (4, 63, 0, false), (8, 2, 0, true), (8, 0, 0, false),
    ];

    [Theory]
    [MemberData(nameof(MemMatrix.EngineFlags), MemberType = typeof(MemMatrix))]
    public void Memmove(string engine, uint flags) => RunMemmove(engine, flags);

    [Avx512Theory]
    [MemberData(nameof(MemMatrix.Avx512Flags), MemberType = typeof(MemMatrix))]
    public void Memmove_Avx512F(string engine, uint flags) => RunMemmove(engine, flags);

    private static void RunMemmove(string engine, uint flags)
    {
        var run = new EngineRunner(engine);
        const int Half = 16384; // "src = dst + mapped_len / 2"
        var buf = new PinnedBuffer(2 * Half);
        var shadow = new byte[2 * Half];
        foreach (var eadr in s_eadrModes)
        {
            foreach (var (bytes, dstOff, srcOff, same) in s_memmoveCases)
            {
                // o:0 runs src above dst, then dst above src; o:1 uses one buffer for both.
                (int Dst, int Src)[] layouts = same ? [(0, 0)] : [(0, Half), (Half, 0)];
                foreach (var (dstBase, srcBase) in layouts)
                {
                    var span = buf.Span;
                    span.Fill(0);
                    span.Slice(srcBase, bytes).Fill(0x11);
                    if (!same)
                    {
                        span.Slice(dstBase, bytes).Fill(0x22);
                    }

                    span.Slice(srcBase, bytes / 4).Fill(0x33);
                    span.Slice(srcBase + (bytes / 4), bytes / 4).Fill(0x44);
                    span.CopyTo(shadow);

                    nint dst = buf.Address + dstBase;
                    nint src = buf.Address + srcBase;
                    run.Move(dst + dstOff, dst + dstOff, bytes / 2, flags, eadr);
                    Assert.True(buf.Span.SequenceEqual(shadow), "dest == src changed memory");
                    run.Move(dst + dstOff, src + srcOff, 0, flags, eadr);
                    Assert.True(buf.Span.SequenceEqual(shadow), "len 0 changed memory");

                    run.Move(dst + dstOff, src + srcOff, bytes / 2, flags, eadr);
                    shadow.AsSpan(srcBase + srcOff, bytes / 2).CopyTo(shadow.AsSpan(dstBase + dstOff));
                    AssertEqual(shadow, buf.Span, $"memmove {engine} flags={flags} eadr={eadr} b:{bytes} d:{dstOff} s:{srcOff} o:{(same ? 1 : 0)} dst@{dstBase}");
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // pmem2_memset: (offset, length)
    // ---------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(MemMatrix.EngineFlags), MemberType = typeof(MemMatrix))]
    public void Memset(string engine, uint flags) => RunMemset(engine, flags);

    [Avx512Theory]
    [MemberData(nameof(MemMatrix.Avx512Flags), MemberType = typeof(MemMatrix))]
    public void Memset_Avx512F(string engine, uint flags) => RunMemset(engine, flags);

    private static void RunMemset(string engine, uint flags)
    {
        var run = new EngineRunner(engine);
        var buf = new PinnedBuffer(8192);
        var shadow = new byte[8192];
        foreach (var eadr in s_eadrModes)
        {
            foreach (var (off, len) in new[] { (0, 8), (13, 4096) })
            {
                buf.Span.Fill(0x00);
                buf.Span.CopyTo(shadow);
                run.Set(buf.Address + off, 0x5A, 0, flags, eadr);
                Assert.True(buf.Span.SequenceEqual(shadow), "len 0 changed memory");
                run.Set(buf.Address + off, 0x5A, len, flags, eadr);
                shadow.AsSpan(off, len).Fill(0x5A);
                AssertEqual(shadow, buf.Span, $"memset {engine} flags={flags} eadr={eadr} ({off},{len})");
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // pmem2_movnt: sizes 1, 2, 4 ... 4096 with NODRAIN; dst[size] untouched
    // ---------------------------------------------------------------------------------------

    /// <summary>Thresholds of the movnt test: default, 1024, 5 and -15 (negative: ignored).</summary>
    private static readonly string?[] s_movntThresholds = [null, "1024", "5", "-15"];

    [Theory]
    [MemberData(nameof(MemMatrix.EngineIds), MemberType = typeof(MemMatrix))]
    public void Movnt(string engine) => RunMovnt(engine);

    [Avx512Theory]
    [InlineData("avx512f")]
    public void Movnt_Avx512F(string engine) => RunMovnt(engine);

    private static void RunMovnt(string engine)
    {
        var run = new EngineRunner(engine);
        const int Max = 4096;
        var dstBuf = new PinnedBuffer((2 * Max) + 128);
        var srcBuf = new PinnedBuffer((2 * Max) + 128);
        var rnd = new Random(7);
        foreach (var thrText in s_movntThresholds)
        {
            nuint threshold = MemConfig.ParseThreshold(thrText);
            foreach (var eadr in s_eadrModes)
            {
                for (int size = 1; size <= Max; size *= 2)
                {
                    rnd.NextBytes(srcBuf.Span);
                    var dst = dstBuf.Span;

                    // memcpy
                    dst.Fill(0xEE);
                    run.Move(dstBuf.Address + 64, srcBuf.Address + 64, size, (uint)Pmem2MemFlags.NoDrain, eadr, threshold);
                    Assert.True(dst.Slice(64, size).SequenceEqual(srcBuf.Span.Slice(64, size)), $"memcpy size {size} thr {thrText}");
                    Assert.Equal(0xEE, dst[64 + size]);
                    Assert.Equal(0xEE, dst[63]);

                    // memmove, overlapping backward (dst above src by half the size)
                    int shift = Math.Max(1, size / 2);
                    srcBuf.Span.CopyTo(dst);
                    var expected = dst.ToArray();
                    expected.AsSpan(64, size).CopyTo(expected.AsSpan(64 + shift));
                    run.Move(dstBuf.Address + 64 + shift, dstBuf.Address + 64, size, (uint)Pmem2MemFlags.NoDrain, eadr, threshold);
                    Assert.True(dst.SequenceEqual(expected), $"memmove size {size} thr {thrText}");

                    // memset
                    dst.Fill(0xEE);
                    run.Set(dstBuf.Address + 64, 0x3C, size, (uint)Pmem2MemFlags.NoDrain, eadr, threshold);
                    Assert.True(dst.Slice(64, size).IndexOfAnyExcept((byte)0x3C) < 0, $"memset size {size} thr {thrText}");
                    Assert.Equal(0xEE, dst[64 + size]);
                    Assert.Equal(0xEE, dst[63]);
                }
            }
        }
    }

    internal static void AssertEqual(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, string what)
    {
        if (expected.SequenceEqual(actual))
        {
            return;
        }

        int i = expected.CommonPrefixLength(actual);
        Assert.Fail($"{what}: first difference at byte {i}: expected 0x{expected[i]:X2}, got 0x{actual[i]:X2}");
    }
}
