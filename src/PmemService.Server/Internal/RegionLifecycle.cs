using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>
/// The region state machine (docs/regions.md): Absent → Creating → Closed → Mapped → Draining →
/// Closed, with Deleted and Failed. Every transition, its persist and its failure handling is
/// written once here:
/// <list type="bullet">
/// <item>Map: Absent → Creating → Mapped (durable create), Closed → Mapped, Mapped → Mapped (one more
/// reference, only while the file is still the one mapped), Failed → (replaced) → Mapped.</item>
/// <item>Unmap: Mapped → Mapped (a reference less); the last one Mapped → Draining (wait for running
/// calls, bounded by the call) → persist → Closed; a persist failure is the call's status.</item>
/// <item>Delete: Closed/Mapped/Failed → Deleted (unlink, directory fsync; the mapping is retired
/// without persist).</item>
/// <item>Fail: Mapped → Failed when the file was removed, replaced or truncated outside the service
/// (detected whenever the directory or the file is consulted); the mapping is retired, never reused.</item>
/// <item>Shutdown: Mapped → Closed (persist; failures reported to the host).</item>
/// </list>
/// Registry entries exist only for Creating, Mapped, Draining and Failed regions (and while a
/// transition runs), so names that never existed leave nothing behind.
/// </summary>
internal sealed class RegionLifecycle
{
    private readonly ConcurrentDictionary<string, Region> _entries = new(StringComparer.Ordinal);
    private readonly PoolDirectory _pool;
    private readonly MappedBytesBudget _budget;
    private readonly PmemServiceOptions _options;
    private readonly PmemMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Func<PoolProbeResult?> _probe;
    private readonly Action _leaseEnded;
    private readonly RegionAccessControl _access;
    private int _activeLeases;
    private volatile bool _shuttingDown;

    public RegionLifecycle(PoolDirectory pool, MappedBytesBudget budget, PmemServiceOptions options, PmemMetrics metrics,
        ILogger logger, Func<PoolProbeResult?> probe, RegionAccessControl access)
    {
        _access = access;
        _pool = pool;
        _budget = budget;
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _probe = probe;
        _leaseEnded = () => Interlocked.Decrement(ref _activeLeases);
    }

    public bool IsShuttingDown => _shuttingDown;

    /// <summary>Registry entries (regions in Creating, Mapped, Draining or Failed, plus transitions running).</summary>
    public int EntryCount => _entries.Count;

    public int ActiveLeases => Volatile.Read(ref _activeLeases);

    public void BeginShutdown() => _shuttingDown = true;

    private void ThrowIfShuttingDown()
    {
        if (_shuttingDown)
        {
            throw PmemServiceException.ShuttingDown();
        }
    }

    // ---- entries ---------------------------------------------------------------------------------

    /// <summary>The live entry for <paramref name="name"/> with its gate held (retired entries are skipped).</summary>
    private async Task<Region> EnterAsync(string name, CancellationToken cancellationToken)
    {
        while (true)
        {
            var region = _entries.GetOrAdd(name, static n => new Region(n));
            await region.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (region)
            {
                if (!region.Retired)
                {
                    return region;
                }
            }

            region.Gate.Release();
        }
    }

    /// <summary>Releases the gate; an entry whose region is Absent, Closed or Deleted leaves the registry.</summary>
    private void Exit(Region region)
    {
        lock (region)
        {
            if (region.State is RegionState.Absent or RegionState.Closed or RegionState.Deleted && !region.Retired)
            {
                region.Retired = true;
                _entries.TryRemove(new KeyValuePair<string, Region>(region.Name, region));
            }
        }

        region.Gate.Release();
    }

    /// <summary>NOT_MAPPED when a regular file has the name, NOT_FOUND otherwise (from the directory).</summary>
    private PmemServiceException NotMappedOrNotFound(string name) =>
        _pool.Stat(name) is { IsRegularFile: true } ? PmemServiceException.NotMapped(name) : PmemServiceException.NotFound(name);

