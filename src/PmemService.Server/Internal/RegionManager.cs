using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>
/// The facade the gRPC service, the hosted service and the health checks use. It owns the pieces
/// and adds nothing of its own: <see cref="PoolDirectory"/> (descriptor-relative file operations,
/// durable create and delete, the pool lock), <see cref="RegionLifecycle"/> (the region state
/// machine: map, unmap, delete, leases, shutdown), <see cref="MappedBytesBudget"/> (MaxMappedBytes)
/// and <see cref="RegionCatalog"/> (GetRegion, ListRegions). See docs/regions.md.
/// </summary>
internal sealed class RegionManager : IDisposable
{
    /// <summary>Prefix of the temporary names of region files being created (removed at start).</summary>
    internal const string CreatingPrefix = PoolDirectory.CreatingPrefix;

    /// <summary>Prefix of probe files (removed at start).</summary>
    internal const string ProbePrefix = PoolDirectory.ProbePrefix;

    /// <summary>The pool lock file.</summary>
    internal const string LockFileName = PoolDirectory.LockFileName;

    private readonly PmemServiceOptions _options;
    private readonly PmemMetrics _metrics;
    private readonly ILogger<RegionManager> _logger;
    private readonly MappedBytesBudget _budget;
    private readonly Lock _probeLock = new();
    private PoolDirectory? _pool;
    private RegionLifecycle? _lifecycle;
    private RegionCatalog? _catalog;
    private RegionAccessControl? _access;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _poolLock;
    private volatile PoolProbeResult? _probe;
    private volatile bool _shuttingDown;

    public RegionManager(IOptions<PmemServiceOptions> options, PmemMetrics metrics, ILogger<RegionManager> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _budget = new MappedBytesBudget(_options.MaxMappedBytes, _options.MaxMappedBytesPerIdentity);
        PoolPath = _options.FullPoolPath;
        Watches = new Sharing.RegionWatchHub(_options.WatchHistoryLength, _options.WatchBufferLength);
        Uploads = new Sharing.RegionUploads(_options.MaxUploadsPerRegion, _options.UploadRecordTtl);
    }

    /// <summary>WatchRegion's per-region event logs (Sharing/RegionWatchHub): every call that persists a range publishes it here.</summary>
    internal Sharing.RegionWatchHub Watches { get; }

    /// <summary>Resumable upload records (Sharing/RegionUploads), kept with each region file.</summary>
    internal Sharing.RegionUploads Uploads { get; }

    /// <summary>GetUpload: the record of <paramref name="uploadId"/> for region <paramref name="name"/> (NOT_FOUND UPLOAD_NOT_FOUND when none).</summary>
    public UploadInfo GetUpload(string name, string uploadId, RegionCaller? caller = null)
    {
        RegionName.Validate(name);
        Sharing.RegionUploads.ValidateId(uploadId);
        _ = Catalog.Get(name, caller, AccessRights.Read, "GetUpload"); // NOT_FOUND for a region that does not exist (or one the caller may not see)
        return Uploads.Get(name, Path.Combine(PoolPath, name), uploadId)
            ?? throw new PmemServiceException(Grpc.Core.StatusCode.NotFound, PmemErrorReasons.UploadNotFound,
                $"Region '{name}' has no record of upload '{uploadId}' (never started, expired, dropped beyond PmemService:MaxUploadsPerRegion, or the region was deleted).", "upload_id")
                .With("region", name).With("upload_id", uploadId);
    }

