using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Flush;
using Pmem2.Internal.Interop;

namespace Pmem2.Tests;

/// <summary>The emitted flush routines (machine code, W^X page) and libpmem2's instruction choice.</summary>
public class CpuFlushTests
{
    [Fact]
    public void ClwbLoopBytesAreExact()
    {
        byte[] expected =
        [
            0x48, 0x8D, 0x34, 0x37, // lea rsi, [rdi+rsi]
            0x48, 0x83, 0xE7, 0xC0, // and rdi, -64
            0x48, 0x39, 0xF7,       // cmp rdi, rsi
            0x73, 0x0D,             // jae +13 -> ret
            0x66, 0x0F, 0xAE, 0x37, // clwb [rdi]
            0x48, 0x83, 0xC7, 0x40, // add rdi, 64
            0x48, 0x39, 0xF7,       // cmp rdi, rsi
            0x72, 0xF3,             // jb -13 -> clwb
            0xC3,                   // ret
        ];
        Assert.Equal(expected, CpuFlush.EmitFlushLoop(Pmem2FlushInstruction.Clwb));
        var clflush = CpuFlush.EmitFlushLoop(Pmem2FlushInstruction.Clflush);
        Assert.Equal(new byte[] { 0x73, 0x0C }, clflush[11..13]);
        Assert.Equal(new byte[] { 0x0F, 0xAE, 0x3F }, clflush[13..16]);
        Assert.Equal(new byte[] { 0x72, 0xF4, 0xC3 }, clflush[^3..]);
        Assert.Equal(new byte[] { 0x66, 0x0F, 0xAE, 0x3F }, CpuFlush.EmitFlushLoop(Pmem2FlushInstruction.Clflushopt)[13..17]);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuFlush.EmitFlushLoop(Pmem2FlushInstruction.Msync));
    }

    [Theory]
    [InlineData(true, true, true, null, null, Pmem2FlushInstruction.Clwb)]
    [InlineData(true, true, true, "1", null, Pmem2FlushInstruction.Clflushopt)]
    [InlineData(true, true, true, "1", "1", Pmem2FlushInstruction.Clflush)]
    [InlineData(true, true, true, "0", "1", Pmem2FlushInstruction.Clwb)]
    [InlineData(true, true, true, "yes", null, Pmem2FlushInstruction.Clwb)]
    [InlineData(true, true, false, null, null, Pmem2FlushInstruction.Clflushopt)]
    [InlineData(true, false, false, null, null, Pmem2FlushInstruction.Clflush)]
    [InlineData(false, false, false, null, null, Pmem2FlushInstruction.Msync)]
    public void InstructionChoiceFollowsLibpmem2(bool clflush, bool opt, bool clwb, string? noClwb, string? noOpt, Pmem2FlushInstruction expected) =>
        Assert.Equal(expected, CpuFlush.Select(clflush, opt, clwb, noClwb, noOpt));

    [Fact]
    public void PlatformReportsTheCpuidChoice()
    {
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        var (_, _, _, edx1) = X86Base.CpuId(1, 0);
        var expected = CpuFlush.Select((edx1 & (1 << 19)) != 0, (ebx7 & (1 << 23)) != 0, (ebx7 & (1 << 24)) != 0,
            Environment.GetEnvironmentVariable("PMEM_NO_CLWB"), Environment.GetEnvironmentVariable("PMEM_NO_CLFLUSHOPT"));
        Assert.Equal(expected, Pmem2Platform.FlushInstruction);
        Assert.Null(Pmem2Platform.FlushFallbackReason);
    }

    public static TheoryData<Pmem2FlushInstruction> SupportedInstructions()
    {
        var data = new TheoryData<Pmem2FlushInstruction>();
        var (_, ebx7, _, _) = X86Base.CpuId(7, 0);
        var (_, _, _, edx1) = X86Base.CpuId(1, 0);
        if ((edx1 & (1 << 19)) != 0)
        {
            data.Add(Pmem2FlushInstruction.Clflush);
        }

        if ((ebx7 & (1 << 23)) != 0)
        {
            data.Add(Pmem2FlushInstruction.Clflushopt);
        }

        if ((ebx7 & (1 << 24)) != 0)
        {
            data.Add(Pmem2FlushInstruction.Clwb);
        }

        return data;
    }

    /// <summary>
    /// Runs each routine up to the edge of a PROT_NONE page: a flush instruction faults on an
    /// inaccessible line, so a loop that touches one line too many crashes the test process.
    /// </summary>
    [Theory]
    [MemberData(nameof(SupportedInstructions))]
    public void RoutineFlushesExactlyTheLinesOfTheRange(Pmem2FlushInstruction instruction)
    {
        var routine = CpuFlush.CreateRoutineAddress(instruction, out var failure);
        Assert.True(routine != 0, failure);
        const int page = 4096;
        var mem = LibC.mmap(0, 2 * page, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        Assert.NotEqual(-1, mem);
        try
        {
            Assert.Equal(0, LibC.mprotect(mem + page, page, LibC.PROT_NONE));
            Marshal.WriteByte(mem + page - 1, 1);
            var edge = mem + page;
            CpuFlush.Invoke(routine, mem, page);             // whole page
            CpuFlush.Invoke(routine, edge - 64, 64);         // last line
            CpuFlush.Invoke(routine, edge - 1, 1);           // last byte
            CpuFlush.Invoke(routine, edge - 100, 100);       // two partial lines
            CpuFlush.Invoke(routine, edge, 0);               // empty at an aligned address: nothing
            CpuFlush.Invoke(routine, edge - 63, 0);          // empty, unaligned: the line holding it
            CpuFlush.Invoke(routine, mem + 5, page - 5);
            Assert.Equal(1, Marshal.ReadByte(mem + page - 1));

            // The code page is executable and not writable (W^X).
            // (The kernel may merge it with a neighbouring r-x anonymous page, so look for the containing VMA.)
            var line = File.ReadLines("/proc/self/maps").Single(l =>
            {
                var range = l.Split(' ')[0].Split('-');
                var start = ulong.Parse(range[0], System.Globalization.NumberStyles.HexNumber);
                var end = ulong.Parse(range[1], System.Globalization.NumberStyles.HexNumber);
                return (ulong)routine >= start && (ulong)routine < end;
            });
            Assert.Equal("r-xp", line.Split(' ')[1]);
        }
        finally
        {
            _ = LibC.munmap(mem, 2 * page);
            _ = LibC.munmap(routine, page);
        }
    }

    [Fact]
    public void EngineFlushIsUncountedAndStaysInsideItsRange()
    {
        // 80 KiB (over the 64 KiB single-call limit) followed by a PROT_NONE guard page: a flush of a
        // line past the range would fault there (a flush counts as a load).
        const int page = 4096;
        const int size = 80 * 1024;
        var mem = LibC.mmap(0, size + page, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        Assert.NotEqual(-1, mem);
        try
        {
            Assert.Equal(0, LibC.mprotect(mem + size, page, LibC.PROT_NONE));
            Marshal.WriteByte(mem + size - 1, 9);
            using var counts = Pmem2.Internal.Pmem2Diagnostics.BeginCounting();
            CpuFlush.FlushLines(mem + 3, 250);               // one direct call, unaligned start
            CpuFlush.FlushLines(mem + size - 256, 256);      // ends exactly at the guard page
            CpuFlush.FlushLines(mem + 5, size - 5);          // chunked
            CpuFlush.FlushLines(mem + size - 1, 1);
            Assert.Equal(0, counts.Flush);
            CpuFlush.FlushRange(mem, 64);                    // flush_fn's entry is counted
            Assert.Equal(1, counts.Flush);
            Assert.Equal(9, Marshal.ReadByte(mem + size - 1));
        }
        finally
        {
            _ = LibC.munmap(mem, size + page);
        }
    }

    [Fact]
    public void FlushRangeSplitsLongRangesAndCoversThemAll()
    {
        // 1 MiB + an unaligned head and tail, through the chunked public entry point.
        var buffer = GC.AllocateArray<byte>((1 << 20) + 200, pinned: true);
        var p = Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0);
        CpuFlush.FlushRange(p + 3, (nuint)buffer.Length - 7);
        CpuFlush.Fence();
    }
}