    /// <summary>Mapped → Failed: the file changed outside the service; the mapping is retired (never reused).</summary>
    private void Fail(Region region, RegionMapping mapping, string why)
    {
        lock (region)
        {
            if (!ReferenceEquals(region.Mapping, mapping) || region.State != RegionState.Mapped)
            {
                // Draining: the last unmap owns the mapping and sees the change before it persists.
                mapping.ChangedReason ??= why;
                return;
            }

            region.Mapping = null;
            region.State = RegionState.Failed;
            region.FailureReason = why;
        }

        mapping.ChangedReason = why;
        PmemLog.RegionFileChanged(_logger, region.Name, why);
        mapping.Retire();
    }

    // ---- Map -------------------------------------------------------------------------------------

    public async Task<RegionInfo> MapAsync(string name, ulong size, Pmem2Granularity required, bool createIfMissing, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        ThrowIfShuttingDown();
        var region = await EnterAsync(name, cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfShuttingDown();
            return Map(region, size, required, createIfMissing, caller, cancellationToken);
        }
        finally
        {
            Exit(region);
        }
    }

    private RegionInfo Map(Region region, ulong size, Pmem2Granularity required, bool createIfMissing, RegionCaller? caller, CancellationToken cancellationToken)
    {
        var name = region.Name;
        var status = _pool.Stat(name);

        // Per-region access, under the region's gate: mapping an existing region needs read; a caller with no
        // right is told NOT_FOUND, or PERMISSION_DENIED when it asked to create (the name is taken).
        string? owner = null;
        RegionAcl? acl = null;
        if (status is { IsRegularFile: true } existing)
        {
            acl = _access.Read(name, existing);
            _access.Demand(caller, "MapRegion", name, acl, AccessRights.Read, nameTakenIsDenied: createIfMissing);
            owner = acl?.Owner;
        }

        // Mapped → Mapped only while the directory entry is still the file that is mapped.
        if (MappingMatching(region, status) is { } current)
        {
            var existingSize = (ulong)status!.Value.Size;
            CheckSize(name, size, existingSize);
            if (!GranularityConvert.Satisfies(current.Effective, required))
            {
                throw GranularityError(name, current.Effective, required, null);
            }

            lock (region)
            {
                region.References++;
                return WithAccess(Info(region, existingSize, created: false), caller, acl);
            }
        }

        // A symlink or other non-regular entry under the name: REGION_NOT_MAPPABLE (after the stale mapping was failed).
        status = PoolDirectory.RequireRegular(name, status);
        lock (region)
        {
            if (region.State == RegionState.Failed)
            {
                // A Failed region is replaced by a fresh mapping; the old references are void.
                region.State = RegionState.Absent;
                region.References = 0;
                region.FailureReason = null;
            }
        }

        var created = false;
        SafeFileHandle handle;
        Pmem2FileStatus file;
        if (status is null)
        {
            if (!createIfMissing)
            {
                throw PmemServiceException.NotFound(name);
            }

            CheckCreatable(name, size, required);
            // The creator owns the region (region-count quota checked and counted here).
            acl = caller is null ? null : _access.ReserveCreate(caller, name);
            owner = acl?.Owner;
            try
            {
                ReserveBudget(name, size, owner); // fail before creating anything
            }
            catch
            {
                if (owner is not null)
                {
                    _access.Uncount(owner);
                }

                throw;
            }

            try
            {
                lock (region)
                {
                    region.State = RegionState.Creating;
                }

                var attribute = acl is null ? default : _access.AttributeFor(acl);
                (handle, file) = _pool.CreateRegion(name, size, attribute.Value, attribute.Required, cancellationToken);
            }
            catch
            {
                _budget.Release(size, owner);
                if (owner is not null)
                {
                    _access.Uncount(owner);
                }

                lock (region)
                {
                    region.State = RegionState.Absent;
                }

                throw;
            }

            created = true;
            if (acl is not null)
            {
                _access.Created(file, acl);
            }

            PmemLog.RegionCreated(_logger, name, size);
        }
        else
        {
            (handle, file) = _pool.OpenRegion(name);
            try
            {
                CheckSize(name, size, (ulong)file.Size);
                ReserveBudget(name, (ulong)file.Size, owner);
            }
            catch
            {
                handle.Dispose();
                lock (region)
                {
                    region.State = RegionState.Closed;
                }

                throw;
            }
        }

        var fileSize = (ulong)file.Size;
        RegionMapping mapping;
        try
        {
            using var activity = PmemActivity.Source.StartActivity("pmem.map");
            activity?.SetTag("pmem.granularity.required", GranularityConvert.Name(required));
            mapping = OpenMapping(name, handle, file, required);
        }
        catch
        {
            _budget.Release(fileSize, owner);
            handle.Dispose();
            if (created)
            {
                // The call failed: leave no region behind that the caller does not know about.
                _pool.TryDelete(name);
                _access.Deleted(file, acl);
            }

            lock (region)
            {
                region.State = created ? RegionState.Absent : RegionState.Closed;
            }

            throw;
        }

        mapping.Owner = owner;
        _metrics.Mapped((long)mapping.Size);
        PmemLog.RegionMapped(_logger, name, mapping.Size, mapping.EffectiveName, mapping.MapSync);
        lock (region)
        {
            region.Mapping = mapping;
            region.State = RegionState.Mapped;
            region.References = 1;
            return WithAccess(Info(region, fileSize, created), caller, acl);
        }
    }

