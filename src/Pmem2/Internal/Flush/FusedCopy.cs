using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Interop;
using Pmem2.Internal.Mem;

namespace Pmem2.Internal.Flush;

/// <summary>
/// The AVX engine's temporal forward copy with its cache-line flushes fused into one emitted loop,
/// so a temporal copy makes one unmanaged call for its whole 256-byte-block body instead of one flush
/// call per 256 bytes (libpmem2 inlines the flush instructions into its copy loops; .NET has no
/// CLWB / CLFLUSHOPT / CLFLUSH intrinsic). Lines are still written back right after they are stored,
/// while hot, as libpmem2 does. The loop (System V: rdi = dst, rsi = src, rdx = length, a non-zero
/// multiple of 256; dst 64-byte aligned) per 256-byte block:
/// <code>
///   copy block                             ; the first block: copy only
///   add rsi, 256 / add rdi, 256 / sub rdx, 256
///   jz done                                0F 84 rel32
/// loop:
///   copy block:
///     vmovdqu ymm0..ymm7, [rsi + 0..224]   C5 FE 6F 86|k&lt;&lt;3 disp32   ; all loads first
///     vmovdqu [rdi + 0..224], ymm0..ymm7   C5 FE 7F 87|k&lt;&lt;3 disp32
///   clwb [rdi - 256, -192, -128, -64]      66 0F AE B7 disp32            ; the previous block; clflushopt: 66 0F AE BF, clflush: 0F AE BF
///   add rsi, 256 / add rdi, 256 / sub rdx, 256
///   jnz loop                               0F 85 rel32
/// done:
///   clwb [rdi - 256, -192, -128, -64]      ; the last block
///   vzeroupper                             C5 F8 77
///   ret                                    C3
/// </code>
/// It goes into its own page, written while PROT_READ|PROT_WRITE and sealed PROT_READ|PROT_EXEC
/// (W^X) like the flush loop. Used only by the AVX engine, only when the engine's flush is the CPU
/// flush (<see cref="CpuFlush.FlushLines(byte*, nuint)"/>), and only for forward copies; everything
/// else takes the managed loops. <c>PMEM2_NO_FUSED_COPY=1</c> (exactly "1", read once) turns it off,
/// for A/B measurements and diagnosis.
/// </summary>
internal static unsafe class FusedCopy
{
    private static readonly nint s_routine = Initialize(out s_failure);
    private static readonly string? s_failure;

    /// <summary>Whether the fused loop exists (AVX, a CPU flush instruction, executable memory allowed).</summary>
    public static bool IsAvailable => s_routine != 0;

    /// <summary>Why it does not (null when it does).</summary>
    public static string? UnavailableReason => s_failure;

    /// <summary>Test seam: number of fused forward copies run by the calling thread.</summary>
    [ThreadStatic]
    internal static int t_fusedCopies;

    /// <summary>The engines' CPU flush as one pointer value, handed to the engines by the maps, so
    /// <see cref="Replaces"/> can recognise it (two <c>&amp;Method</c> expressions need not be equal).</summary>
    public static readonly delegate*<byte*, nuint, void> EngineFlush = &CpuFlush.FlushLines;

    /// <summary>True when <paramref name="flush"/> is <see cref="EngineFlush"/>, the CPU flush the fused loop replaces.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Replaces(delegate*<byte*, nuint, void> flush) =>
        s_routine != 0 && Enabled && (nint)flush == (nint)EngineFlush;

    /// <summary>Benchmark seam: false makes every copy take the managed loops (the before/after of
    /// the fused loop measured interleaved in one process, bench `paired-fused`).</summary>
    internal static bool Enabled = true;

    /// <summary>
    /// VecLoops.MoveT&lt;AvxOps&gt; with the CPU flush, for len &gt; 64 and a forward copy: the head up
    /// to a 64-byte boundary (flushed), the 256-byte blocks in the emitted loop, then 64-byte blocks
    /// and the tail (flushed together).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void MoveTFw(byte* d, byte* s, nuint len)
    {
        t_fusedCopies++;
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            cnt = 64 - cnt; // len > 64 here, so the head always fits
            AvxOps.MoveSmall(d, s, cnt);
            CpuFlush.FlushLines(d, cnt);
            d += cnt;
            s += cnt;
            len -= cnt;
        }

        var body = len & ~(nuint)255;
        if (body != 0)
        {
            ((delegate* unmanaged[SuppressGCTransition]<byte*, byte*, nuint, void>)s_routine)(d, s, body);
            d += body;
            s += body;
            len -= body;
        }

        if (len == 0)
        {
            return;
        }