    /// <summary>WatchRegion: subscribes to a region's events (the region must exist).</summary>
    public Sharing.RegionWatchHub.WatchSubscription Watch(string name, ulong afterSequence, string epoch, bool fromHistory, RegionCaller? caller = null)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        _ = Catalog.Get(name, caller, AccessRights.Read, "WatchRegion"); // NOT_FOUND for a region that does not exist (or one the caller may not see)
        return Watches.Subscribe(name, afterSequence, epoch, fromHistory);
    }

    /// <summary>Absolute pool directory.</summary>
    public string PoolPath { get; }

    /// <summary>Result of the latest MAP_SYNC probe (null before start).</summary>
    public PoolProbeResult? Probe => _probe;

    /// <summary>Sum of the sizes of mapped regions.</summary>
    public long MappedBytes => _budget.Bytes;

    public bool IsShuttingDown => _shuttingDown || (_lifecycle?.IsShuttingDown ?? false);

    /// <summary>Whether the pool lock could only be taken read-only (the pool's filesystem is read-only).</summary>
    public bool PoolReadOnly { get; private set; }

    /// <summary>Direct-access grants and leases (DirectAccess/): counted in Get/List, they block a delete without force.</summary>
    internal DirectAccess.DirectLeaseRegistry DirectLeases { get; } = new();

    /// <summary>Registry entries (tests: names that never existed must not leave entries behind).</summary>
    internal int RegistryCount => _lifecycle?.EntryCount ?? 0;

    /// <summary>Per-region access control (owner, access lists, region-count quota).</summary>
    internal RegionAccessControl Access => _access ?? throw new InvalidOperationException("The pool is not initialized yet.");

    /// <summary>Mapped bytes charged to <paramref name="owner"/> (MaxMappedBytesPerIdentity).</summary>
    internal long MappedBytesOf(string owner) => _budget.BytesOf(owner);

    private RegionLifecycle Lifecycle => _lifecycle ?? throw new InvalidOperationException("The pool is not initialized yet.");

    private RegionCatalog Catalog => _catalog ?? throw new InvalidOperationException("The pool is not initialized yet.");

    /// <summary>
    /// Opens the pool directory (created if missing), takes the pool lock, removes leftovers of
    /// interrupted creations and probes MAP_SYNC. A probe that cannot run (full or read-only pool)
    /// does not stop the start: readiness says NOT_SERVING with the reason.
    /// </summary>
    public PoolProbeResult Initialize()
    {
        var pool = new PoolDirectory(PoolPath, _options.PoolDirectoryMode, _options.RegionFileMode, _options.ZeroFillOnCreate);
        PoolPermissions.Check(PoolPath, _logger);
        _pool = pool;
        _poolLock = pool.AcquireLock(out var readOnly);
        PoolReadOnly = readOnly;
        if (readOnly)
        {
            PmemLog.PoolReadOnly(_logger, PoolPath);
        }

        var count = 0;
        var regionNames = new List<string>();
        foreach (var fileName in pool.Names())
        {
            if (fileName.StartsWith(PoolDirectory.CreatingPrefix, StringComparison.Ordinal) || fileName.StartsWith(PoolDirectory.ProbePrefix, StringComparison.Ordinal))
            {
                if (pool.TryDelete(fileName))
                {
                    PmemLog.StaleTempFileRemoved(_logger, Path.Combine(PoolPath, fileName));
                }
                else
                {
                    PmemLog.StaleTempFileKept(_logger, Path.Combine(PoolPath, fileName), readOnly ? "read-only pool" : "unlink failed");
                }
            }
            else if (RegionName.IsValid(fileName))
            {
                count++;
                regionNames.Add(fileName);
            }
        }

        PmemLog.RegionsFound(_logger, PoolPath, count);
        var access = new RegionAccessControl(pool, _options, _logger);
        var legacy = access.Scan(regionNames);
        PmemLog.RegionAccessModeStarted(_logger, _options.RegionAccess, count, legacy);
        if (_options.RegionAccess == RegionAccessMode.Shared)
        {
            PmemLog.RegionAccessShared(_logger);
        }

        _access = access;
        _lifecycle = new RegionLifecycle(pool, _budget, _options, _metrics, _logger, () => _probe, access);
        _catalog = new RegionCatalog(pool, _lifecycle, access);
        var probe = PoolProbe.Run(pool);
        _probe = probe;
        if (probe.Error is not null)
        {
            PmemLog.PoolProbeFailed(_logger, probe.Error);
        }

        return probe;
    }

    /// <summary>Runs the probe again when the last one could not run (readiness calls this); returns the latest result.</summary>
    public PoolProbeResult? ReprobeIfFailed()
    {
        if (_probe is { Error: not null } && _pool is { } pool)
        {
            lock (_probeLock)
            {
                if (_probe is { Error: not null })
                {
                    _probe = PoolProbe.Run(pool);
                }
            }
        }

        return _probe;
    }

    /// <summary>MapRegion: open or create, then take one reference on the shared mapping.</summary>
    public Task<RegionInfo> MapAsync(string name, ulong size, Granularity requiredGranularity, bool createIfMissing, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        RegionName.Validate(name);
        var required = GranularityConvert.ToPmem2(requiredGranularity, "required_granularity");
        ThrowIfShuttingDown();
        return Lifecycle.MapAsync(name, size, required, createIfMissing, cancellationToken, caller);
    }

    /// <summary>UnmapRegion: drop one reference; the last one waits for running calls, persists and unmaps, and reports a persist failure.</summary>
    public Task<uint> UnmapAsync(string name, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        RegionName.Validate(name);
        return Lifecycle.UnmapAsync(name, cancellationToken, caller);
    }

    /// <summary>GetRegion.</summary>
    public RegionInfo Get(string name, RegionCaller? caller = null, AccessRights needed = AccessRights.Read, string operation = "GetRegion")
    {
        RegionName.Validate(name);
        var info = Catalog.Get(name, caller, needed, operation);
        info.DirectLeases = (uint)DirectLeases.CountFor(name);
        info.WatchSequence = Watches.LatestSequence(name);
        info.WatchEpoch = Watches.Epoch;
        return info;
    }

    /// <summary>ListRegions.</summary>
    public (List<RegionInfo> Regions, string NextPageToken) List(int pageSize, string pageToken, RegionCaller? caller = null)
    {
        var page = Catalog.List(pageSize, pageToken, caller);
        if (DirectLeases.Count > 0)
        {
            foreach (var info in page.Regions)
            {
                info.DirectLeases = (uint)DirectLeases.CountFor(info.Name);
            }
        }

        return page;
    }

    /// <summary>DeleteRegion: refused while mapped or held by a direct lease unless <paramref name="force"/>;
    /// a delete revokes every direct lease on the name (they are left with the unlinked inode).</summary>
    public async Task DeleteAsync(string name, bool force, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        // The direct-lease check runs inside the lifecycle's critical section (see RegionLifecycle.DeleteAsync).
        await Lifecycle.DeleteAsync(name, force, DirectLeases.CountFor, cancellationToken, caller).ConfigureAwait(false);
        Watches.RegionDeleted(name);
        if (DirectLeases.Revoke(name) is > 0 and var revoked)
        {
            PmemLog.DirectLeasesRevoked(_logger, name, revoked, "deleted");
        }
    }

    /// <summary>The region file's status (regular file, not following symlinks), null when absent; REGION_NOT_MAPPABLE for other entries.</summary>
    internal Pmem2FileStatus? StatRegion(string name)
    {
        RegionName.Validate(name);
        return (_pool ?? throw new InvalidOperationException("The pool is not initialized yet.")).LookupRegion(name);
    }

    /// <summary>Opens the region file for a direct lease through the pool descriptor (O_NOFOLLOW), read-only or read-write.</summary>
    internal (Microsoft.Win32.SafeHandles.SafeFileHandle Handle, Pmem2FileStatus Status) OpenForDirect(string name, bool writable)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        return (_pool ?? throw new InvalidOperationException("The pool is not initialized yet.")).OpenRegion(name, writable);
    }

    /// <summary>Takes a lease on a mapped region for the duration of one call.</summary>
    public RegionLease Acquire(string name)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        return Lifecycle.Acquire(name);
    }

    /// <summary>A second lease on the mapping a call already leased and checked (<see cref="RegionLifecycle.AcquireSameMapping"/>); null when it is no longer the region's mapping.</summary>
    internal RegionLease? AcquireSameMapping(string name, RegionMapping expected)
    {
        ThrowIfShuttingDown();
        return Lifecycle.AcquireSameMapping(name, expected);
    }

    /// <summary>Takes a call lease and registers <paramref name="lease"/> in the same critical section as
    /// DeleteRegion's direct-lease check; refused (REGION_DELETED) once a delete has passed that check.</summary>
    internal RegionLease AcquireForDirectLease(string name, DirectAccess.DirectLease lease)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        return Lifecycle.Acquire(name, registerDirectLease: () => DirectLeases.Add(lease));
    }

    /// <summary>A lease for a call of <paramref name="caller"/> that needs <paramref name="needed"/> (checked on the mapped inode's access list).</summary>
    public RegionLease Acquire(string name, RegionCaller caller, AccessRights needed, string operation)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        return Lifecycle.Acquire(name, caller, needed, operation);
    }

    private void ThrowIfShuttingDown()
    {
        if (IsShuttingDown)
        {
            throw PmemServiceException.ShuttingDown();
        }
    }

    /// <summary>Marks the service as draining (new calls get UNAVAILABLE).</summary>
    public void BeginShutdown()
    {
        _shuttingDown = true;
        _lifecycle?.BeginShutdown();
    }

    /// <summary>
    /// Shutdown: refuse new work, wait (bounded) for calls, persist and unmap every mapping. A
    /// persist failure fails the stop (an IOException naming the regions), after every region was closed.
    /// </summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        BeginShutdown();
        using var activity = PmemActivity.Source.StartActivity("pmem.shutdown");
        List<(string Region, Exception Error)> failures = [];
        try
        {
            if (_lifecycle is { } lifecycle)
            {
                failures = await lifecycle.ShutdownAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ReleasePoolLock();
        }

        if (failures.Count > 0)
        {
            throw new IOException(
                $"Shutdown could not persist {failures.Count} region(s): {string.Join(", ", failures.Select(f => $"{f.Region} ({f.Error.Message})"))}; bytes written with defer_persist since their last PersistRegion may be lost.",
                new AggregateException(failures.Select(f => f.Error)));
        }

        PmemLog.ShutdownComplete(_logger);
    }

    private void ReleasePoolLock() => Interlocked.Exchange(ref _poolLock, null)?.Dispose();

    public void Dispose()
    {
        try
        {
            _lifecycle?.CloseAll();
        }
        finally
        {
            ReleasePoolLock();
            _pool?.Dispose();
        }
    }
}
