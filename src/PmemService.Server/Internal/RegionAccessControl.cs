using System.Collections.Concurrent;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// Per-region authorization and the per-owner region count (README "Per-region access"):
/// <list type="bullet">
/// <item>the owner and access list of a region are read from its <c>user.pmem.acl</c> attribute (<see cref="RegionAcl"/>),
/// cached by inode (st_dev, st_ino) and replaced when the service changes them;</item>
/// <item>Isolated: a caller with no right on a region is told NOT_FOUND (exactly as for a missing region, so
/// existence does not leak), a caller with some right but not the one needed PERMISSION_DENIED
/// <c>REGION_ACCESS_DENIED</c>; a region without the attribute (created before per-region access) is
/// visible to superusers only, who can give it an owner with SetRegionAccess;</item>
/// <item>Shared: every admitted caller has every right;</item>
/// <item>superusers (see <see cref="RegionCaller"/>) have every right in both modes.</item>
/// </list>
/// </summary>
internal sealed class RegionAccessControl
{
    private const int EOPNOTSUPP = 95;
    private const int ENOENT = 2;

    private readonly ConcurrentDictionary<(ulong Device, ulong Inode), RegionAcl?> _cache = new();
    private readonly Dictionary<string, int> _regionsByOwner = new(StringComparer.Ordinal);
    private readonly Lock _countLock = new();
    private readonly Lock _changeLock = new();
    private readonly PmemServiceOptions _options;
    private readonly ILogger _logger;
    private readonly PoolDirectory _pool;

    public RegionAccessControl(PoolDirectory pool, PmemServiceOptions options, ILogger logger)
    {
        _pool = pool;
        _options = options;
        _logger = logger;
    }

    public bool Isolated => _options.RegionAccess == RegionAccessMode.Isolated;

    /// <summary>Counts the regions of each owner (start-up); returns how many regions have no access list.</summary>
    public int Scan(IEnumerable<string> regionNames)
    {
        var legacy = 0;
        foreach (var name in regionNames)
        {
            try
            {
                if (_pool.Stat(name) is { IsRegularFile: true } status && Read(name, status) is { } acl)
                {
                    CountRegion(acl.Owner, +1);
                }
                else
                {
                    legacy++;
                }
            }
            catch (PmemServiceException)
            {
                legacy++;
            }
        }

        return legacy;
    }

    /// <summary>Regions owned by <paramref name="owner"/>.</summary>
    public int RegionsOf(string owner)
    {
        lock (_countLock)
        {
            return _regionsByOwner.GetValueOrDefault(owner);
        }
    }

    // ---- reading ---------------------------------------------------------------------------------

    /// <summary>The access list of the region file <paramref name="name"/> whose directory entry is <paramref name="status"/>; null when it has none.</summary>
    public RegionAcl? Read(string name, Pmem2FileStatus status)
    {
        if (_cache.TryGetValue((status.Device, status.Inode), out var cached))
        {
            return cached;
        }

        var (handle, opened) = _pool.OpenRegion(name, writable: false);
        using (handle)
        {
            if (!opened.IsSameFile(status))
            {
                // Replaced between the lookup and the open: read what the name is now.
                return Read(handle, opened);
            }

            return Read(handle, status);
        }
    }

    /// <summary>The access list of the open region file <paramref name="handle"/> (identity <paramref name="identity"/>).</summary>
    public RegionAcl? Read(SafeFileHandle handle, Pmem2FileStatus identity)
    {
        if (_cache.TryGetValue((identity.Device, identity.Inode), out var cached))
        {
            return cached;
        }

        RegionAcl? acl = null;
        try
        {
            if (Pmem2FileAttributes.Get(handle, RegionAcl.AttributeName) is { } value)
            {
                acl = RegionAcl.Parse(value);
            }
        }
        catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
        {
        }

        _cache[(identity.Device, identity.Inode)] = acl;
        return acl;
    }

    // ---- decisions -------------------------------------------------------------------------------

