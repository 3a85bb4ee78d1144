using Grpc.Core;
using Microsoft.Win32.SafeHandles;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// The states of a region (see docs/regions.md). Only <see cref="Creating"/>, <see cref="Mapped"/>,
/// <see cref="Draining"/> and <see cref="Failed"/> have an entry in the registry; a region that is
/// <see cref="Absent"/>, <see cref="Closed"/> or <see cref="Deleted"/> is known from the pool
/// directory alone, so a name that never existed leaves nothing behind.
/// </summary>
internal enum RegionState
{
    /// <summary>No file (an entry in this state exists only while a transition holds its gate).</summary>
    Absent,

    /// <summary>MapRegion(create) is writing the file durably.</summary>
    Creating,

    /// <summary>The file exists and is not mapped.</summary>
    Closed,

    /// <summary>One shared mapping, bound to the file's identity, with at least one MapRegion reference.</summary>
    Mapped,

    /// <summary>The last UnmapRegion waits for running calls, then persists and unmaps.</summary>
    Draining,

    /// <summary>The file was deleted by DeleteRegion (terminal for this entry).</summary>
    Deleted,

    /// <summary>The file changed outside the service (removed, replaced, truncated): the mapping is retired;
    /// the entry stays until its references are dropped or a MapRegion replaces it.</summary>
    Failed,
}

/// <summary>
/// A registry entry. <see cref="Gate"/> serializes the slow transitions (create, map, last unmap,
/// delete, shutdown); the monitor of this object guards the fields below, which the data path reads
/// on every call. Once <see cref="Retired"/> the entry is out of the registry and a caller that
/// waited on its gate looks the name up again.
/// </summary>
internal sealed class Region
{
    public Region(string name) => Name = name;

    public string Name { get; }

    public SemaphoreSlim Gate { get; } = new(1, 1);

    // Guarded by lock(this).
    public RegionState State = RegionState.Absent;

    /// <summary>The shared mapping in <see cref="RegionState.Mapped"/> and <see cref="RegionState.Draining"/>.</summary>
    public RegionMapping? Mapping;

    /// <summary>MapRegion references (Mapped, Draining: 0 while the last unmap runs, Failed).</summary>
    public int References;

    /// <summary>Why the region is <see cref="RegionState.Failed"/>.</summary>
    public string? FailureReason;

    /// <summary>The entry left the registry; it must not be used for new transitions.</summary>
    public bool Retired;

    /// <summary>A DeleteRegion has passed its checks (direct leases included) and is unlinking: no new
    /// direct lease is granted on this region (issue 11: check and delete in one critical section).</summary>
    public bool Deleting;
}

/// <summary>
/// One pmem2 mapping of one region file, bound to the file's identity (st_dev, st_ino). Counts the
/// calls using it (leases) and is unmapped exactly once: when it is retired and no lease remains.
/// </summary>
internal sealed class RegionMapping
{
    private readonly Lock _lock = new();
    private readonly Action<RegionMapping> _onClosed;
    private int _leases;
    private bool _retired;
    private bool _closed;
    private TaskCompletionSource? _idle;

    public RegionMapping(string name, SafeFileHandle file, Pmem2FileStatus identity, Pmem2Source source, Pmem2Map map,
        Pmem2Granularity requested, Action<RegionMapping> onClosed)
    {
        Name = name;
        File = file;
        Identity = identity;
        Source = source;
        Map = map;
        Requested = requested;
        Size = map.Size;
        Effective = map.StoreGranularity;
        MapSync = map.IsMapSync;
        EffectiveName = GranularityConvert.Name(Effective);
        _onClosed = onClosed;
    }

    public string Name { get; }

    /// <summary>The descriptor the mapping was made from (owned).</summary>
    public SafeFileHandle File { get; }

    /// <summary>The file's identity and size when it was mapped.</summary>
    public Pmem2FileStatus Identity { get; }

    public Pmem2Source Source { get; }

    public Pmem2Map Map { get; }

    public Pmem2Granularity Requested { get; }

    public Pmem2Granularity Effective { get; }

    public string EffectiveName { get; }

    public bool MapSync { get; }

    public ulong Size { get; }

    /// <summary>The region's owner when it was mapped: its mapped bytes are charged to it (MaxMappedBytesPerIdentity).</summary>
    public string? Owner { get; set; }

    /// <summary>Set when the region was deleted (running calls then fail with REGION_DELETED).</summary>
    public volatile bool Deleted;

    /// <summary>Set when the file changed outside the service (running calls then fail with REGION_FILE_CHANGED).</summary>
    public volatile string? ChangedReason;

    public int Leases
    {
        get
        {
            lock (_lock)
            {
                return _leases;
            }
        }
    }

    /// <summary>Takes a lease unless the mapping is retired.</summary>
    public bool TryLease()
    {
        lock (_lock)
        {
            if (_retired)
            {
                return false;
            }

            _leases++;
            return true;
        }
    }

    public void EndLease()
    {
        bool close;
        lock (_lock)
        {
            _leases--;
            if (_leases == 0)
            {
                _idle?.TrySetResult();
                _idle = null;
            }

            close = _leases == 0 && _retired && !_closed;
            _closed |= close;
        }

        if (close)
        {
            Close();
        }
    }

