using System.Runtime.InteropServices;
using Pmem2.Internal.Flush;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>
/// msync-based persistence (libpmem2's persist.c PAGE functions and persist_posix.c).
/// </summary>
internal static unsafe class Persistence
{
    private static readonly nuint s_pageMask = (nuint)Environment.SystemPageSize - 1;

    /// <summary>Test seam: called with each [address, length) piece right before its PAGE msync (which
    /// runs outside the map registry's lock). Null outside tests.</summary>
    internal static Action<nuint, nuint>? BeforePageMsync { get; set; }

    /// <summary>
    /// PAGE granularity persist_fn / flush_fn (persist.c L188-283): round the start down to a page,
    /// then msync(MS_SYNC) the piece of every registered map that covers the range. Ranges no map
    /// covers are skipped, so "persisting" plain DRAM is a no-op, as in libpmem2.
    /// </summary>
    public static void PersistPages(void* addr, nuint len)
    {
        var start = (nuint)addr & ~s_pageMask;
        var end = (nuint)addr + len;
        if (end <= start)
        {
            return;
        }

        MapRegistry.ForEachCovered(start, end, 0, static (from, length, _) =>
        {
            BeforePageMsync?.Invoke(from, length);
            MsyncRetry((void*)from, length);
        });
    }

    /// <summary>
    /// <see cref="PersistPages(void*, nuint)"/> for a caller that holds a live map covering
    /// [<paramref name="mapStart"/>, <paramref name="mapEnd"/>): when the page-aligned range lies inside
    /// it, that one registered map is all the walk would find, so msync it directly (no registry lock,
    /// no reference taken: the caller's map cannot be unmapped meanwhile). Otherwise the walk.
    /// </summary>
    public static void PersistPagesWithin(void* addr, nuint len, nuint mapStart, nuint mapEnd)
    {
        var start = (nuint)addr & ~s_pageMask;
        var end = (nuint)addr + len;
        if (end <= start)
        {
            return;
        }

        if (start >= mapStart && end <= mapEnd)
        {
            BeforePageMsync?.Invoke(start, end - start);
            MsyncRetry((void*)start, end - start);
            return;
        }

        PersistPages(addr, len);
    }

    /// <summary><see cref="PersistPages(void*, nuint)"/> for callers without unsafe code.</summary>
    public static void PersistPages(nint addr, nuint len) => PersistPages((void*)addr, len);

    /// <summary>
    /// msync(MS_SYNC), retried on EINTR. Where libpmem2 calls abort() because persist_fn cannot return
    /// an error (persist.c L272-282), we throw a <see cref="Pmem2Exception"/> with -errno: a managed
    /// caller can still stop, and the process is not killed by a library.
    /// </summary>
    public static void MsyncRetry(void* addr, nuint len)
    {
        while (true)
        {
            Pmem2Diagnostics.Msync();
            if (LibC.msync(addr, len, LibC.MS_SYNC) == 0)
            {
                return;
            }

            var errno = Marshal.GetLastPInvokeError();
            if (errno != LibC.EINTR)
            {
                Errors.ThrowErrno(errno, "msync");
            }
        }
    }

    /// <summary>
    /// pmem2_flush_file_buffers_os (persist_posix.c) as used by deep flush: one msync(MS_SYNC) of the
    /// page-aligned range, not restarted on EINTR; a failure is returned to the caller as -errno.
    /// </summary>
    public static void FlushFileBuffers(void* addr, nuint len)
    {
        var start = (nuint)addr & ~s_pageMask;
        var length = len + ((nuint)addr - start);
        Pmem2Diagnostics.Msync();
        if (LibC.msync((void*)start, length, LibC.MS_SYNC) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "msync");
        }
    }

    /// <summary>CACHE_LINE persist_fn: flush every line, then sfence.</summary>
    public static void PersistCacheLines(byte* addr, nuint len)
    {
        CpuFlush.FlushRange(addr, len);
        CpuFlush.Fence();
    }
}
