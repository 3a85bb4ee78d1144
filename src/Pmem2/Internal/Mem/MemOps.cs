using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Pmem2.Internal.Mem;

/// <summary>
/// How the copy routines flush what they store with temporal stores (libpmem2's flush kinds:
/// clflush, clflushopt, clwb, empty, noflush). Supplied by the map from the CPU flush layer.
/// </summary>
internal readonly unsafe struct MemFlusher
{
    public MemFlusher(delegate*<byte*, nuint, void> flushRange, bool fenceAfterNonTemporal)
    {
        FlushRange = flushRange;
        FenceAfterNonTemporal = fenceAfterNonTemporal;
    }

    /// <summary>Flushes every 64-byte line overlapping [addr, addr+len) without a fence
    /// (CLWB / CLFLUSHOPT / CLFLUSH loop, or msync where CPU flushing is unavailable).</summary>
    public readonly delegate*<byte*, nuint, void> FlushRange;

    /// <summary>True when the flush kind needs an sfence right after the non-temporal stores
    /// (CLFLUSH, msync fallback); false for CLWB / CLFLUSHOPT, whose drain supplies it.</summary>
    public readonly bool FenceAfterNonTemporal;
}

/// <summary>
/// Data movement: libpmem2's memmove_nodrain / memmove_nodrain_eadr / memset_nodrain(_eadr).
/// Contract between the map layer and the copy engines:
/// - CACHE_LINE map: MemmoveNodrain(flags, eadr: false) then sfence unless NODRAIN or NOFLUSH.
/// - BYTE map: MemmoveNodrain(flags, eadr: true) then sfence unless NODRAIN or NOFLUSH.
/// - PAGE map: MemmoveNodrain(flags &amp; ~NODRAIN, eadr: false) then msync unless NOFLUSH.
/// The map layer owns the final drain / msync; these routines never issue it.
/// <para>
/// Dispatch (x86_64/init.c): non-eADR — NOFLUSH: temporal, no flush; WC|NONTEMPORAL: NT + flush;
/// WB|TEMPORAL: temporal + flush; len &lt; threshold: temporal + flush; else NT + flush.
/// eADR — NOFLUSH: temporal, no flush; NONTEMPORAL: NT, no flush; else temporal, no flush.
/// After NT stores an sfence is issued when the flush kind asks for it (CLFLUSH / msync) or
/// when there is no flush at all (eADR); CLWB / CLFLUSHOPT leave it to the map's drain.
/// </para>
/// The engine (AVX-512F, AVX, SSE2, generic, libc) and the NT threshold are chosen once, at
/// start-up, from the CPU and PMEM_* environment variables (see <see cref="MemConfig"/>).
/// </summary>
internal static unsafe class MemOps
{
    private static readonly MemEngine s_engine = MemConfig.SelectEngine(ProcessEnvironment.Get);
    private static readonly nuint s_threshold = MemConfig.ParseThreshold(ProcessEnvironment.Get("PMEM_MOVNT_THRESHOLD"));

    /// <summary>Name of the engine chosen at start-up ("avx512f", "avx", "sse2", "generic", "libc").</summary>
    public static string EngineName => s_engine.Name;

    /// <summary>The engine chosen at start-up.</summary>
    internal static MemEngine Engine => s_engine;

    /// <summary>The NT threshold chosen at start-up (PMEM_MOVNT_THRESHOLD, default 256).</summary>
    internal static nuint MovntThreshold => s_threshold;

    /// <summary>Overlap-safe copy of <paramref name="len"/> bytes; no final drain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MemmoveNodrain(byte* dst, byte* src, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher) =>
        Memmove(s_engine, s_threshold, dst, src, len, flags, eadr, flusher);

    /// <summary>Fills <paramref name="len"/> bytes with <paramref name="value"/>; no final drain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MemsetNodrain(byte* dst, byte value, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher) =>
        Memset(s_engine, s_threshold, dst, value, len, flags, eadr, flusher);

    /// <summary><see cref="MemmoveNodrain"/> with an explicit engine and threshold (tests, benches).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Memmove(MemEngine engine, nuint threshold, byte* dst, byte* src, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher)
    {
        if (len == 0 || dst == src)
        {
            return;
        }

        switch (Choose(engine, threshold, len, flags, eadr))
        {
            case MemPath.TemporalNoFlush:
            case MemPath.TemporalEmpty:
                engine.MoveT(dst, src, len, null);
                break;
            case MemPath.TemporalFlush:
                engine.MoveT(dst, src, len, flusher.FlushRange);
                break;
            case MemPath.NonTemporalEmpty:
                engine.MoveNt(dst, src, len, null);
                Fence();
                break;
            default:
                engine.MoveNt(dst, src, len, flusher.FlushRange);
                if (flusher.FenceAfterNonTemporal)
                {
                    Fence();
                }

                break;
        }
    }

    /// <summary><see cref="MemsetNodrain"/> with an explicit engine and threshold (tests, benches).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Memset(MemEngine engine, nuint threshold, byte* dst, byte value, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher)
    {
        if (len == 0)
        {
            return;
        }

        switch (Choose(engine, threshold, len, flags, eadr))
        {
            case MemPath.TemporalNoFlush:
            case MemPath.TemporalEmpty:
                engine.SetT(dst, value, len, null);
                break;
            case MemPath.TemporalFlush:
                engine.SetT(dst, value, len, flusher.FlushRange);
                break;
            case MemPath.NonTemporalEmpty:
                engine.SetNt(dst, value, len, null);
                Fence();
                break;
            default:
                engine.SetNt(dst, value, len, flusher.FlushRange);
                if (flusher.FenceAfterNonTemporal)
                {
                    Fence();
                }

                break;
        }
    }

