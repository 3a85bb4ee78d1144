using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Interop;
using size_t = nuint;

namespace Pmem2.Internal.Flush;

/// <summary>
/// CPU cache-line write-back for CACHE_LINE granularity (libpmem2's x86_64/flush.h and init.c).
/// <para>
/// Why machine code: .NET 10 has no CLFLUSH / CLFLUSHOPT / CLWB intrinsic (System.Runtime.Intrinsics.X86
/// stops at Sse.StoreFence and the non-temporal stores), and the repository has no native build step.
/// At start-up we therefore write a tiny flush LOOP (System V ABI: rdi = address, rsi = length) into one
/// anonymous page, then mprotect it to PROT_READ|PROT_EXEC. The page is never writable again (W^X):
/// it is written while PROT_READ|PROT_WRITE and only then becomes executable, so at no moment is it
/// both. It is called through an unmanaged function pointer; one call flushes a whole range.
/// </para>
/// <para>
/// Which instruction (libpmem2 init.c L470-507): CLFLUSH when CPUID.1:EDX[19]; replaced by CLFLUSHOPT
/// when CPUID.(7,0):EBX[23] unless PMEM_NO_CLFLUSHOPT=1; replaced by CLWB when CPUID.(7,0):EBX[24] unless
/// PMEM_NO_CLWB=1 (both variables must be exactly "1", read once at start-up, like libpmem2).
/// </para>
/// <para>
/// Fallback and failure accounting: mapping executable memory can be refused by the OS (SELinux
/// "execmem" denial, PaX/grsecurity MPROTECT, a seccomp filter, or a hardened runtime policy). Then
/// <see cref="Instruction"/> is <see cref="Pmem2FlushInstruction.Msync"/>, <see cref="FallbackReason"/>
/// records which call failed and its errno, the half-built page is unmapped (nothing leaks), and every
/// flush becomes msync(MS_SYNC) of the page-aligned range: slower, but correct on DAX too, because the
/// kernel writes back (and on DAX, flushes the CPU caches of) the dirty range on msync.
/// </para>
/// <para>
/// GC interaction: the routine is called with SuppressGCTransition (no cooperative/preemptive switch,
/// which would cost more than flushing a few lines). Such a call must be short, since a GC cannot
/// suspend the thread meanwhile, so long ranges are split into 64 KiB chunks (at most 1024 lines per
/// call, microseconds even with CLFLUSH of dirty lines).
/// </para>
/// </summary>
internal static unsafe class CpuFlush
{
    /// <summary>The cache-line size every x86-64 flush instruction works on.</summary>
    public const int CacheLine = 64;

    private const nuint ChunkBytes = 64 * 1024;

    private static readonly Selection s_selection = Initialize();

    private static readonly delegate* unmanaged[SuppressGCTransition]<byte*, size_t, void> s_routine =
        (delegate* unmanaged[SuppressGCTransition]<byte*, size_t, void>)s_selection.Routine;

    /// <summary>The instruction in use (Msync when CPU flushing is unavailable).</summary>
    public static Pmem2FlushInstruction Instruction => s_selection.Instruction;

    /// <summary>Why the msync fallback is in use (null when a CPU instruction is in use).</summary>
    public static string? FallbackReason => s_selection.FallbackReason;

    /// <summary>Whether non-temporal stores must be followed by an sfence inside the copy routines
    /// (CLFLUSH and the msync fallback; with CLWB / CLFLUSHOPT the final drain provides it).</summary>
    public static bool FenceAfterNonTemporal =>
        Instruction is Pmem2FlushInstruction.Clflush or Pmem2FlushInstruction.Msync;

    /// <summary>
    /// libpmem2's flush_fn for CACHE_LINE maps: write back every 64-byte line overlapping
    /// [addr, addr+len) (like libpmem2, a zero length at an unaligned address still covers the line
    /// that holds it), without a fence. Counted as one flush.
    /// </summary>
    public static void FlushRange(byte* addr, size_t len)
    {
        Pmem2Diagnostics.Flush();
        FlushRangeUncounted(addr, len);
    }

    /// <summary>The same as <see cref="FlushRange(byte*, size_t)"/> without touching the counters.</summary>
    public static void FlushRangeUncounted(byte* addr, size_t len)
    {
        var routine = s_routine;
        if (routine == null)
        {
            MsyncFallback(addr, len);
            return;
        }

        var p = (byte*)((nuint)addr & ~(nuint)(CacheLine - 1));
        var end = addr + len;
        while ((nuint)(end - p) > ChunkBytes)
        {
            routine(p, ChunkBytes);
            p += ChunkBytes;
        }

        routine(p, (nuint)(end - p));
    }

