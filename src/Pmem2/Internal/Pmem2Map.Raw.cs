using Pmem2.Internal;
using Pmem2.Internal.Flush;
using Pmem2.Internal.Mem;

namespace Pmem2;

/// <summary>
/// The per-map functions at pointer level, as libpmem2's pmem2_get_*_fn return them: no bounds
/// check and no handle reference (the caller guarantees the range lies in a live map). The public
/// methods of <see cref="Pmem2Map"/> check, take a reference, and call these. Used directly by the
/// benchmarks and the copy-engine tests.
/// </summary>
public sealed unsafe partial class Pmem2Map
{
    /// <summary>The flush the copy engines receive for this map.</summary>
    internal MemFlusher Flusher => _flusher;

    /// <summary>pmem2_memmove_fn (and memcpy_fn, the same function): copy per the MemOps contract, then
    /// drain (CACHE_LINE, BYTE) or msync (PAGE). Returns <paramref name="dst"/>.</summary>
    internal void* MemmoveRaw(void* dst, void* src, nuint len, Pmem2MemFlags flags)
    {
        ThrowIfPersistingAfterFailure(flags);
        switch (_granularity)
        {
            case Pmem2Granularity.CacheLine:
                MemOps.MemmoveNodrain((byte*)dst, (byte*)src, len, flags, eadr: false, _flusher);
                DrainUnlessNoDrain(flags);
                break;
            case Pmem2Granularity.Byte:
                MemOps.MemmoveNodrain((byte*)dst, (byte*)src, len, flags, eadr: true, _flusher);
                DrainUnlessNoDrain(flags);
                break;
            default:
                // PAGE ignores NODRAIN: the msync always follows (unless NOFLUSH).
                MemOps.MemmoveNodrain((byte*)dst, (byte*)src, len, flags & ~Pmem2MemFlags.NoDrain, eadr: false, _flusher);
                MsyncUnlessNoFlush(dst, len, flags);
                break;
        }

        return dst;
    }

    /// <summary>pmem2_memcpy_fn: libpmem2's memcpy is its memmove (overlap-safe).</summary>
    internal void* MemcpyRaw(void* dst, void* src, nuint len, Pmem2MemFlags flags) => MemmoveRaw(dst, src, len, flags);

    /// <summary>pmem2_memset_fn. Returns <paramref name="dst"/>.</summary>
    internal void* MemsetRaw(void* dst, byte value, nuint len, Pmem2MemFlags flags)
    {
        ThrowIfPersistingAfterFailure(flags);
        switch (_granularity)
        {
            case Pmem2Granularity.CacheLine:
                MemOps.MemsetNodrain((byte*)dst, value, len, flags, eadr: false, _flusher);
                DrainUnlessNoDrain(flags);
                break;
            case Pmem2Granularity.Byte:
                MemOps.MemsetNodrain((byte*)dst, value, len, flags, eadr: true, _flusher);
                DrainUnlessNoDrain(flags);
                break;
            default:
                MemOps.MemsetNodrain((byte*)dst, value, len, flags & ~Pmem2MemFlags.NoDrain, eadr: false, _flusher);
                MsyncUnlessNoFlush(dst, len, flags);
                break;
        }

        return dst;
    }

    /// <summary>pmem2_persist_fn: PAGE msync; CACHE_LINE flush + sfence; BYTE sfence.</summary>
    internal void PersistRaw(void* addr, nuint len)
    {
        ThrowIfPersistFailed();
        switch (_granularity)
        {
            case Pmem2Granularity.CacheLine:
                CpuFlush.FlushRange((byte*)addr, len);
                CpuFlush.Fence();
                break;
            case Pmem2Granularity.Byte:
                CpuFlush.Fence();
                break;
            default:
                PersistPagesSticky(addr, len);
                break;
        }
    }

    /// <summary>pmem2_flush_fn: PAGE msync; CACHE_LINE flush without fence; BYTE nothing.</summary>
    internal void FlushRaw(void* addr, nuint len)
    {
        ThrowIfPersistFailed();
        switch (_granularity)
        {
            case Pmem2Granularity.CacheLine:
                CpuFlush.FlushRange((byte*)addr, len);
                break;
            case Pmem2Granularity.Byte:
                break;
            default:
                PersistPagesSticky(addr, len);
                break;
        }
    }

    /// <summary>pmem2_drain_fn: sfence on CACHE_LINE and BYTE, nothing on PAGE.</summary>
    internal void DrainRaw()
    {
        ThrowIfPersistFailed();
        if (_granularity != Pmem2Granularity.Page)
        {
            CpuFlush.Fence();
        }
    }

