using System.Runtime.InteropServices;
using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>Extension beyond libpmem2: pre-faulting a mapping before a bulk copy.</summary>
public sealed unsafe partial class Pmem2Map
{
    /// <summary>
    /// Fills the page tables for <c>[offset, offset+length)</c> ahead of use, with
    /// <c>madvise(MADV_POPULATE_WRITE)</c> on a writable map (<c>MADV_POPULATE_READ</c> on a read-only
    /// one). The bytes are not changed. Not libpmem2 behaviour.
    /// <para>Why: a fresh mapping of a file whose pages are already in the page cache (tmpfs, or a
    /// region the service wrote) has no page table entries, and the first store to each 4 KiB page takes
    /// a minor fault: on this kind of machine a first pass of 1 MiB copies into a new 1 GiB mapping runs at
    /// ~2 GB/s, a second pass over the same mapping at ~8 GB/s. Populating the range in one system call
    /// moves that cost to a moment the caller chooses (opening a long-lived lease), instead of the first
    /// bulk copy. On DAX the same call maps the media pages (no page cache involved).</para>
    /// <para>Returns false when the kernel has no MADV_POPULATE_* (before Linux 5.14: EINVAL): the mapping
    /// is unchanged and faults on first touch as libpmem2's does.</para>
    /// </summary>
    /// <exception cref="Pmem2Exception">The range is not backed (e.g. the file was truncated underneath:
    /// EFAULT) or memory ran out (ENOMEM): <c>madvise: ...</c> with the negated errno.</exception>
    public bool Populate(ulong offset, ulong length)
    {
        CheckRange(offset, length);
        RequireAccess(write: false);
        if (length == 0)
        {
            return true;
        }

        // madvise needs a page-aligned start; the pages around the range are populated too (harmless).
        var pageSize = (ulong)Environment.SystemPageSize;
        var start = offset & ~(pageSize - 1);
        var end = offset + length;
        var advice = _writable ? LibC.MADV_POPULATE_WRITE : LibC.MADV_POPULATE_READ;
        using (AcquireHandle())
        {
            while (true)
            {
                if (LibC.madvise(_address + start, (nuint)(end - start), advice) == 0)
                {
                    return true;
                }

                var errno = Marshal.GetLastPInvokeError();
                switch (errno)
                {
                    case LibC.EINTR:
                        continue; // a signal arrived; the pages populated so far stay populated
                    case LibC.EINVAL:
                        return false; // kernel without MADV_POPULATE_* (< 5.14)
                    default:
                        Errors.ThrowErrno(errno, "madvise");
                        return false;
                }
            }
        }
    }
}