    /// <summary>
    /// The flush the copy engines call for the lines they have just stored with temporal stores
    /// (libpmem2's inlined flush64b loop): not counted (the diagnostics count pmem2 flush_fn calls,
    /// not the engines' internal flushes) and, for up to 64 KiB, one direct call of the emitted loop
    /// (which aligns the start itself). Longer ranges and the msync fallback take
    /// <see cref="FlushRangeUncounted(byte*, size_t)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FlushLines(byte* addr, size_t len)
    {
        var routine = s_routine;
        if (routine != null && len <= ChunkBytes)
        {
            routine(addr, len);
            return;
        }

        FlushRangeUncounted(addr, len);
    }

    /// <summary>sfence (libpmem2's memory_barrier / drain_fn). Counted as one fence.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Fence()
    {
        Pmem2Diagnostics.Fence();
        Sse.StoreFence();
    }

    /// <summary>No-op flush (BYTE maps, and PAGE maps when CPU flushing is unavailable: their copies are
    /// followed by an msync of the whole range anyway).</summary>
    public static void FlushNone(byte* addr, size_t len)
    {
    }

    /// <summary>libpmem2's instruction choice, as a pure function (testable without CPUID or env).</summary>
    internal static Pmem2FlushInstruction Select(bool hasClflush, bool hasClflushopt, bool hasClwb, string? noClwb, string? noClflushopt)
    {
        var result = Pmem2FlushInstruction.Msync;
        if (hasClflush)
        {
            result = Pmem2FlushInstruction.Clflush;
        }

        if (hasClflushopt && noClflushopt != "1")
        {
            result = Pmem2FlushInstruction.Clflushopt;
        }

        if (hasClwb && noClwb != "1")
        {
            result = Pmem2FlushInstruction.Clwb;
        }

        return result;
    }

    /// <summary>
    /// The flush loop for <paramref name="instruction"/> (System V ABI, rdi = addr, rsi = len):
    /// <code>
    ///   lea  rsi, [rdi+rsi]     48 8D 34 37     ; end = addr + len
    ///   and  rdi, -64           48 83 E7 C0     ; addr &amp;= ~63
    ///   cmp  rdi, rsi           48 39 F7
    ///   jae  done               73 xx
    /// loop:
    ///   clwb [rdi]              66 0F AE 37     ; clflushopt: 66 0F AE 3F, clflush: 0F AE 3F
    ///   add  rdi, 64            48 83 C7 40
    ///   cmp  rdi, rsi           48 39 F7
    ///   jb   loop               72 xx
    /// done:
    ///   ret                     C3
    /// </code>
    /// </summary>
    internal static byte[] EmitFlushLoop(Pmem2FlushInstruction instruction)
    {
        byte[] op = instruction switch
        {
            Pmem2FlushInstruction.Clwb => [0x66, 0x0F, 0xAE, 0x37],
            Pmem2FlushInstruction.Clflushopt => [0x66, 0x0F, 0xAE, 0x3F],
            Pmem2FlushInstruction.Clflush => [0x0F, 0xAE, 0x3F],
            _ => throw new ArgumentOutOfRangeException(nameof(instruction), instruction, "no machine code for this flush kind"),
        };

        var code = new List<byte>(32);
        code.AddRange([0x48, 0x8D, 0x34, 0x37]);    // lea rsi, [rdi+rsi]
        code.AddRange([0x48, 0x83, 0xE7, 0xC0]);    // and rdi, -64
        code.AddRange([0x48, 0x39, 0xF7]);          // cmp rdi, rsi
        var jaeAt = code.Count;
        code.AddRange([0x73, 0x00]);                // jae done (patched)
        var loop = code.Count;
        code.AddRange(op);                          // flush [rdi]
        code.AddRange([0x48, 0x83, 0xC7, 0x40]);    // add rdi, 64
        code.AddRange([0x48, 0x39, 0xF7]);          // cmp rdi, rsi
        code.AddRange([0x72, 0x00]);                // jb loop (patched)
        var done = code.Count;
        code.Add(0xC3);                             // ret
        code[jaeAt + 1] = (byte)(done - (jaeAt + 2));
        code[done - 1] = (byte)(sbyte)(loop - done);
        return [.. code];
    }

