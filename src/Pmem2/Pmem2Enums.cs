namespace Pmem2;

/// <summary>Store granularity (enum pmem2_granularity). Ordered from finest to coarsest.</summary>
public enum Pmem2Granularity
{
    /// <summary>PMEM2_GRANULARITY_BYTE: stores are persistent once globally visible (eADR).</summary>
    Byte = 0,
    /// <summary>PMEM2_GRANULARITY_CACHE_LINE: CPU cache lines must be flushed (DAX + MAP_SYNC).</summary>
    CacheLine = 1,
    /// <summary>PMEM2_GRANULARITY_PAGE: dirty pages must be written back with msync.</summary>
    Page = 2,
}

/// <summary>Sharing type (enum pmem2_sharing_type).</summary>
public enum Pmem2Sharing
{
    /// <summary>PMEM2_SHARED: writes reach the file.</summary>
    Shared = 0,
    /// <summary>PMEM2_PRIVATE: copy-on-write; writes never reach the file.</summary>
    Private = 1,
}

/// <summary>Protection flags (PMEM2_PROT_*), with libpmem2's bit values.</summary>
[Flags]
public enum Pmem2Protection : uint
{
    /// <summary>PMEM2_PROT_NONE.</summary>
    None = 0,
    /// <summary>PMEM2_PROT_EXEC.</summary>
    Exec = 1u << 29,
    /// <summary>PMEM2_PROT_READ.</summary>
    Read = 1u << 30,
    /// <summary>PMEM2_PROT_WRITE.</summary>
    Write = 1u << 31,
}

/// <summary>Flags of memcpy / memmove / memset (PMEM2_F_MEM_*), with libpmem2's values.</summary>
[Flags]
public enum Pmem2MemFlags : uint
{
    /// <summary>Default behaviour.</summary>
    None = 0,
    /// <summary>PMEM2_F_MEM_NODRAIN: skip the final drain.</summary>
    NoDrain = 1,
    /// <summary>PMEM2_F_MEM_NONTEMPORAL: use non-temporal stores.</summary>
    NonTemporal = 2,
    /// <summary>PMEM2_F_MEM_TEMPORAL: use temporal stores plus flushes.</summary>
    Temporal = 4,
    /// <summary>PMEM2_F_MEM_WC: write-combining hint (non-temporal on x86).</summary>
    WriteCombining = 8,
    /// <summary>PMEM2_F_MEM_WB: write-back hint (temporal on x86).</summary>
    WriteBack = 16,
    /// <summary>PMEM2_F_MEM_NOFLUSH: plain copy, no flush, no drain, no msync.</summary>
    NoFlush = 32,
}

/// <summary>Kind of a <see cref="Pmem2Source"/>.</summary>
public enum Pmem2SourceType
{
    /// <summary>Anonymous memory (pmem2_source_from_anon).</summary>
    Anonymous,
    /// <summary>A regular file.</summary>
    RegularFile,
    /// <summary>A device DAX character device.</summary>
    DeviceDax,
}

/// <summary>The CPU cache-flush instruction used for CACHE_LINE granularity.</summary>
public enum Pmem2FlushInstruction
{
    /// <summary>No CPU flush is available (or executable memory was refused): flushes fall back to msync.</summary>
    Msync,
    /// <summary>CLFLUSH.</summary>
    Clflush,
    /// <summary>CLFLUSHOPT.</summary>
    Clflushopt,
    /// <summary>CLWB.</summary>
    Clwb,
}
