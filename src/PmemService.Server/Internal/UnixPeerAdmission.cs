using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>
/// Admission of a Unix socket caller by its SO_PEERCRED identity (<see cref="PeerIdentity"/>): none read
/// is UNAUTHENTICATED; with PmemService:AllowedUids/AllowedGids set, a caller in neither list is
/// PERMISSION_DENIED <c>PEER_NOT_ALLOWED</c> (logged with uid, gid, pid). Used by
/// <see cref="PeerAuthorizationInterceptor"/> and, before it copies a byte into a mapping, by the
/// zero-copy WriteRegion deserializer (which runs before any interceptor).
/// </summary>
internal sealed class UnixPeerAdmission
{
    private readonly ILogger<UnixPeerAdmission> _logger;
    private readonly HashSet<uint> _uids;
    private readonly HashSet<uint> _gids;

    public UnixPeerAdmission(ILogger<UnixPeerAdmission> logger, IOptions<PmemServiceOptions> options)
    {
        _logger = logger;
        _uids = [.. options.Value.AllowedUids];
        _gids = [.. options.Value.AllowedGids];
    }

    /// <summary>Throws the refusal when the caller on <paramref name="http"/>'s Unix socket connection may not call <paramref name="method"/>.</summary>
    public void Admit(string method, HttpContext http)
    {
        var peer = PeerIdentity.Get(http);
        if (peer is null)
        {
            PmemLog.PeerUnauthenticated(_logger, method);
            throw new PmemServiceException(StatusCode.Unauthenticated, PmemErrorReasons.Unauthenticated,
                "The Unix socket peer's credentials (SO_PEERCRED) could not be read.");
        }

        if (_uids.Count == 0 && _gids.Count == 0)
        {
            return;
        }

        var credentials = peer.Credentials;
        if (_uids.Contains(credentials.Uid) || _gids.Contains(credentials.Gid))
        {
            return;
        }

        PmemLog.PeerNotAllowed(_logger, method, credentials.Uid, credentials.Gid, credentials.Pid);
        throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.PeerNotAllowed,
            $"Unix socket callers with uid {credentials.Uid} / gid {credentials.Gid} are not allowed (PmemService:AllowedUids / AllowedGids).");
    }
}
