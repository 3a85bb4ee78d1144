using System.Collections.Concurrent;
using System.Security.Cryptography;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.DirectAccess;

/// <summary>A grant from OpenDirect: single use, short-lived, bound to the calling process.</summary>
internal sealed record DirectGrant(string Token, string Region, DirectAccessMode Access, PeerCredentials Peer, long ExpiresAt);

/// <summary>Read-only or read-write.</summary>
internal enum DirectAccessMode
{
    ReadOnly,
    ReadWrite,
}

/// <summary>One direct lease: a side-channel connection that received a region's descriptor.</summary>
internal sealed class DirectLease
{
    private readonly CancellationTokenSource _revoked = new();

    public DirectLease(string region, DirectAccessMode access, PeerCredentials peer)
    {
        Region = region;
        Access = access;
        Peer = peer;
    }

    public string Region { get; }

    public DirectAccessMode Access { get; }

    public PeerCredentials Peer { get; }

    /// <summary>Cancelled when the lease is revoked (forced delete, shutdown).</summary>
    public CancellationToken RevokedToken => _revoked.Token;

    public bool IsRevoked => _revoked.IsCancellationRequested;

    public void Revoke()
    {
        try
        {
            _revoked.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}

/// <summary>
/// The direct lane's bookkeeping: outstanding grants (single use: taking one removes it) and live
/// leases per region (counted in GetRegion/ListRegions as direct_leases; they block a delete without force).
/// </summary>
internal sealed class DirectLeaseRegistry
{
    private readonly ConcurrentDictionary<string, DirectGrant> _grants = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<DirectLease, byte> _leases = new();

    /// <summary>Live leases (all regions).</summary>
    public int Count => _leases.Count;

    /// <summary>Outstanding grants (tests).</summary>
    public int GrantCount => _grants.Count;

    public DirectGrant Issue(string region, DirectAccessMode access, PeerCredentials peer, TimeSpan ttl)
    {
        PruneExpired();
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        var grant = new DirectGrant(token, region, access, peer, Environment.TickCount64 + (long)ttl.TotalMilliseconds);
        _grants[token] = grant;
        return grant;
    }

    /// <summary>Removes and returns the grant (so it can never be presented again), or null.</summary>
    public DirectGrant? Take(string token) => _grants.TryRemove(token, out var grant) ? grant : null;

    public int CountFor(string region) => _leases.Keys.Count(l => l.Region == region);

    public void Add(DirectLease lease) => _leases.TryAdd(lease, 0);

    public void Remove(DirectLease lease) => _leases.TryRemove(lease, out _);

    /// <summary>Revokes every lease on <paramref name="region"/>; returns how many.</summary>
    public int Revoke(string region)
    {
        var count = 0;
        foreach (var lease in _leases.Keys)
        {
            if (lease.Region == region)
            {
                lease.Revoke();
                count++;
            }
        }

        return count;
    }

    public int RevokeAll()
    {
        _grants.Clear();
        var count = 0;
        foreach (var lease in _leases.Keys)
        {
            lease.Revoke();
            count++;
        }

        return count;
    }

    private void PruneExpired()
    {
        var now = Environment.TickCount64;
        foreach (var (token, grant) in _grants)
        {
            if (grant.ExpiresAt < now)
            {
                _grants.TryRemove(token, out _);
            }
        }
    }

    internal static DirectAccessMode FromProto(PmemService.Contracts.V1.DirectAccess access) => access switch
    {
        Contracts.V1.DirectAccess.ReadOnly => DirectAccessMode.ReadOnly,
        Contracts.V1.DirectAccess.ReadWrite => DirectAccessMode.ReadWrite,
        _ => throw new PmemServiceException(Grpc.Core.StatusCode.InvalidArgument, PmemErrorReasons.InvalidDirectAccess,
            "access must be DIRECT_ACCESS_READ_ONLY or DIRECT_ACCESS_READ_WRITE.", "access"),
    };
}
