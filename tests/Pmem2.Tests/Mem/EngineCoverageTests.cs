using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Mem;
using Xunit.Abstractions;

namespace Pmem2.Tests.Mem;

/// <summary>
/// Says which copy engines the engine tests exercised on this machine (the line .ci/run prints from
/// the TRX: "copy engines exercised: ..."). The AVX-512F engine runs natively only where the CPU has
/// AVX-512F; its loops always run over the SSE2 model of its registers ("avx512f-model"), which
/// joins every engine theory (MemMatrix.Engines) on every machine.
/// </summary>
public sealed class EngineCoverageTests(ITestOutputHelper output)
{
    [Fact]
    public void ReportsTheEnginesExercised()
    {
        var exercised = MemMatrix.Engines.ToList();
        if (Avx512F.IsSupported)
        {
            exercised.Insert(0, "avx512f");
        }

        var skipped = MemTestAccess.AllEngines.Select(e => e.ToString()).Except(exercised).ToList();
        output.WriteLine($"copy engines exercised: {string.Join(", ", exercised)}; not supported by this CPU: {(skipped.Count == 0 ? "none" : string.Join(", ", skipped))}");
        Assert.Contains("avx512f-model", exercised);
        Assert.Contains("sse2", exercised);
        Assert.Equal(Avx512F.IsSupported, exercised.Contains("avx512f"));
    }

    /// <summary>A copy through the model's engine (whose 64-byte non-temporal stores refuse a misaligned
    /// address, as vmovntdq zmm would fault) equals the same copy through the SSE2 engine, for random
    /// head/tail alignments, lengths and every flag set.</summary>
    [Fact]
    public void ModelEngineMatchesTheSse2EngineByteForByte()
    {
        var model = new EngineRunner("avx512f-model");
        var sse2 = new EngineRunner("sse2");
        var a = new PinnedBuffer(3 * 4096);
        var b = new PinnedBuffer(3 * 4096);
        var rnd = new Random(15);
        foreach (var flags in MemMatrix.FlagSets)
        {
            for (var i = 0; i < 64; i++)
            {
                var dstOff = rnd.Next(0, 128);
                var srcOff = 4096 + rnd.Next(0, 128);
                var len = rnd.Next(0, 3000);
                rnd.NextBytes(a.Span);
                a.Span.CopyTo(b.Span);
                model.Move(a.Address + dstOff, a.Address + srcOff, len, flags, eadr: false);
                sse2.Move(b.Address + dstOff, b.Address + srcOff, len, flags, eadr: false);
                Assert.True(a.Span.SequenceEqual(b.Span), $"flags {flags} ({dstOff}, {srcOff}, {len})");
            }
        }
    }
}
