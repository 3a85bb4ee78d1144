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
/// CONTRACT STUB: a plain, correct but slow implementation to be replaced by the engines.
/// </summary>
internal static unsafe class MemOps
{
    /// <summary>Name of the engine chosen at start-up ("avx512f", "avx", "sse2", "generic", "libc").</summary>
    public static string EngineName => "libc";

    /// <summary>Overlap-safe copy of <paramref name="len"/> bytes; no final drain.</summary>
    public static void MemmoveNodrain(byte* dst, byte* src, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher)
    {
        if (len == 0 || dst == src)
        {
            return;
        }

        Buffer.MemoryCopy(src, dst, len, len);
        if ((flags & Pmem2MemFlags.NoFlush) == 0 && !eadr)
        {
            flusher.FlushRange(dst, len);
        }
    }

    /// <summary>Fills <paramref name="len"/> bytes with <paramref name="value"/>; no final drain.</summary>
    public static void MemsetNodrain(byte* dst, byte value, nuint len, Pmem2MemFlags flags, bool eadr, in MemFlusher flusher)
    {
        if (len == 0)
        {
            return;
        }

        new Span<byte>(dst, checked((int)len)).Fill(value);
        if ((flags & Pmem2MemFlags.NoFlush) == 0 && !eadr)
        {
            flusher.FlushRange(dst, len);
        }
    }
}