    /// <summary>The dispatch table of x86_64/init.c (L67-154).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static MemPath Choose(MemEngine engine, nuint threshold, nuint len, Pmem2MemFlags flags, bool eadr)
    {
        MemPath path;
        if ((flags & Pmem2MemFlags.NoFlush) != 0)
        {
            path = MemPath.TemporalNoFlush;
        }
        else if (eadr)
        {
            path = (flags & Pmem2MemFlags.NonTemporal) != 0 && engine.HasNonTemporal
                ? MemPath.NonTemporalEmpty
                : MemPath.TemporalEmpty;
        }
        else if (!engine.HasNonTemporal)
        {
            path = MemPath.TemporalFlush;
        }
        else if ((flags & (Pmem2MemFlags.WriteCombining | Pmem2MemFlags.NonTemporal)) != 0)
        {
            path = MemPath.NonTemporalFlush;
        }
        else if ((flags & (Pmem2MemFlags.WriteBack | Pmem2MemFlags.Temporal)) != 0 || len < threshold)
        {
            path = MemPath.TemporalFlush;
        }
        else
        {
            path = MemPath.NonTemporalFlush;
        }

        if (MemTrace.Enabled)
        {
            MemTrace.Path(path, len);
        }

        return path;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fence()
    {
        Sse.StoreFence();
        if (MemTrace.Enabled)
        {
            MemTrace.Fence();
        }
    }
}

/// <summary>Which of libpmem2's function variants a call took (mem_ext's "t"/"nt" and flush kind).</summary>
internal enum MemPath
{
    /// <summary>t.noflush: temporal stores, no flush (NOFLUSH).</summary>
    TemporalNoFlush,
    /// <summary>t.flush: temporal stores, each line flushed.</summary>
    TemporalFlush,
    /// <summary>t.empty: temporal stores, no flush instructions (eADR).</summary>
    TemporalEmpty,
    /// <summary>nt.flush: non-temporal body, head/tail flushed.</summary>
    NonTemporalFlush,
    /// <summary>nt.empty: non-temporal body, no flush instructions, sfence after (eADR).</summary>
    NonTemporalEmpty,
}

/// <summary>Start-up configuration from the CPU and environment (x86_64/init.c, persist.c).</summary>
internal static class MemConfig
{
    /// <summary>libpmem2's Movnt_threshold default.</summary>
    public const ulong DefaultMovntThreshold = 256;

    /// <summary>Picks the engine from the CPU features and PMEM_NO_MOVNT, PMEM_NO_GENERIC_MEMCPY,
    /// PMEM_AVX, PMEM_AVX512F and PMEM_WC_WORKAROUND.</summary>
    public static MemEngine SelectEngine(Func<string, string?> env)
    {
        if (env("PMEM_NO_MOVNT") == "1")
        {
            var noGeneric = env("PMEM_NO_GENERIC_MEMCPY");
            return noGeneric is not null && Atoll(noGeneric) != 0 ? MemEngine.Libc : MemEngine.Generic;
        }

        bool wc = env("PMEM_WC_WORKAROUND") switch
        {
            "1" => true,
            "0" => false,
            _ => IsGenuineIntel(),
        };

        MemEngine engine = MemEngine.Sse2(wc);
        if (Avx.IsSupported && env("PMEM_AVX") != "0")
        {
            engine = MemEngine.Avx(wc);
        }

        if (Avx512F.IsSupported && env("PMEM_AVX512F") != "0")
        {
            engine = MemEngine.Avx512F();
        }

        return engine;
    }

    /// <summary>PMEM_MOVNT_THRESHOLD: atoll; unset or negative keeps the default; 0 means always NT.</summary>
    public static nuint ParseThreshold(string? value)
    {
        if (value is null)
        {
            return (nuint)DefaultMovntThreshold;
        }

        long v = Atoll(value);
        return v < 0 ? (nuint)DefaultMovntThreshold : (nuint)(ulong)v;
    }

    /// <summary>C atoll: leading white space, optional sign, decimal digits up to the first other
    /// character; no digits gives 0; overflow saturates.</summary>
    public static long Atoll(string s)
    {
        int i = 0;
        while (i < s.Length && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
        {
            i++;
        }

        bool negative = false;
        if (i < s.Length && (s[i] == '+' || s[i] == '-'))
        {
            negative = s[i] == '-';
            i++;
        }

        ulong acc = 0;
        for (; i < s.Length && s[i] >= '0' && s[i] <= '9'; i++)
        {
            ulong next = (acc * 10) + (ulong)(s[i] - '0');
            if (acc > (ulong.MaxValue / 10) || next > (ulong)long.MaxValue + 1)
            {
                return negative ? long.MinValue : long.MaxValue;
            }

            acc = next;
        }

        if (negative)
        {
            return acc == (ulong)long.MaxValue + 1 ? long.MinValue : -(long)acc;
        }

        return acc > long.MaxValue ? long.MaxValue : (long)acc;
    }

    /// <summary>CPUID leaf 0 vendor string is "GenuineIntel".</summary>
    public static bool IsGenuineIntel()
    {
        if (!X86Base.IsSupported)
        {
            return false;
        }

        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        return ebx == 0x756E6547 && edx == 0x49656E69 && ecx == 0x6C65746E; // "Genu" "ineI" "ntel"
    }
}
