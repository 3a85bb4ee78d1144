namespace Pmem2;

/// <summary>How the kernel should populate the page cache behind a PAGE-granularity file mapping.</summary>
public enum Pmem2PageCacheAdvice
{
    /// <summary>No advice (what libpmem2 does): the kernel's readahead may fill the mapping with large
    /// folios (up to 2 MiB on ext4/xfs with large-folio support), and an msync of one dirty 4 KiB page
    /// then writes back the whole folio.</summary>
    Default = 0,

    /// <summary>
    /// <c>madvise(MADV_RANDOM)</c> on the whole mapping right after mmap, before the first access: no
    /// readahead, so page faults allocate single-page folios and an msync writes back only the pages
    /// that were written. For small scattered persisted writes (the service's unary WriteRegion).
    /// It only changes how pages that are faulted in through this mapping are cached: folios already in
    /// the page cache (for example from a read() of the file) keep their size. Not libpmem2 behaviour.
    /// </summary>
    Random = 1,
}

/// <summary>Extension beyond libpmem2: page-cache advice for PAGE-granularity mappings.</summary>
public sealed partial class Pmem2Config
{
    /// <summary>
    /// Page-cache advice applied when the map's effective granularity is PAGE (ignored for
    /// CACHE_LINE / BYTE maps, which have no page cache, and for anonymous sources). The advice is
    /// best-effort, like posix_madvise: a kernel that refuses it leaves the mapping as libpmem2 would.
    /// Default <see cref="Pmem2PageCacheAdvice.Default"/>.
    /// </summary>
    public Pmem2PageCacheAdvice PageCacheAdvice { get; set; }
}
