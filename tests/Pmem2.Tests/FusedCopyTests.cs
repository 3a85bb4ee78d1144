using System.Diagnostics;
using Pmem2.Internal.Flush;
using Pmem2.Internal.Mem;

namespace Pmem2.Tests;

/// <summary>The AVX engine's fused temporal copy + flush loop (issue 15 item 3): its machine code,
/// and copies through a CACHE_LINE map that take it.</summary>
[Collection(EnvironmentCollection.Name)]
public sealed class FusedCopyTests
{
    [Theory]
    [InlineData(Pmem2FlushInstruction.Clwb, "clwb")]
    [InlineData(Pmem2FlushInstruction.Clflushopt, "clflushopt")]
    [InlineData(Pmem2FlushInstruction.Clflush, "clflush")]
    public void EmittedLoopDisassemblesToLoadsStoresFlushesAndALoop(Pmem2FlushInstruction instruction, string mnemonic)
    {
        var code = FusedCopy.Emit(instruction);
        var path = Path.Combine(Path.GetTempPath(), $"pmem2-fused-{Guid.NewGuid():N}.bin");
        File.WriteAllBytes(path, code);
        try
        {
            var psi = new ProcessStartInfo("objdump", ["-D", "--insn-width=16", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", path]) { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var text = p.StandardOutput.ReadToEnd();
            Assert.True(p.WaitForExit(30_000));
            var lines = text.Split('\n').Where(l => l.Contains(":\t", StringComparison.Ordinal)).Select(l => l.Split('\t').Last().Trim()).ToList();
            var copy = new List<string>();
            for (var k = 0; k < 8; k++)
            {
                copy.Add($"vmovdqu ymm{k},YMMWORD PTR [rsi+0x{32 * k:x}]");
            }

            for (var k = 0; k < 8; k++)
            {
                copy.Add($"vmovdqu YMMWORD PTR [rdi+0x{32 * k:x}],ymm{k}");
            }

            var flushPrevious = Enumerable.Range(0, 4).Select(line => $"{mnemonic} BYTE PTR [rdi-0x{256 - (64 * line):x}]").ToList();
            string[] advance = ["add    rsi,0x100", "add    rdi,0x100", "sub    rdx,0x100"];
            var expected = new List<string>();
            expected.AddRange(copy);
            expected.AddRange(advance);
            var loopAt = (16 * 8) + (3 * 7) + 6;
            expected.Add("je     0x" + (loopAt + (16 * 8) + (4 * FlushLength(mnemonic)) + (3 * 7) + 6).ToString("x", System.Globalization.CultureInfo.InvariantCulture));
            expected.AddRange(copy);
            expected.AddRange(flushPrevious);
            expected.AddRange(advance);
            expected.Add("jne    0x" + loopAt.ToString("x", System.Globalization.CultureInfo.InvariantCulture));
            expected.AddRange(flushPrevious);
            expected.AddRange(["vzeroupper", "ret"]);
            Assert.Equal(expected.Select(Normalize), lines.Select(Normalize));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TemporalCopiesToACacheLineMapTakeTheFusedLoopAndCopyExactly()
    {
        using var env = T.Env("PMEM2_FORCE_GRANULARITY", "CACHE_LINE");
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        Assert.Equal(Pmem2Granularity.CacheLine, map.StoreGranularity);
        var expectFused = FusedCopy.IsAvailable && MemOps.EngineName == "avx";
        var shadow = new byte[1 << 20];
        var rnd = new Random(3);
        rnd.NextBytes(shadow);
        map.Memcpy(0, shadow, Pmem2MemFlags.NonTemporal);
        var before = FusedCopy.t_fusedCopies;
        var count = 0;
        foreach (var len in new[] { 65, 100, 255, 256, 257, 511, 512, 1000, 4096, 4096 + 63, 65536 + 129 })
        {
            foreach (var dstOff in new[] { 0, 1, 63, 64, 100, 4095 })
            {
                var srcOff = (512 * 1024) + ((dstOff * 7) % 64);
                map.Memcpy((ulong)dstOff, (ulong)srcOff, (ulong)len, Pmem2MemFlags.Temporal);
                shadow.AsSpan(srcOff, len).CopyTo(shadow.AsSpan(dstOff));
                var data = new byte[Math.Min(4096 + 256, 1 << 20)];
                map.Read(0, data);
                Assert.True(data.AsSpan().SequenceEqual(shadow.AsSpan(0, data.Length)), $"copy ({dstOff}, {srcOff}, {len})");
                count++;
            }
        }

        var all = new byte[1 << 20];
        map.Read(0, all);
        Assert.True(all.AsSpan().SequenceEqual(shadow));
        Assert.Equal(expectFused ? count : 0, FusedCopy.t_fusedCopies - before);
    }

    /// <summary>Bytes of one flush instruction with a disp32 operand.</summary>
    private static int FlushLength(string mnemonic) => mnemonic == "clflush" ? 7 : 8;

    private static string Normalize(string s) => string.Join(' ', s.Split([' ', ','], StringSplitOptions.RemoveEmptyEntries)).Replace("+0x0]", "]", StringComparison.Ordinal);
}