    /// <summary>Completes when no lease is held (bounded by <paramref name="cancellationToken"/>).</summary>
    public Task WhenIdleAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_leases == 0)
            {
                return Task.CompletedTask;
            }

            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idle.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>No new lease from now on; unmaps now, or when the last running call ends.</summary>
    public void Retire()
    {
        bool close;
        lock (_lock)
        {
            _retired = true;
            close = _leases == 0 && !_closed;
            _closed |= close;
        }

        if (close)
        {
            Close();
        }
    }

    /// <summary>
    /// Whether the file still is what was mapped: same identity at <paramref name="current"/> (the
    /// directory entry now), still linked, and not shorter than the mapping (a store or load past
    /// the end of a truncated file is SIGBUS). Returns the reason when it is not.
    /// </summary>
    public string? CheckFile(Pmem2FileStatus? current)
    {
        // Fast path, one syscall per call: when the directory entry (fstatat with AT_SYMLINK_NOFOLLOW)
        // is the mapped inode, its status *is* the inode's status, so it answers "still linked" and "not
        // shorter than the mapping" as an fstat of our descriptor would. Only a mismatch pays for the
        // fstat that names the precise reason below (a second syscall was ~3 % of a 4 KiB WriteRegion).
        if (current is { } same && same.IsSameFile(Identity) && same.Links > 0 && same.Size >= 0 && (ulong)same.Size >= Size)
        {
            return null;
        }

        Pmem2FileStatus now;
        try
        {
            now = Pmem2Files.GetStatus(File);
        }
        catch (Pmem2Exception e)
        {
            return $"fstat failed: {e.Message}";
        }

        if (now.Links == 0)
        {
            return "the file was removed";
        }

        if ((ulong)now.Size < Size)
        {
            return $"the file was truncated to {now.Size} bytes (mapped {Size})";
        }

        if (current is not { } entry)
        {
            return "the file was removed from the pool";
        }

        if (!entry.IsSameFile(Identity))
        {
            return "another file took the region's name";
        }

        return null;
    }

    /// <summary>fstat-only check for the data path of a running call (no directory lookup).</summary>
    public string? CheckOpenFile()
    {
        try
        {
            var now = Pmem2Files.GetStatus(File);
            return (ulong)now.Size < Size ? $"the file was truncated to {now.Size} bytes (mapped {Size})" : null;
        }
        catch (Pmem2Exception e)
        {
            return $"fstat failed: {e.Message}";
        }
    }

    private void Close()
    {
        try
        {
            Map.Dispose();
            Source.Dispose();
            File.Dispose();
        }
        finally
        {
            _onClosed(this);
        }
    }
}

/// <summary>
/// A call's hold on a mapping: while any lease is open the mapping stays mapped even if it is
/// retired (the unmap happens when the last lease is disposed).
/// </summary>
internal sealed class RegionLease : IDisposable, DataPath.IRegionReader
{
    private readonly Action _onEnd;
    private int _disposed;

    public RegionLease(string name, RegionMapping mapping, Action onEnd)
    {
        Name = name;
        Mapping = mapping;
        _onEnd = onEnd;
    }

    public RegionMapping Mapping { get; }

    /// <summary>The leased mapping's state (<c>lease.Region.Deleted</c>).</summary>
    public RegionMapping Region => Mapping;

    public Pmem2Map Map => Mapping.Map;

    public string Name { get; }

    public ulong Size => Mapping.Size;

    /// <summary>
    /// Throws REGION_DELETED when the region was force-deleted since the lease was taken, and DATA_LOSS
    /// REGION_FILE_CHANGED when the file was truncated or replaced (one fstat: a store or load past the
    /// end of a truncated file would be SIGBUS).
    /// </summary>
    public void ThrowIfDeleted()
    {
        if (Mapping.Deleted)
        {
            throw PmemServiceException.Deleted(Name);
        }

        if ((Mapping.ChangedReason ?? Mapping.CheckOpenFile()) is { } why)
        {
            throw FileChanged(Name, why);
        }
    }

    /// <summary>
    /// Reads through the file descriptor (pread), not the mapping: on a file truncated underneath, a
    /// load from the mapping is SIGBUS (the process dies), pread returns a short read, which is
    /// reported as REGION_FILE_CHANGED. The page cache (or DAX media) is shared with the mapping, so
    /// pread sees every store made through it.
    /// </summary>
    public void Read(ulong offset, Span<byte> destination)
    {
        try
        {
            Mapping.Source.PreadMcsafe(destination, offset);
        }
        catch (Pmem2Exception e) when (e.Code is Pmem2ErrorCode.LengthOutOfRange or Pmem2ErrorCode.OffsetOutOfRange)
        {
            throw FileChanged(Name, $"the file is shorter than the mapping ({e.Message})");
        }
    }

    public static PmemServiceException FileChanged(string name, string why) =>
        new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.RegionFileChanged,
            $"Region '{name}' changed outside the service: {why}. Its mapping was retired; bytes acknowledged in it may be lost. Unmap it and map it again.")
            .With("region", name).With("why", why);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Mapping.EndLease();
            _onEnd();
        }
    }
}