        byte* pending = d;
        while (len >= 64)
        {
            AvxOps.Move64(d, s);
            d += 64;
            s += 64;
            len -= 64;
        }

        if (len != 0)
        {
            AvxOps.MoveSmall(d, s, len);
            d += len;
        }

        CpuFlush.FlushLines(pending, (nuint)(d - pending));
    }

    /// <summary>The machine code of the fused loop for <paramref name="instruction"/>. The lines of a
    /// block are flushed one block later (after the next block's stores), so the CLWBs do not wait on
    /// stores still in the store buffer; the last block is flushed after the loop.</summary>
    internal static byte[] Emit(Pmem2FlushInstruction instruction)
    {
        byte[] flush = instruction switch
        {
            Pmem2FlushInstruction.Clwb => [0x66, 0x0F, 0xAE, 0xB7],
            Pmem2FlushInstruction.Clflushopt => [0x66, 0x0F, 0xAE, 0xBF],
            Pmem2FlushInstruction.Clflush => [0x0F, 0xAE, 0xBF],
            _ => throw new ArgumentOutOfRangeException(nameof(instruction), instruction, "no machine code for this flush kind"),
        };

        var code = new List<byte>(512);
        void Disp32(int v) => code.AddRange(BitConverter.GetBytes(v));
        void CopyBlock()
        {
            for (var k = 0; k < 8; k++)
            {
                code.AddRange([0xC5, 0xFE, 0x6F, (byte)(0x86 | (k << 3))]); // vmovdqu ymmk, [rsi+32k]
                Disp32(32 * k);
            }

            for (var k = 0; k < 8; k++)
            {
                code.AddRange([0xC5, 0xFE, 0x7F, (byte)(0x87 | (k << 3))]); // vmovdqu [rdi+32k], ymmk
                Disp32(32 * k);
            }
        }

        void FlushPreviousBlock()
        {
            for (var line = 0; line < 4; line++)
            {
                code.AddRange(flush);                                        // clwb [rdi-256+64*line]
                Disp32(-256 + (64 * line));
            }
        }

        void Advance()
        {
            code.AddRange([0x48, 0x81, 0xC6, 0x00, 0x01, 0x00, 0x00]);      // add rsi, 256
            code.AddRange([0x48, 0x81, 0xC7, 0x00, 0x01, 0x00, 0x00]);      // add rdi, 256
            code.AddRange([0x48, 0x81, 0xEA, 0x00, 0x01, 0x00, 0x00]);      // sub rdx, 256
        }

        CopyBlock();                                                     // first block: copy only
        Advance();
        code.AddRange([0x0F, 0x84]);                                     // jz done
        var jzAt = code.Count;
        Disp32(0);
        var loop = code.Count;
        CopyBlock();
        FlushPreviousBlock();
        Advance();
        code.AddRange([0x0F, 0x85]);                                     // jnz loop
        Disp32(loop - (code.Count + 4));
        var done = code.Count;
        BitConverter.GetBytes(done - (jzAt + 4)).CopyTo(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(code).Slice(jzAt, 4));
        FlushPreviousBlock();                                            // the last block
        code.AddRange([0xC5, 0xF8, 0x77]);                               // vzeroupper
        code.Add(0xC3);                                                  // ret
        return [.. code];
    }

    private static nint Initialize(out string? failure)
    {
        try
        {
            if (ProcessEnvironment.Get("PMEM2_NO_FUSED_COPY") == "1")
            {
                failure = "PMEM2_NO_FUSED_COPY=1";
                return 0;
            }

            if (!Avx.IsSupported)
            {
                failure = "no AVX";
                return 0;
            }

            var instruction = CpuFlush.Instruction;
            if (instruction == Pmem2FlushInstruction.Msync)
            {
                failure = "no CPU flush instruction";
                return 0;
            }

            var code = Emit(instruction);
            var page = (nuint)Environment.SystemPageSize;
            var mem = LibC.mmap(null, page, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
            if (mem == LibC.MAP_FAILED)
            {
                failure = $"mmap: {Errors.StrError(Marshal.GetLastPInvokeError())}";
                return 0;
            }

            code.CopyTo(new Span<byte>(mem, code.Length));
            if (LibC.mprotect(mem, page, LibC.PROT_READ | LibC.PROT_EXEC) != 0)
            {
                failure = $"mprotect(PROT_READ|PROT_EXEC): {Errors.StrError(Marshal.GetLastPInvokeError())}";
                _ = LibC.munmap(mem, page);
                return 0;
            }

            failure = null;
            return (nint)mem;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = $"{e.GetType().Name}: {e.Message}";
            return 0;
        }
    }
}
