using Pmem2.Internal.Mem;

namespace Pmem2.Tests.Mem;

/// <summary>
/// Port of pmem2_movnt_align: N = 2 pages; for s in 0..63 the cases (0,0,N−s), (s,0,N−s),
/// (s,s,N−2s) for memcpy (C), memmove forward (F) and backward (B), and memset (S); bytes outside
/// the range must stay unchanged. Thresholds 0 and 99999 (the default 256 is covered by the other ports), for every engine,
/// every flag set, non-eADR and eADR dispatch.
/// </summary>
public class MovntAlignTests
{
    private const int N = 2 * 4096;
    private const int Guard = 128;

    private static readonly nuint[] s_thresholds = [0, 99999];

    [Theory]
    [MemberData(nameof(MemMatrix.EngineFlags), MemberType = typeof(MemMatrix))]
    public void MovntAlign(string engine, uint flags) => Run(engine, flags);

    [Avx512Theory]
    [MemberData(nameof(MemMatrix.Avx512Flags), MemberType = typeof(MemMatrix))]
    public void MovntAlign_Avx512F(string engine, uint flags) => Run(engine, flags);

    private static void Run(string engine, uint flags)
    {
        var run = new EngineRunner(engine);

        // [guard][dst N][guard][src N][guard]; memmove F/B work inside [guard][N + 64][guard].
        const int Size = Guard + N + Guard + N + Guard;
        var buf = new PinnedBuffer(Size);
        var pattern = new byte[Size];
        new Random(99).NextBytes(pattern);
        var shadow = new byte[Size];
        int dstBase = Guard;
        int srcBase = Guard + N + Guard;

        foreach (var eadr in new[] { false, true })
        {
            foreach (var threshold in s_thresholds)
            {
                for (int s = 0; s < 64; s++)
                {
                    foreach (var (doff, soff, len) in new[] { (0, 0, N - s), (s, 0, N - s), (s, s, N - (2 * s)) })
                    {
                        string what = $"{engine} flags={flags} eadr={eadr} thr={threshold} ({doff},{soff},{len})";

                        // C: memcpy between the two regions
                        Reset(buf, pattern, shadow);
                        run.Move(buf.Address + dstBase + doff, buf.Address + srcBase + soff, len, flags, eadr, threshold);
                        shadow.AsSpan(srcBase + soff, len).CopyTo(shadow.AsSpan(dstBase + doff));
                        MemPortTests.AssertEqual(shadow, buf.Span, "C " + what);

                        // F: memmove forward — src 64 bytes above dst, overlapping
                        Reset(buf, pattern, shadow);
                        run.Move(buf.Address + dstBase + doff, buf.Address + dstBase + 64 + soff, len, flags, eadr, threshold);
                        shadow.AsSpan(dstBase + 64 + soff, len).CopyTo(shadow.AsSpan(dstBase + doff));
                        MemPortTests.AssertEqual(shadow, buf.Span, "F " + what);

                        // B: memmove backward — dst 64 bytes above src, overlapping
                        Reset(buf, pattern, shadow);
                        run.Move(buf.Address + dstBase + 64 + doff, buf.Address + dstBase + soff, len, flags, eadr, threshold);
                        shadow.AsSpan(dstBase + soff, len).CopyTo(shadow.AsSpan(dstBase + 64 + doff));
                        MemPortTests.AssertEqual(shadow, buf.Span, "B " + what);

                        // S: memset
                        Reset(buf, pattern, shadow);
                        run.Set(buf.Address + dstBase + doff, (byte)(s + 1), len, flags, eadr, threshold);
                        shadow.AsSpan(dstBase + doff, len).Fill((byte)(s + 1));
                        MemPortTests.AssertEqual(shadow, buf.Span, "S " + what);
                    }
                }
            }
        }
    }

    private static void Reset(PinnedBuffer buf, byte[] pattern, byte[] shadow)
    {
        pattern.CopyTo(buf.Span);
        pattern.CopyTo(shadow.AsSpan());
    }
}