    /// <summary>
    /// Writes the flush loop into a fresh anonymous page and seals it PROT_READ|PROT_EXEC. Returns the
    /// entry point, or null with the failing call and errno in <paramref name="failure"/> (the page is
    /// then unmapped again). The page lives for the rest of the process.
    /// </summary>
    internal static void* CreateRoutine(Pmem2FlushInstruction instruction, out string? failure)
    {
        var code = EmitFlushLoop(instruction);
        var page = (nuint)Environment.SystemPageSize;
        var mem = LibC.mmap(null, page, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS, -1, 0);
        if (mem == LibC.MAP_FAILED)
        {
            var errno = Marshal.GetLastPInvokeError();
            failure = $"mmap of the code page failed: {Errors.StrError(errno)} (errno {errno})";
            return null;
        }

        code.CopyTo(new Span<byte>(mem, code.Length));

        // W^X: from here on the page is executable and never writable again. SELinux (execmem) or
        // PaX MPROTECT refuse exactly this transition, typically with EACCES or EPERM.
        if (LibC.mprotect(mem, page, LibC.PROT_READ | LibC.PROT_EXEC) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _ = LibC.munmap(mem, page);
            failure = $"mprotect(PROT_READ|PROT_EXEC) of the code page refused: {Errors.StrError(errno)} (errno {errno})";
            return null;
        }

        failure = null;
        return mem;
    }

    /// <summary>Calls a routine from <see cref="CreateRoutine"/> directly (tests of every instruction).</summary>
    internal static void Invoke(void* routine, byte* addr, size_t len) =>
        ((delegate* unmanaged[SuppressGCTransition]<byte*, size_t, void>)routine)(addr, len);

    /// <summary><see cref="CreateRoutine"/> for callers without unsafe code.</summary>
    internal static nint CreateRoutineAddress(Pmem2FlushInstruction instruction, out string? failure) =>
        (nint)CreateRoutine(instruction, out failure);

    /// <summary><see cref="Invoke(void*, byte*, size_t)"/> for callers without unsafe code.</summary>
    internal static void Invoke(nint routine, nint addr, size_t len) => Invoke((void*)routine, (byte*)addr, len);

    /// <summary><see cref="FlushLines(byte*, size_t)"/> for callers without unsafe code.</summary>
    internal static void FlushLines(nint addr, size_t len) => FlushLines((byte*)addr, len);

    /// <summary><see cref="MsyncFallback(byte*, size_t)"/> for callers without unsafe code.</summary>
    internal static void MsyncFallback(nint addr, size_t len) => MsyncFallback((byte*)addr, len);

    /// <summary><see cref="FlushRange(byte*, size_t)"/> for callers without unsafe code.</summary>
    internal static void FlushRange(nint addr, size_t len) => FlushRange((byte*)addr, len);

    /// <summary>The flush used when no CPU routine is available: msync(MS_SYNC) of the page-aligned range.</summary>
    internal static void MsyncFallback(byte* addr, size_t len)
    {
        var pageMask = (nuint)Environment.SystemPageSize - 1;
        var start = (nuint)addr & ~pageMask;
        var length = len + ((nuint)addr - start);
        Persistence.MsyncRetry((void*)start, length);
    }

    private static Selection Initialize()
    {
        try
        {
            var instruction = Select(
                hasClflush: Pmem2Platform.IsSupported && CpuIdBit(1, 0, Reg.Edx, 19),
                hasClflushopt: Pmem2Platform.IsSupported && CpuIdBit(7, 0, Reg.Ebx, 23),
                hasClwb: Pmem2Platform.IsSupported && CpuIdBit(7, 0, Reg.Ebx, 24),
                noClwb: ProcessEnvironment.Get("PMEM_NO_CLWB"),
                noClflushopt: ProcessEnvironment.Get("PMEM_NO_CLFLUSHOPT"));
            if (instruction == Pmem2FlushInstruction.Msync)
            {
                return new Selection(instruction, 0, Pmem2Platform.IsSupported ? "CPUID reports no CLFLUSH" : "not an x86-64 Linux process");
            }

            var routine = CreateRoutine(instruction, out var failure);
            return routine == null
                ? new Selection(Pmem2FlushInstruction.Msync, 0, failure)
                : new Selection(instruction, (nint)routine, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A type initializer must not fail: any surprise (e.g. libc not loadable) means "no CPU flush".
            return new Selection(Pmem2FlushInstruction.Msync, 0, $"{e.GetType().Name}: {e.Message}");
        }
    }

    private sealed record Selection(Pmem2FlushInstruction Instruction, nint Routine, string? FallbackReason);

    private enum Reg { Ebx, Edx }

    private static bool CpuIdBit(int leaf, int subleaf, Reg reg, int bit)
    {
        if (!X86Base.IsSupported)
        {
            return false;
        }

        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (leaf > maxLeaf)
        {
            return false;
        }

        var (_, ebx, _, edx) = X86Base.CpuId(leaf, subleaf);
        var value = reg == Reg.Ebx ? ebx : edx;
        return (value & (1 << bit)) != 0;
    }
}
