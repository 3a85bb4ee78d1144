using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>
/// Owns the pool directory and the one shared pmem2 mapping per region. The directory is the
/// source of truth for which regions exist (so they are found again after a restart); this object
/// only holds the mappings and their reference counts.
/// </summary>
internal sealed class RegionManager : IDisposable
{
    internal const string CreatingPrefix = ".creating-";

    private const int EFBIG = 27;
    private const int ENOSPC = 28;
    private const int EOPNOTSUPP = 95;
    internal const string ProbePrefix = ".probe-";
    internal const string LockFileName = ".pmem-service.lock";

    private readonly ConcurrentDictionary<string, Region> _regions = new(StringComparer.Ordinal);
    private readonly PmemServiceOptions _options;
    private readonly PmemMetrics _metrics;
    private readonly ILogger<RegionManager> _logger;
    private readonly Lock _accountingLock = new();
    private long _mappedBytes;
    private int _activeLeases;
    private volatile bool _shuttingDown;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _poolLock;

    public RegionManager(IOptions<PmemServiceOptions> options, PmemMetrics metrics, ILogger<RegionManager> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        PoolPath = _options.FullPoolPath;
    }

    /// <summary>Absolute pool directory.</summary>
    public string PoolPath { get; }

    /// <summary>Result of the start-up MAP_SYNC probe (null before start).</summary>
    public PoolProbeResult? Probe { get; private set; }

    /// <summary>Sum of the sizes of mapped regions.</summary>
    public long MappedBytes => Interlocked.Read(ref _mappedBytes);

    public bool IsShuttingDown => _shuttingDown;

    /// <summary>Creates the pool directory, removes leftovers of interrupted creations and probes MAP_SYNC.</summary>
    public PoolProbeResult Initialize()
    {
        Directory.CreateDirectory(PoolPath);
        AcquirePoolLock();
        var count = 0;
        foreach (var path in Directory.EnumerateFiles(PoolPath))
        {
            var fileName = System.IO.Path.GetFileName(path);
            if (fileName.StartsWith(CreatingPrefix, StringComparison.Ordinal) || fileName.StartsWith(ProbePrefix, StringComparison.Ordinal))
            {
                File.Delete(path);
                PmemLog.StaleTempFileRemoved(_logger, path);
            }
            else if (RegionName.IsValid(fileName))
            {
                count++;
            }
        }

        PmemLog.RegionsFound(_logger, PoolPath, count);
        Probe = PoolProbe.Run(PoolPath);
        return Probe;
    }

    /// <summary>
    /// One service per pool: two servers mapping the same region files would each believe they own
    /// the reference counts and deletes. FileShare.None takes an exclusive flock on Linux.
    /// </summary>
    private void AcquirePoolLock()
    {
        var path = System.IO.Path.Combine(PoolPath, LockFileName);
        try
        {
            _poolLock = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException(
                $"Another PmemService already uses the pool '{PoolPath}' (it holds {path}); each pool needs exactly one service.", e);
        }
    }

    private void ReleasePoolLock()
    {
        Interlocked.Exchange(ref _poolLock, null)?.Dispose();
    }

