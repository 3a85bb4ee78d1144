using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace PmemService.Server.Internal;

/// <summary>
/// The identity a region call is authorized as (after admission set HttpContext.User):
/// <list type="bullet">
/// <item>Unix socket: principal <c>uid:N</c> (SO_PEERCRED), matching entries <c>uid:N</c> and <c>gid:G</c> of its primary gid
/// (SO_PEERCRED carries no supplementary groups);</item>
/// <item>authenticated TCP: <c>sub:X</c>, X the token's <c>sub</c> or the certificate's subject (the same key as
/// <see cref="StreamLimiter.IdentityOf"/>);</item>
/// <item>unauthenticated TCP (only with AllowDataPlaneOverTcp, which opens every region to the network by
/// design): <c>sub:anonymous-tcp</c>, a superuser.</item>
/// </list>
/// </summary>
internal sealed class RegionCaller
{
    public const string AnonymousTcp = "sub:anonymous-tcp";

    private RegionCaller(string principal, uint? uid, uint? gid, bool superuser)
    {
        Principal = principal;
        Uid = uid;
        Gid = gid;
        IsSuperuser = superuser;
    }

    /// <summary>"uid:N" or "sub:X": the owner recorded for regions this caller creates.</summary>
    public string Principal { get; }

    public uint? Uid { get; }

    public uint? Gid { get; }

    /// <summary>Bypasses access lists (uid 0 with RootIsRegionSuperuser, RegionSuperusers, unauthenticated TCP).</summary>
    public bool IsSuperuser { get; }

    /// <summary>Whether an access-list subject names this caller.</summary>
    public bool Matches(string subject) =>
        string.Equals(subject, Principal, StringComparison.Ordinal)
        || (Gid is { } gid && subject.StartsWith("gid:", StringComparison.Ordinal)
            && uint.TryParse(subject.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out var g) && g == gid);

    public static RegionCaller From(HttpContext http, PmemServiceOptions options)
    {
        if (PeerIdentity.Get(http) is { } peer)
        {
            // Once per connection (SO_PEERCRED does not change), not per call: the data path stays allocation-free here.
            if (peer.RegionCaller is { } known)
            {
                return known;
            }

            var credentials = peer.Credentials;
            var principal = "uid:" + credentials.Uid.ToString(CultureInfo.InvariantCulture);
            var superuser = (credentials.Uid == 0 && options.RootIsRegionSuperuser) || options.RegionSuperusers.Contains(principal, StringComparer.Ordinal);
            return peer.RegionCaller = new RegionCaller(principal, credentials.Uid, credentials.Gid, superuser);
        }

        var user = http.User;
        if (user.Identity?.IsAuthenticated == true)
        {
            var principal = StreamLimiter.IdentityOf(http);
            return new RegionCaller(principal, null, null, options.RegionSuperusers.Contains(principal, StringComparer.Ordinal));
        }

        return new RegionCaller(AnonymousTcp, null, null, superuser: true);
    }

    /// <summary>For tests and internal callers.</summary>
    internal static RegionCaller ForTest(string principal, uint? gid = null, bool superuser = false) =>
        new(principal, null, gid, superuser);

    public override string ToString() => Principal;
}