    /// <summary>
    /// pmem2_deep_flush (deep_flush.c): DEEP_FLUSH_RANGE unless [ptr, ptr+len) lies in the map; then
    /// PAGE: nothing (persist already msyncs); BYTE on anonymous memory: NOSUPP; CACHE_LINE and BYTE on a
    /// regular file: msync of the page-aligned range; on device DAX: CPU flush + sfence, then the
    /// region's sysfs deep_flush.
    /// </summary>
    internal void DeepFlushRaw(void* ptr, nuint len)
    {
        var start = (nuint)ptr;
        var mapStart = (nuint)_address;
        var end = unchecked(start + len);
        if (start < mapStart || end < start || end > mapStart + _size)
        {
            Errors.Throw(Pmem2ErrorCode.DeepFlushRange,
                $"requested deep flush rage ptr 0x{start:x} size {len} exceeds map range 0x{mapStart:x}");
        }

        ThrowIfPersistFailed();
        if (_granularity == Pmem2Granularity.Page)
        {
            return;
        }

        if (_sourceType == Pmem2SourceType.Anonymous)
        {
            Errors.Throw(Pmem2ErrorCode.NoSupp, "Anonymous source does not support deep flush");
        }

        if (_sourceType == Pmem2SourceType.DeviceDax)
        {
            CpuFlush.FlushRange((byte*)ptr, len);
            CpuFlush.Fence();
            try
            {
                DeviceDax.DeepFlushRegion(_deviceNumber);
            }
            catch (Pmem2Exception e)
            {
                throw RecordPersistFailure(e);
            }

            return;
        }

        FlushFileBuffersSticky(ptr, len);
    }

    /// <summary>Non-temporal copy without drain and, on PAGE, without msync (see <see cref="CopyNonTemporalDeferred"/>).</summary>
    internal void CopyNonTemporalDeferredRaw(void* dst, void* src, nuint len) =>
        MemOps.MemmoveNodrain((byte*)dst, (byte*)src, len, Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain,
            eadr: _granularity == Pmem2Granularity.Byte, _flusher);

    /// <summary>Completes deferred copies: sfence, plus msync of the page-aligned range on PAGE.</summary>
    internal void CompleteDeferredRaw(void* addr, nuint len)
    {
        ThrowIfPersistFailed();
        CpuFlush.Fence();
        if (_granularity == Pmem2Granularity.Page)
        {
            PersistPagesSticky(addr, len);
        }
    }

    // Pointer-free forms of the functions above, for benchmarks and tests (only src/Pmem2 may use
    // unsafe code). Same semantics: no bounds check, no handle reference.

    /// <summary><see cref="MemmoveRaw(void*, void*, nuint, Pmem2MemFlags)"/> over addresses.</summary>
    internal nint MemmoveRaw(nint dst, nint src, nuint len, Pmem2MemFlags flags) => (nint)MemmoveRaw((void*)dst, (void*)src, len, flags);

    /// <summary><see cref="MemcpyRaw(void*, void*, nuint, Pmem2MemFlags)"/> over addresses.</summary>
    internal nint MemcpyRaw(nint dst, nint src, nuint len, Pmem2MemFlags flags) => (nint)MemcpyRaw((void*)dst, (void*)src, len, flags);

    /// <summary><see cref="MemsetRaw(void*, byte, nuint, Pmem2MemFlags)"/> over an address.</summary>
    internal nint MemsetRaw(nint dst, byte value, nuint len, Pmem2MemFlags flags) => (nint)MemsetRaw((void*)dst, value, len, flags);

    /// <summary><see cref="PersistRaw(void*, nuint)"/> over an address.</summary>
    internal void PersistRaw(nint addr, nuint len) => PersistRaw((void*)addr, len);

    /// <summary><see cref="FlushRaw(void*, nuint)"/> over an address.</summary>
    internal void FlushRaw(nint addr, nuint len) => FlushRaw((void*)addr, len);

    /// <summary><see cref="DeepFlushRaw(void*, nuint)"/> over an address.</summary>
    internal void DeepFlushRaw(nint addr, nuint len) => DeepFlushRaw((void*)addr, len);

    /// <summary><see cref="CopyNonTemporalDeferredRaw(void*, void*, nuint)"/> over addresses.</summary>
    internal void CopyNonTemporalDeferredRaw(nint dst, nint src, nuint len) => CopyNonTemporalDeferredRaw((void*)dst, (void*)src, len);

    /// <summary><see cref="CompleteDeferredRaw(void*, nuint)"/> over an address.</summary>
    internal void CompleteDeferredRaw(nint addr, nuint len) => CompleteDeferredRaw((void*)addr, len);

    private static void DrainUnlessNoDrain(Pmem2MemFlags flags)
    {
        if ((flags & (Pmem2MemFlags.NoDrain | Pmem2MemFlags.NoFlush)) == 0)
        {
            CpuFlush.Fence();
        }
    }

    private void MsyncUnlessNoFlush(void* dst, nuint len, Pmem2MemFlags flags)
    {
        if ((flags & Pmem2MemFlags.NoFlush) == 0)
        {
            // Non-temporal stores may still sit in this core's write-combining buffers, which neither
            // the SYSCALL instruction nor the kernel's write-back (a DMA read of the page, or a CPU
            // flush on DAX) is guaranteed to drain: fence before handing the range to msync.
            CpuFlush.Fence();
            PersistPagesSticky(dst, len);
        }
    }
}