    /// <summary>The rights <paramref name="caller"/> has on a region with access list <paramref name="acl"/> (null: none recorded).</summary>
    public AccessRights RightsOf(RegionCaller caller, RegionAcl? acl)
    {
        if (caller.IsSuperuser || !Isolated)
        {
            return RegionAcl.Normalize(AccessRights.Admin);
        }

        return acl is null ? AccessRights.None : acl.RightsOf(caller);
    }

    /// <summary>Whether the region appears to <paramref name="caller"/> at all (GetRegion, ListRegions).</summary>
    public bool CanSee(RegionCaller caller, RegionAcl? acl) => RightsOf(caller, acl) != AccessRights.None;

    /// <summary>
    /// Throws unless <paramref name="caller"/> has <paramref name="needed"/>: NOT_FOUND <c>REGION_NOT_FOUND</c> when it
    /// has no right at all (or PERMISSION_DENIED when <paramref name="nameTakenIsDenied"/>: a create of a taken name),
    /// PERMISSION_DENIED <c>REGION_ACCESS_DENIED</c> when it has some right but not this one.
    /// </summary>
    public void Demand(RegionCaller? caller, string operation, string name, RegionAcl? acl, AccessRights needed, bool nameTakenIsDenied = false)
    {
        if (caller is null)
        {
            return; // internal call
        }

        var rights = RightsOf(caller, acl);
        if ((rights & needed) == needed)
        {
            return;
        }

        PmemLog.RegionAccessDenied(_logger, operation, caller.Principal, name, RegionAcl.RightsText(needed), RegionAcl.RightsText(rights));
        if (rights == AccessRights.None && !nameTakenIsDenied)
        {
            throw PmemServiceException.NotFound(name);
        }

        throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.RegionAccessDenied,
            rights == AccessRights.None
                ? $"The name '{name}' is taken by a region you have no access to."
                : $"{caller.Principal} may not {Verb(needed)} region '{name}' (it has '{RegionAcl.RightsText(rights)}').")
            .With("region", name).With("caller", caller.Principal).With("needed", RegionAcl.RightsText(needed));
    }

    private static string Verb(AccessRights needed) =>
        needed.HasFlag(AccessRights.Admin) ? "administer" : needed.HasFlag(AccessRights.Write) ? "write" : "read";

    // ---- create / delete / change ----------------------------------------------------------------

    /// <summary>
    /// Before a create: the region-count quota of the new owner (RESOURCE_EXHAUSTED <c>REGION_COUNT_QUOTA</c>); counts
    /// the region at once (release with <see cref="Uncount"/> when the create fails). Returns the access list to store.
    /// </summary>
    public RegionAcl ReserveCreate(RegionCaller caller, string name)
    {
        var owner = caller.Principal;
        var limit = _options.MaxRegionsPerIdentity;
        lock (_countLock)
        {
            var owned = _regionsByOwner.GetValueOrDefault(owner);
            if (limit > 0 && owned >= limit)
            {
                PmemLog.RegionQuotaExceeded(_logger, owner, name, "regions", owned, limit);
                throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.RegionCountQuota,
                    $"{owner} already has {owned} regions, the most one identity may have (PmemService:MaxRegionsPerIdentity).")
                    .With("region", name).With("limit", limit).With("regions", owned);
            }

            _regionsByOwner[owner] = owned + 1;
        }

        return new RegionAcl(owner, []);
    }

    public void Uncount(string owner) => CountRegion(owner, -1);

    /// <summary>The stored attribute value for a create, and whether the create must fail without it (Isolated).</summary>
    public (byte[] Value, bool Required) AttributeFor(RegionAcl acl) => (acl.Serialize(), Isolated);

    /// <summary>After a create: the new inode's access list is known.</summary>
    public void Created(Pmem2FileStatus file, RegionAcl acl) => _cache[(file.Device, file.Inode)] = acl;

    /// <summary>After a delete: the owner has a region less and the inode's entry goes.</summary>
    public void Deleted(Pmem2FileStatus file, RegionAcl? acl)
    {
        _cache.TryRemove((file.Device, file.Inode), out _);
        if (acl is not null)
        {
            CountRegion(acl.Owner, -1);
        }
    }

    /// <summary>
    /// Replaces the access list (and, when <paramref name="newOwner"/> is given, the owner) of a region, durably
    /// (fsetxattr + fsync on the region file). Changing the owner needs the current owner or a superuser; the new
    /// owner's region-count quota applies.
    /// </summary>
    public RegionAcl Change(RegionCaller caller, string name, Pmem2FileStatus status, RegionAcl? current, string? newOwner, IReadOnlyList<RegionAclEntry> entries)
    {
        // Changes are rare: one at a time, so the owner counts and the cache follow the order of the writes.
        lock (_changeLock)
        {
            // What was read before the lock may be stale: decide on the list as it is now.
            if (_cache.TryGetValue((status.Device, status.Inode), out var now))
            {
                Demand(caller, "SetRegionAccess", name, now, AccessRights.Admin);
                current = now;
            }

            return ChangeLocked(caller, name, status, current, newOwner, entries);
        }
    }

    private RegionAcl ChangeLocked(RegionCaller caller, string name, Pmem2FileStatus status, RegionAcl? current, string? newOwner, IReadOnlyList<RegionAclEntry> entries)
    {
        var owner = string.IsNullOrEmpty(newOwner) ? current?.Owner : newOwner;
        if (owner is null)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidAccessEntry,
                $"Region '{name}' has no owner yet (created before per-region access): give one with owner.", "owner").With("region", name);
        }

        var ownerChanges = current is null || !string.Equals(owner, current.Owner, StringComparison.Ordinal);
        if (ownerChanges && current is not null && !caller.IsSuperuser && !string.Equals(caller.Principal, current.Owner, StringComparison.Ordinal))
        {
            PmemLog.RegionAccessDenied(_logger, "SetRegionAccess", caller.Principal, name, "owner", RegionAcl.RightsText(RightsOf(caller, current)));
            throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.RegionAccessDenied,
                $"Only the owner ({current.Owner}) or a superuser may give region '{name}' another owner.")
                .With("region", name).With("caller", caller.Principal).With("needed", "owner");
        }

        if (ownerChanges && _options.MaxRegionsPerIdentity > 0 && RegionsOf(owner) >= _options.MaxRegionsPerIdentity)
        {
            throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.RegionCountQuota,
                $"{owner} already has the most regions one identity may have (PmemService:MaxRegionsPerIdentity).")
                .With("region", name).With("limit", _options.MaxRegionsPerIdentity);
        }

        var acl = new RegionAcl(owner, entries);
        var (handle, opened) = _pool.OpenRegion(name, writable: false);
        using (handle)
        {
            if (!opened.IsSameFile(status))
            {
                throw PmemServiceException.NotFound(name);
            }

            try
            {
                Pmem2FileAttributes.Set(handle, RegionAcl.AttributeName, acl.Serialize());
            }
            catch (Pmem2Exception e) when (e.Errno == EOPNOTSUPP)
            {
                throw MetadataNotSupported(name, e);
            }
            catch (Pmem2Exception e) when (e.Errno == ENOENT)
            {
                throw PmemServiceException.NotFound(name);
            }
        }

        _cache[(status.Device, status.Inode)] = acl;
        if (ownerChanges)
        {
            if (current is not null)
            {
                CountRegion(current.Owner, -1);
            }

            CountRegion(owner, +1);
        }

        PmemLog.RegionAccessChanged(_logger, name, caller.Principal, owner, string.Join(' ', entries.Select(e => e.Subject + "=" + RegionAcl.RightsText(e.Rights))));
        return acl;
    }

    public static PmemServiceException MetadataNotSupported(string name, Exception inner) =>
        new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.AccessMetadataNotSupported,
            $"The pool's filesystem does not support user extended attributes, so the owner of region '{name}' cannot be stored (PmemService:RegionAccess=Isolated needs them).", inner: inner)
            .With("region", name);

    private void CountRegion(string owner, int delta)
    {
        lock (_countLock)
        {
            var owned = _regionsByOwner.GetValueOrDefault(owner) + delta;
            if (owned <= 0)
            {
                _regionsByOwner.Remove(owner);
            }
            else
            {
                _regionsByOwner[owner] = owned;
            }
        }
    }
}
