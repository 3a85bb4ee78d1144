using System.Text;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>
/// GetRegion and ListRegions: the pool directory is the source of truth for which regions exist
/// (regular files with valid names, looked up without following symlinks); the lifecycle adds the
/// mapping state and re-checks each mapped region's file identity on the way.
/// </summary>
internal sealed class RegionCatalog
{
    private readonly PoolDirectory _pool;
    private readonly RegionLifecycle _lifecycle;
    private readonly RegionAccessControl _access;

    public RegionCatalog(PoolDirectory pool, RegionLifecycle lifecycle, RegionAccessControl access)
    {
        _pool = pool;
        _lifecycle = lifecycle;
        _access = access;
    }

    /// <summary>GetRegion: needs read (a caller without any right gets NOT_FOUND, as for a missing region).</summary>
    public RegionInfo Get(string name, RegionCaller? caller = null, AccessRights needed = AccessRights.Read, string operation = "GetRegion")
    {
        if (_pool.Stat(name) is not { IsRegularFile: true } status)
        {
            throw PmemServiceException.NotFound(name);
        }

        var acl = _access.Read(name, status);
        _access.Demand(caller, operation, name, acl, needed);
        return _lifecycle.WithAccess(_lifecycle.Describe(name, status), caller, acl);
    }

    /// <summary>Names in ordinal order; the page token is the last name returned (opaque, base64).</summary>
    public (List<RegionInfo> Regions, string NextPageToken) List(int pageSize, string pageToken, RegionCaller? caller = null)
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
        foreach (var fileName in _pool.Names())
        {
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

            if (_pool.Stat(name) is { IsRegularFile: true } status)
            {
                RegionAcl? acl;
                try
                {
                    acl = _access.Read(name, status);
                }
                catch (PmemServiceException)
                {
                    continue; // gone (or unreadable) since the directory was read
                }

                if (caller is null || _access.CanSee(caller, acl))
                {
                    result.Add(_lifecycle.WithAccess(_lifecycle.Describe(name, status), caller, acl));
                }
            }
        }

        // Only regions the caller sees count; more may follow when the page is full and names remain after it.
        var next = result.Count == pageSize && string.CompareOrdinal(names[^1], result[^1].Name) > 0
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
}