    private string PathFor(string name)
    {
        var path = System.IO.Path.Combine(PoolPath, name);
        // Defence in depth: names are validated, but never let a path leave the pool.
        if (!string.Equals(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)), PoolPath.TrimEnd('/'), StringComparison.Ordinal))
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidRegionName, "Region name leaves the pool.", "name");
        }

        return path;
    }

    private void ThrowIfShuttingDown()
    {
        if (_shuttingDown)
        {
            throw PmemServiceException.ShuttingDown();
        }
    }

    /// <summary>MapRegion: open or create, then take one reference on the shared mapping.</summary>
    public async Task<RegionInfo> MapAsync(string name, ulong size, Granularity requiredGranularity, bool createIfMissing, CancellationToken cancellationToken)
    {
        RegionName.Validate(name);
        var required = GranularityConvert.ToPmem2(requiredGranularity, "required_granularity");
        ThrowIfShuttingDown();

        var region = await LockLiveRegionAsync(name, cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfShuttingDown();
            return MapLocked(region, size, required, createIfMissing);
        }
        finally
        {
            region.Gate.Release();
        }
    }

    /// <summary>
    /// The live registry entry for <paramref name="name"/>, with its gate held. An entry retired by a
    /// concurrent delete while we waited on its gate is skipped and the name is looked up again.
    /// </summary>
    private async Task<Region> LockLiveRegionAsync(string name, CancellationToken cancellationToken)
    {
        while (true)
        {
            var region = _regions.GetOrAdd(name, static (n, self) => new Region(n, self.PathFor(n)), this);
            await region.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!region.Deleted)
            {
                return region;
            }

            region.Gate.Release();
        }
    }

    private RegionInfo MapLocked(Region region, ulong size, Pmem2Granularity required, bool createIfMissing)
    {
        var created = false;
        ulong fileSize;
        var file = RegionFile(region);
        if (file is null)
        {
            if (!createIfMissing)
            {
                throw PmemServiceException.NotFound(region.Name);
            }

            if (size == 0)
            {
                throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidRegionSize,
                    "size is required (non-zero) to create a region.", "size");
            }

            if (size > (ulong)_options.MaxRegionSize)
            {
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.RegionSizeLimit,
                    $"Region size {size} exceeds the limit of {_options.MaxRegionSize} bytes (PmemService:MaxRegionSize).", "size")
                    .With("limit", _options.MaxRegionSize);
            }

            // Fail before creating anything when the region could not be mapped anyway
            // (Reserve below re-checks the mapped-bytes limit under its lock).
            if ((ulong)MappedBytes + size > (ulong)_options.MaxMappedBytes)
            {
                Reserve(region.Name, size);
                Unreserve(size);
            }

            // Fail before creating anything when the pool cannot give the granularity asked for.
            var probe = Probe;
            if (probe is not null && !GranularityConvert.Satisfies(probe.Granularity, required))
            {
                throw GranularityError(region.Name, probe.Granularity, required, probe.Reason);
            }

            CreateFile(region, size);
            created = true;
            fileSize = size;
        }
        else
        {
            fileSize = (ulong)file.Length;
            if (size != 0 && size != fileSize)
            {
                throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionSizeMismatch,
                    $"Region '{region.Name}' has {fileSize} bytes, not {size}; regions cannot be resized.", "size")
                    .With("region", region.Name).With("region_size", fileSize).With("requested_size", size);
            }
        }

        RegionMapping? existing;
        lock (region)
        {
            existing = region.Mapping;
            if (existing is not null)
            {
                if (!GranularityConvert.Satisfies(existing.Effective, required))
                {
                    throw GranularityError(region.Name, existing.Effective, required, null);
                }

                region.References++;
                return InfoLocked(region, fileSize, created);
            }
        }

        var reserved = false;
        RegionMapping mapping;
        try
        {
            Reserve(region.Name, fileSize);
            reserved = true;
            using var activity = PmemActivity.Source.StartActivity("pmem.map");
            activity?.SetTag("pmem.granularity.required", GranularityConvert.Name(required));
            mapping = OpenMapping(region.Path, required);
        }
        catch
        {
            if (reserved)
            {
                Unreserve(fileSize);
            }

            if (created)
            {
                // The call failed: leave no region behind that the caller does not know about.
                TryDelete(region.Path);
            }

            throw;
        }

        _metrics.Mapped((long)mapping.Size);
        PmemLog.RegionMapped(_logger, region.Name, mapping.Size, mapping.EffectiveName, mapping.MapSync);
        lock (region)
        {
            region.Mapping = mapping;
            region.References = 1;
            return InfoLocked(region, fileSize, created);
        }
    }

    private static PmemServiceException GranularityError(string name, Pmem2Granularity effective, Pmem2Granularity required, string? why) =>
        new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.GranularityNotSupported,
            $"Region '{name}' can only be mapped at {GranularityConvert.Name(effective)} granularity, coarser than the required {GranularityConvert.Name(required)}"
            + (why is null ? "." : $" ({why})."), "required_granularity")
            .With("region", name).With("effective_granularity", GranularityConvert.Name(effective)).With("required_granularity", GranularityConvert.Name(required));

    private static RegionMapping OpenMapping(string path, Pmem2Granularity required)
    {
        var source = Pmem2Source.Open(path);
        try
        {
            // PageCacheAdvice.Random: single-page folios behind PAGE maps, so a persisted 4 KiB write
            // msyncs 4 KiB instead of a whole large folio (issue 10; docs/benchmarks.md "Service").
            var config = new Pmem2Config { RequiredStoreGranularity = required, PageCacheAdvice = Pmem2PageCacheAdvice.Random };
            var map = Pmem2Map.Create(config, source);
            return new RegionMapping(source, map, required);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a fully allocated region file durably: <see cref="Pmem2Files.Allocate"/> (fallocate
    /// mode 0, no silent sparse fallback when the filesystem lacks fallocate, unlike .NET's
    /// preallocationSize) into a temporary name, fsync, rename, then fsync the pool directory so an
    /// acknowledged region survives a power loss. A crash never leaves a half-created region under
    /// the region's name, and a store never hits an unallocated block (SIGBUS on a full filesystem).
    /// </summary>
    private void CreateFile(Region region, ulong size)
    {
        var temp = System.IO.Path.Combine(PoolPath, $"{CreatingPrefix}{region.Name}-{Guid.NewGuid():N}");
        try
        {
            try
            {
                using var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
                Pmem2Files.Allocate(handle, size);
                RandomAccess.FlushToDisk(handle);
            }
            catch (Pmem2Exception e) when (e.Errno is ENOSPC or EFBIG)
            {
                throw PoolSpaceExhausted(region, size, e);
            }
            catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
            {
                throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.PoolNotPreallocatable,
                    $"The pool's filesystem cannot preallocate region files (fallocate: {e.Message}); a sparse region could crash the service with SIGBUS when the filesystem fills up.", inner: e)
                    .With("region", region.Name).With("pool", PoolPath);
            }
            catch (IOException e) when (e is not Pmem2Exception)
            {
                throw PoolSpaceExhausted(region, size, e);
            }

            try
            {
                File.Move(temp, region.Path, overwrite: false);
            }
            catch (IOException e) when (File.Exists(region.Path))
            {
                throw new PmemServiceException(StatusCode.AlreadyExists, PmemErrorReasons.RegionAlreadyExists,
                    $"A file named '{region.Name}' appeared in the pool while the region was being created.", "name", e);
            }
        }
        catch
        {
            TryDelete(temp);
            throw;
        }

        try
        {
            Pmem2Files.SyncDirectory(PoolPath);
        }
        catch (Pmem2Exception)
        {
            // The name may not be durable: fail the call and leave no region the caller does not know about.
            TryDelete(region.Path);
            throw;
        }

        PmemLog.RegionCreated(_logger, region.Name, size);
    }

    private static PmemServiceException PoolSpaceExhausted(Region region, ulong size, Exception e) =>
        new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.PoolSpaceExhausted,
            $"The pool has no room for {size} bytes: {e.Message}", "size", e).With("region", region.Name).With("size", size);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static FileInfo? RegionFile(Region region)
    {
        var file = new FileInfo(region.Path);
        if (!file.Exists)
        {
            return null;
        }

        if (file.LinkTarget is not null)
        {
            throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMappable,
                $"Region '{region.Name}' is a symbolic link; only regular files in the pool are regions.").With("region", region.Name);
        }

        return file;
    }

    private void Reserve(string name, ulong size)
    {
        lock (_accountingLock)
        {
            if ((ulong)_mappedBytes + size > (ulong)_options.MaxMappedBytes)
            {
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MappedBytesLimit,
                    $"Mapping region '{name}' ({size} bytes) would exceed the {_options.MaxMappedBytes} mapped bytes allowed (PmemService:MaxMappedBytes); {_mappedBytes} are mapped.")
                    .With("region", name).With("limit", _options.MaxMappedBytes).With("mapped_bytes", _mappedBytes);
            }

            _mappedBytes += (long)size;
        }
    }

    private void Unreserve(ulong size)
    {
        lock (_accountingLock)
        {
            _mappedBytes -= (long)size;
        }
    }

    private static RegionInfo InfoLocked(Region region, ulong fileSize, bool created)
    {
        var mapping = region.References > 0 ? region.Mapping : null;
        return new RegionInfo
        {
            Name = region.Name,
            Size = fileSize,
            Mapped = mapping is not null,
            MapReferences = (uint)region.References,
            EffectiveGranularity = mapping is null ? Granularity.Unspecified : GranularityConvert.ToProto(mapping.Effective),
            RequestedGranularity = mapping is null ? Granularity.Unspecified : GranularityConvert.ToProto(mapping.Requested),
            MapSync = mapping?.MapSync ?? false,
            Created = created,
        };
    }

    private static RegionInfo UnmappedInfo(string name, ulong size) => new() { Name = name, Size = size };

    /// <summary>UnmapRegion: drop one reference; the last one persists and unmaps (once no call uses it).</summary>
    public async Task<uint> UnmapAsync(string name, CancellationToken cancellationToken)
    {
        RegionName.Validate(name);
        if (!_regions.TryGetValue(name, out var region))
        {
            throw File.Exists(PathFor(name)) ? PmemServiceException.NotMapped(name) : PmemServiceException.NotFound(name);
        }

        await region.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            RegionMapping? toClose = null;
            uint remaining;
            lock (region)
            {
                if (region.Deleted)
                {
                    throw PmemServiceException.NotFound(name);
                }

                if (region.References == 0)
                {
                    throw PmemServiceException.NotMapped(name);
                }

                remaining = (uint)--region.References;
                if (region.References == 0 && region.Leases == 0)
                {
                    toClose = region.Mapping;
                    region.Mapping = null;
                }
            }

            if (toClose is not null)
            {
                Close(region, toClose, persist: true);
            }

            return remaining;
        }
        finally
        {
            region.Gate.Release();
        }
    }

    /// <summary>Persists (unless the region is gone) and unmaps a mapping detached from its region.</summary>
    private void Close(Region region, RegionMapping mapping, bool persist)
    {
        try
        {
            if (persist && !region.Deleted)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    mapping.Map.Persist(0, mapping.Size);
                    _metrics.Persisted(start, "unmap", mapping.EffectiveName);
                }
                catch (Exception e) when (e is Pmem2Exception or IOException)
                {
                    PmemLog.PersistOnUnmapFailed(_logger, region.Name, e);
                }
            }
        }
        finally
        {
            mapping.Dispose();
            Unreserve(mapping.Size);
            _metrics.Unmapped((long)mapping.Size);
            PmemLog.RegionUnmapped(_logger, region.Name);
        }
    }

    /// <summary>GetRegion.</summary>
    public RegionInfo Get(string name)
    {
        RegionName.Validate(name);
        var path = PathFor(name);
        var file = new FileInfo(path);
        if (!file.Exists || file.LinkTarget is not null)
        {
            throw PmemServiceException.NotFound(name);
        }

        return Describe(name, (ulong)file.Length);
    }

    private RegionInfo Describe(string name, ulong size)
    {
        if (_regions.TryGetValue(name, out var region))
        {
            lock (region)
            {
                if (!region.Deleted)
                {
                    return InfoLocked(region, size, created: false);
                }
            }
        }

        return UnmappedInfo(name, size);
    }

    /// <summary>ListRegions: names in ordinal order; the page token is the last name returned (opaque, base64).</summary>
    public (List<RegionInfo> Regions, string NextPageToken) List(int pageSize, string pageToken)
    {
        if (pageSize < 0)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidPageSize, "page_size must not be negative.", "page_size");
        }

        pageSize = pageSize == 0 ? 100 : Math.Min(pageSize, 1000);
        string? after = null;
        if (!string.IsNullOrEmpty(pageToken))
        {
            after = DecodePageToken(pageToken);
        }

        var names = new List<string>();
        foreach (var path in Directory.EnumerateFiles(PoolPath))
        {
            var fileName = System.IO.Path.GetFileName(path);
            if (RegionName.IsValid(fileName) && (after is null || string.CompareOrdinal(fileName, after) > 0))
            {
                names.Add(fileName);
            }
        }

        names.Sort(StringComparer.Ordinal);
        var result = new List<RegionInfo>(Math.Min(pageSize, names.Count));
        foreach (var name in names)
        {
            if (result.Count == pageSize)
            {
                break;
            }

            var file = new FileInfo(System.IO.Path.Combine(PoolPath, name));
            if (file.Exists && file.LinkTarget is null)
            {
                result.Add(Describe(name, (ulong)file.Length));
            }
        }

        var next = result.Count == pageSize && names.Count > pageSize
            ? Convert.ToBase64String(Encoding.UTF8.GetBytes("r:" + result[^1].Name))
            : string.Empty;
        return (result, next);
    }

    private static string DecodePageToken(string token)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            if (text.StartsWith("r:", StringComparison.Ordinal) && RegionName.IsValid(text[2..]))
            {
                return text[2..];
            }
        }
        catch (FormatException)
        {
        }

        throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidPageToken,
            "page_token was not returned by ListRegions.", "page_token");
    }

    /// <summary>DeleteRegion: refused while mapped unless <paramref name="force"/>.</summary>
    public async Task DeleteAsync(string name, bool force, CancellationToken cancellationToken)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        var region = await LockLiveRegionAsync(name, cancellationToken).ConfigureAwait(false);
        try
        {
            if (RegionFile(region) is null)
            {
                lock (region)
                {
                    if (region.Mapping is null)
                    {
                        // Stale from now on: a MapRegion waiting on this Gate must look the name up again.
                        region.Deleted = true;
                        _regions.TryRemove(new KeyValuePair<string, Region>(name, region));
                    }
                }

                throw PmemServiceException.NotFound(name);
            }

            lock (region)
            {
                if (region.References > 0 && !force)
                {
                    throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionInUse,
                        $"Region '{name}' is mapped ({region.References} references); unmap it first or delete with force.")
                        .With("region", name).With("map_references", region.References);
                }
            }

            File.Delete(region.Path);
            // Make the removal of the directory entry durable before acknowledging the delete, so a
            // power loss cannot bring back a region the client was told is gone.
            Pmem2Files.SyncDirectory(PoolPath);
            RegionMapping? toClose = null;
            lock (region)
            {
                region.Deleted = true;
                region.References = 0;
                if (region.Leases == 0)
                {
                    toClose = region.Mapping;
                    region.Mapping = null;
                }
            }

            _regions.TryRemove(new KeyValuePair<string, Region>(name, region));
            if (toClose is not null)
            {
                Close(region, toClose, persist: false);
            }

            PmemLog.RegionDeleted(_logger, name, force);
        }
        finally
        {
            region.Gate.Release();
        }
    }

    /// <summary>Takes a lease on a mapped region for the duration of one call.</summary>
    public RegionLease Acquire(string name)
    {
        RegionName.Validate(name);
        ThrowIfShuttingDown();
        if (!_regions.TryGetValue(name, out var region))
        {
            throw File.Exists(PathFor(name)) ? PmemServiceException.NotMapped(name) : PmemServiceException.NotFound(name);
        }

        RegionMapping mapping;
        lock (region)
        {
            if (region.Deleted)
            {
                throw PmemServiceException.NotFound(name);
            }

            if (region.Mapping is null || region.References == 0)
            {
                throw File.Exists(region.Path) ? PmemServiceException.NotMapped(name) : PmemServiceException.NotFound(name);
            }

            mapping = region.Mapping;
            region.Leases++;
        }

        Interlocked.Increment(ref _activeLeases);
        return new RegionLease(this, region, mapping);
    }

    internal void Release(Region region)
    {
        RegionMapping? toClose = null;
        lock (region)
        {
            region.Leases--;
            if (region.Leases == 0 && region.References == 0 && region.Mapping is not null)
            {
                toClose = region.Mapping;
                region.Mapping = null;
            }
        }

        Interlocked.Decrement(ref _activeLeases);
        if (toClose is not null)
        {
            Close(region, toClose, persist: !region.Deleted);
        }
    }

    /// <summary>Marks the service as draining (new calls get UNAVAILABLE).</summary>
    public void BeginShutdown() => _shuttingDown = true;

    /// <summary>
    /// Shutdown: refuse new work, wait (bounded by <paramref name="cancellationToken"/>) for calls to
    /// release their leases, then persist and unmap every mapping.
    /// </summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        _shuttingDown = true;
        using var activity = PmemActivity.Source.StartActivity("pmem.shutdown");
        try
        {
            while (Volatile.Read(ref _activeLeases) > 0)
            {
                await Task.Delay(10, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            PmemLog.ShutdownLeasesOutstanding(_logger, Volatile.Read(ref _activeLeases));
        }

        var regions = _regions.Values.ToList();
        PmemLog.ShutdownPersisting(_logger, regions.Count(r => r.Mapping is not null));
        foreach (var region in regions)
        {
            await region.Gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                RegionMapping? toClose = null;
                lock (region)
                {
                    region.References = 0;
                    if (region.Leases == 0)
                    {
                        toClose = region.Mapping;
                        region.Mapping = null;
                    }
                }

                if (toClose is not null)
                {
                    Close(region, toClose, persist: true);
                }
            }
            finally
            {
                region.Gate.Release();
            }
        }

        ReleasePoolLock();
        PmemLog.ShutdownComplete(_logger);
    }

    public void Dispose()
    {
        try
        {
            CloseAll();
        }
        finally
        {
            ReleasePoolLock();
        }
    }

    private void CloseAll()
    {
        foreach (var region in _regions.Values)
        {
            RegionMapping? mapping;
            lock (region)
            {
                // A call still running keeps its mapping; the process exit unmaps it.
                mapping = region.Leases == 0 ? region.Mapping : null;
                if (mapping is not null)
                {
                    region.Mapping = null;
                    region.References = 0;
                }
            }

            if (mapping is not null)
            {
                Close(region, mapping, persist: true);
            }
        }
    }
}