    /// <summary>MaxMappedBytes / MaxMappedBytesPerIdentity (charged to the region's owner); a per-owner refusal is logged (event 111).</summary>
    private void ReserveBudget(string name, ulong size, string? owner)
    {
        try
        {
            _budget.Reserve(name, size, owner);
        }
        catch (PmemServiceException e) when (e.Reason == PmemErrorReasons.MappedBytesQuota && owner is not null)
        {
            PmemLog.RegionQuotaExceeded(_logger, owner, name, "mapped bytes", _budget.BytesOf(owner), _options.MaxMappedBytesPerIdentity);
            throw;
        }
    }

    private void CheckCreatable(string name, ulong size, Pmem2Granularity required)
    {
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

        // Fail before creating anything when the pool cannot give the granularity asked for.
        if (_probe() is { Error: null } probe && !GranularityConvert.Satisfies(probe.Granularity, required))
        {
            throw GranularityError(name, probe.Granularity, required, probe.Reason);
        }
    }

    private static void CheckSize(string name, ulong requested, ulong actual)
    {
        if (requested != 0 && requested != actual)
        {
            throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionSizeMismatch,
                $"Region '{name}' has {actual} bytes, not {requested}; regions cannot be resized.", "size")
                .With("region", name).With("region_size", actual).With("requested_size", requested);
        }
    }

    private RegionMapping OpenMapping(string name, SafeFileHandle handle, Pmem2FileStatus file, Pmem2Granularity required)
    {
        var source = Pmem2Source.FromHandle(handle);
        try
        {
            // PageCacheAdvice.Random: single-page folios behind PAGE maps, so a persisted 4 KiB write
            // msyncs 4 KiB instead of a whole large folio (issue 10; docs/benchmarks.md "Service").
            var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = required, PageCacheAdvice = Pmem2PageCacheAdvice.Random }, source);
            return new RegionMapping(name, handle, file, source, map, required, OnMappingClosed);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private void OnMappingClosed(RegionMapping mapping)
    {
        _budget.Release(mapping.Size, mapping.Owner);
        _metrics.Unmapped((long)mapping.Size);
        PmemLog.RegionUnmapped(_logger, mapping.Name);
    }

    internal static PmemServiceException GranularityError(string name, Pmem2Granularity effective, Pmem2Granularity required, string? why) =>
        new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.GranularityNotSupported,
            $"Region '{name}' can only be mapped at {GranularityConvert.Name(effective)} granularity, coarser than the required {GranularityConvert.Name(required)}"
            + (why is null ? "." : $" ({why})."), "required_granularity")
            .With("region", name).With("effective_granularity", GranularityConvert.Name(effective)).With("required_granularity", GranularityConvert.Name(required));

    // ---- Unmap -----------------------------------------------------------------------------------

    public async Task<uint> UnmapAsync(string name, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        // Access first, so a caller without rights learns nothing (not even NOT_MAPPED).
        DemandByName(caller, "UnmapRegion", name, AccessRights.Read);
        if (!_entries.ContainsKey(name))
        {
            // Never create an entry for a name that is not mapped.
            throw NotMappedOrNotFound(name);
        }

        var region = await EnterAsync(name, cancellationToken).ConfigureAwait(false);
        try
        {
            return await UnmapAsync(region, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Exit(region);
        }
    }

    private async Task<uint> UnmapAsync(Region region, CancellationToken cancellationToken)
    {
        var name = region.Name;
        var mapping = MappingMatching(region, () => _pool.Stat(name)); // a mapping whose file changed fails first (Mapped → Failed)

        lock (region)
        {
            if (region.State == RegionState.Failed)
            {
                // Failed: the reference is dropped, and the caller learns that its bytes may be gone.
                region.References = Math.Max(0, region.References - 1);
                var reason = region.FailureReason ?? "the file changed";
                if (region.References == 0)
                {
                    region.State = RegionState.Closed;
                    region.FailureReason = null;
                }

                throw RegionLease.FileChanged(name, reason).With("remaining_references", region.References);
            }

            if (region.State != RegionState.Mapped || !ReferenceEquals(region.Mapping, mapping))
            {
                mapping = null;
            }
            else if (region.References > 1)
            {
                return (uint)--region.References;
            }
            else
            {
                // The last reference: Mapped → Draining. New calls get REGION_NOT_MAPPED from now on.
                region.References = 0;
                region.State = RegionState.Draining;
            }
        }

        if (mapping is null)
        {
            throw NotMappedOrNotFound(name);
        }

        try
        {
            var leases = mapping.Leases;
            if (leases > 0)
            {
                PmemLog.UnmapWaitingForCalls(_logger, name, leases);
            }

            await mapping.WhenIdleAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            // Failure changes nothing: the reference is kept and the region stays mapped.
            lock (region)
            {
                region.State = RegionState.Mapped;
                region.References = 1;
            }

            throw new PmemServiceException(StatusCode.Cancelled, PmemErrorReasons.Cancelled,
                $"UnmapRegion of '{name}' ended (cancelled or past its deadline) while calls were still using the region; the reference is kept.", inner: e)
                .With("region", name);
        }

        if ((mapping.ChangedReason ?? mapping.CheckOpenFile()) is { } changed)
        {
            // Draining → Closed without persist: the file changed under the running calls.
            lock (region)
            {
                region.Mapping = null;
                region.State = RegionState.Closed;
            }

            mapping.ChangedReason ??= changed;
            PmemLog.RegionFileChanged(_logger, name, changed);
            mapping.Retire();
            throw RegionLease.FileChanged(name, changed).With("remaining_references", 0);
        }

        // Draining → Closed: persist the whole mapping; a failure is this call's status, never OK.
        Exception? failure = null;
        var start = Stopwatch.GetTimestamp();
        try
        {
            mapping.Map.Persist(0, mapping.Size);
            _metrics.Persisted(start, "unmap", mapping.EffectiveName);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            failure = e;
            PmemLog.UnmapPersistFailed(_logger, name, e);
        }

        lock (region)
        {
            region.Mapping = null;
            region.State = RegionState.Closed;
        }

        mapping.Retire();
        if (failure is not null)
        {
            throw ErrorMapping.Map(failure).With("region", name);
        }

        return 0;
    }

    // ---- Delete ----------------------------------------------------------------------------------

    /// <summary>
    /// DeleteRegion. <paramref name="directLeases"/> counts the live direct leases on a name: it is
    /// consulted under the region's monitor, in the same critical section that marks the region
    /// <see cref="Region.Deleting"/>, and direct leases are registered under that monitor too
    /// (<see cref="Acquire"/>): a delete without force either sees a lease and
    /// refuses, or the lease is refused because the region is being deleted.
    /// </summary>
    public async Task DeleteAsync(string name, bool force, Func<string, int> directLeases, CancellationToken cancellationToken, RegionCaller? caller = null)
    {
        ThrowIfShuttingDown();
        var region = await EnterAsync(name, cancellationToken).ConfigureAwait(false);
        try
        {
            Delete(region, force, directLeases, caller);
        }
        finally
        {
            Exit(region);
        }
    }

    private void Delete(Region region, bool force, Func<string, int> directLeases, RegionCaller? caller)
    {
        var name = region.Name;
        var status = _pool.Stat(name);
        var mapping = MappingMatching(region, status);

        status = PoolDirectory.RequireRegular(name, status);

        if (status is null)
        {
            lock (region)
            {
                // A Failed region whose file is gone: nothing is left to delete; its references are void.
                region.State = RegionState.Absent;
                region.References = 0;
            }

            throw PmemServiceException.NotFound(name);
        }

        // Deleting needs admin, checked under the gate on the inode that is unlinked.
        var acl = _access.Read(name, status.Value);
        _access.Demand(caller, "DeleteRegion", name, acl, AccessRights.Admin);

        lock (region)
        {
            if (mapping is not null && region.References > 0 && !force)
            {
                throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionInUse,
                    $"Region '{name}' is mapped ({region.References} references); unmap it first or delete with force.")
                    .With("region", name).With("map_references", region.References);
            }

            // Direct leases register under this monitor (Acquire with a registration), so this count and
            // the Deleting mark are one step for them: a lease counted here is refused below, a lease
            // not counted here is refused by Acquire (Deleting), never granted and then revoked.
            if (!force && directLeases(name) is > 0 and var direct)
            {
                throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionInUse,
                    $"Region '{name}' is held by {direct} direct-access lease(s); close them first or delete with force.")
                    .With("region", name).With("direct_leases", direct);
            }

            region.Deleting = true;
        }

        try
        {
            _pool.Unlink(name);
        }
        catch
        {
            lock (region)
            {
                region.Deleting = false;
            }

            throw;
        }
        // The name is gone from here on, whatever the directory fsync says: → Deleted, mapping retired
        // without persist (running calls finish on the unlinked mapping and get REGION_DELETED).
        lock (region)
        {
            region.State = RegionState.Deleted;
            region.Mapping = null;
            region.References = 0;
            region.FailureReason = null;
        }

        if (mapping is not null)
        {
            mapping.Deleted = true;
            mapping.Retire();
        }

        _access.Deleted(status.Value, acl);
        _pool.SyncAfterDelete(name);
        PmemLog.RegionDeleted(_logger, name, force);
    }

    // ---- Leases (data RPCs) ----------------------------------------------------------------------

    /// <summary>
    /// A lease on the mapped region for one call. The file is re-checked (fstat of the mapped
    /// descriptor: still linked, not shorter than the mapping; fstatat of the name: same identity);
    /// a change retires the mapping (Mapped → Failed) and fails with DATA_LOSS REGION_FILE_CHANGED.
    /// </summary>
    /// <param name="name">The region.</param>
    /// <param name="registerDirectLease">For a direct lease (side channel): registers it, called under the
    /// region's monitor once the call lease is taken; refused with NOT_FOUND REGION_DELETED when a
    /// DeleteRegion has already passed its checks (<see cref="Region.Deleting"/>).</param>
    /// <param name="caller">The caller whose access list rights are demanded (null: an internal lease).</param>
    /// <param name="needed">The rights the call needs.</param>
    /// <param name="operation">The RPC, for the denial's message and log.</param>
    public RegionLease Acquire(string name, RegionCaller? caller = null, AccessRights needed = AccessRights.None, string operation = "", Action? registerDirectLease = null)
    {
        ThrowIfShuttingDown();
        if (!_entries.TryGetValue(name, out var region))
        {
            DemandByName(caller, operation, name, needed);
            throw NotMappedOrNotFound(name);
        }

        RegionMapping? mapping = null;
        lock (region)
        {
            if (registerDirectLease is not null && region.Deleting)
            {
                throw new PmemServiceException(StatusCode.NotFound, PmemErrorReasons.RegionDeleted,
                    $"Region '{name}' is being deleted; no direct lease is granted on it.").With("region", name);
            }

            if (region.State == RegionState.Mapped && region.Mapping is { } m && m.TryLease())
            {
                mapping = m;
                registerDirectLease?.Invoke();
            }
        }

        if (mapping is null)
        {
            DemandByName(caller, operation, name, needed);
            lock (region)
            {
                if (region.State == RegionState.Failed)
                {
                    throw RegionLease.FileChanged(name, region.FailureReason ?? "the file changed");
                }
            }

            throw NotMappedOrNotFound(name);
        }

        Interlocked.Increment(ref _activeLeases);
        var lease = new RegionLease(name, mapping, _leaseEnded);
        try
        {
            if (caller is not null)
            {
                // The access list of the inode that is mapped (read from the mapping's own descriptor, cached).
                _access.Demand(caller, operation, name, _access.Read(mapping.File, mapping.Identity), needed);
            }

            if (mapping.CheckFile(_pool.Stat(name)) is { } why)
            {
                Fail(region, mapping, why);
                throw RegionLease.FileChanged(name, why);
            }
        }
        catch
        {
            lease.Dispose();
            throw;
        }

        return lease;
    }

    /// <summary>
    /// A second lease on <paramref name="expected"/> for the same call (WriteRegion's persist after the
    /// deserializer's copy): granted only while the region is still mapped by that very mapping, and
    /// without a second file check: the first lease checked the file a moment earlier, and the bytes to
    /// persist are in this mapping whatever happened to the name since (a rename over it after the check
    /// is the same race with or without a second fstatat; the check costs a path lookup per call, ~3.7 %
    /// of the service's CPU on 4 KiB writes at concurrency 8). Null when it was unmapped or replaced.
    /// </summary>
    public RegionLease? AcquireSameMapping(string name, RegionMapping expected)
    {
        ThrowIfShuttingDown();
        if (!_entries.TryGetValue(name, out var region))
        {
            return null;
        }

        lock (region)
        {
            if (region.State != RegionState.Mapped || !ReferenceEquals(region.Mapping, expected) || !expected.TryLease())
            {
                return null;
            }
        }

        Interlocked.Increment(ref _activeLeases);
        return new RegionLease(name, expected, _leaseEnded);
    }

    /// <summary>Access check by the name's current directory entry (paths where no mapping is at hand); an absent name passes (the caller reports NOT_FOUND).</summary>
    private void DemandByName(RegionCaller? caller, string operation, string name, AccessRights needed)
    {
        if (caller is not null && _pool.Stat(name) is { IsRegularFile: true } status)
        {
            _access.Demand(caller, operation, name, _access.Read(name, status), needed);
        }
    }

    /// <summary>Adds the owner and the caller's rights to <paramref name="info"/>.</summary>
    public RegionInfo WithAccess(RegionInfo info, RegionCaller? caller, RegionAcl? acl)
    {
        info.Owner = acl?.Owner ?? string.Empty;
        if (caller is not null)
        {
            var rights = _access.RightsOf(caller, acl);
            info.CallerRights = new RegionRights
            {
                Read = rights.HasFlag(AccessRights.Read),
                Write = rights.HasFlag(AccessRights.Write),
                Admin = rights.HasFlag(AccessRights.Admin),
            };
        }

        return info;
    }

    /// <summary>
    /// The region's live mapping while its directory entry is still the mapped file (<see cref="RegionMapping.CheckFile"/>);
    /// a mapping whose file changed is retired here (Mapped → Failed) and null is returned, as for an unmapped region.
    /// </summary>
    private RegionMapping? MappingMatching(Region region, Pmem2FileStatus? status) => MappingMatching(region, () => status);

    /// <inheritdoc cref="MappingMatching(Region, Pmem2FileStatus?)"/>
    /// <param name="region">The region.</param>
    /// <param name="status">Stats the directory entry; called only when the region is mapped.</param>
    private RegionMapping? MappingMatching(Region region, Func<Pmem2FileStatus?> status)
    {
        RegionMapping? mapping;
        lock (region)
        {
            mapping = region.State == RegionState.Mapped ? region.Mapping : null;
        }

        if (mapping is not null && mapping.CheckFile(status()) is { } why)
        {
            Fail(region, mapping, why);
            return null;
        }

        return mapping;
    }

    // ---- Get / List ------------------------------------------------------------------------------

    /// <summary>Info of a region whose directory entry is <paramref name="status"/>; a mapped region whose
    /// file changed is failed on the way (Mapped → Failed).</summary>
    public RegionInfo Describe(string name, Pmem2FileStatus status)
    {
        if (_entries.TryGetValue(name, out var region))
        {
            if (MappingMatching(region, status) is { } mapping)
            {
                lock (region)
                {
                    if (ReferenceEquals(region.Mapping, mapping))
                    {
                        return Info(region, (ulong)status.Size, created: false);
                    }
                }
            }
        }

        return new RegionInfo { Name = name, Size = (ulong)status.Size };
    }

    private static RegionInfo Info(Region region, ulong fileSize, bool created)
    {
        var mapping = region.State == RegionState.Mapped ? region.Mapping : null;
        return new RegionInfo
        {
            Name = region.Name,
            Size = fileSize,
            Mapped = mapping is not null,
            MapReferences = mapping is null ? 0 : (uint)region.References,
            EffectiveGranularity = mapping is null ? Granularity.Unspecified : GranularityConvert.ToProto(mapping.Effective),
            RequestedGranularity = mapping is null ? Granularity.Unspecified : GranularityConvert.ToProto(mapping.Requested),
            MapSync = mapping?.MapSync ?? false,
            Created = created,
        };
    }

    // ---- Shutdown --------------------------------------------------------------------------------

    /// <summary>
    /// Refuses new work, waits (bounded by <paramref name="cancellationToken"/>) for running calls,
    /// then Mapped → Closed for every region: persist and unmap (a mapping still leased by a call
    /// that outlived the wait is unmapped when that call ends). Persist failures are logged and
    /// returned, so the host's stop fails instead of reporting a clean shutdown.
    /// </summary>
    public async Task<List<(string Region, Exception Error)>> ShutdownAsync(CancellationToken cancellationToken)
    {
        _shuttingDown = true;
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

        var regions = _entries.Values.ToList();
        PmemLog.ShutdownPersisting(_logger, regions.Count(r => r.Mapping is not null));
        var failures = new List<(string, Exception)>();
        foreach (var region in regions)
        {
            await region.Gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                if (CloseForShutdown(region) is { } error)
                {
                    failures.Add((region.Name, error));
                }
            }
            finally
            {
                Exit(region);
            }
        }

        return failures;
    }

    /// <summary>Mapped → Closed with a persist; returns the persist error, if any.</summary>
    private Exception? CloseForShutdown(Region region)
    {
        RegionMapping? mapping;
        lock (region)
        {
            mapping = region.State == RegionState.Mapped ? region.Mapping : null;
            region.Mapping = null;
            region.References = 0;
            if (region.State is RegionState.Mapped or RegionState.Failed or RegionState.Creating)
            {
                region.State = RegionState.Closed;
            }
        }

        if (mapping is null)
        {
            return null;
        }

        Exception? failure = null;
        if (mapping.CheckOpenFile() is null)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                mapping.Map.Persist(0, mapping.Size);
                _metrics.Persisted(start, "unmap", mapping.EffectiveName);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                failure = e;
                PmemLog.ShutdownPersistFailed(_logger, region.Name, e);
            }
        }

        mapping.Retire();
        return failure;
    }

    /// <summary>Last resort on disposal (no caller to report to): persist and unmap what is left.</summary>
    public void CloseAll()
    {
        foreach (var region in _entries.Values)
        {
            _ = CloseForShutdown(region);
        }
    }
}
