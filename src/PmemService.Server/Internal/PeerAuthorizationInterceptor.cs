using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>
/// Admission of pmem.v1 calls on the Unix socket by the caller's SO_PEERCRED identity: a connection
/// whose credentials could not be read is UNAUTHENTICATED; with PmemService:AllowedUids/AllowedGids
/// set, a caller whose uid is not in AllowedUids and whose gid is not in AllowedGids is
/// PERMISSION_DENIED <c>PEER_NOT_ALLOWED</c> (logged with uid, gid, pid). Runs inside
/// <see cref="ErrorMappingInterceptor"/>, so its exceptions become statuses with ErrorInfo.
/// Health and reflection are not pmem.v1 and stay open. On TCP, pmem.v1 calls are PERMISSION_DENIED
/// <c>UNIX_SOCKET_REQUIRED</c> unless AllowDataPlaneOverTcp.
/// </summary>
internal sealed class PeerAuthorizationInterceptor : Interceptor
{
    private const string PmemMethodPrefix = "/pmem.v1.";

    private readonly ILogger<PeerAuthorizationInterceptor> _logger;
    private readonly HashSet<uint> _uids;
    private readonly HashSet<uint> _gids;
    private readonly bool _allowTcp;

    public PeerAuthorizationInterceptor(ILogger<PeerAuthorizationInterceptor> logger, IOptions<PmemServiceOptions> options)
    {
        _logger = logger;
        _uids = [.. options.Value.AllowedUids];
        _gids = [.. options.Value.AllowedGids];
        _allowTcp = options.Value.AllowDataPlaneOverTcp;
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Admit(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Admit(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Admit(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Admit(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Admit(ServerCallContext context)
    {
        if (!context.Method.StartsWith(PmemMethodPrefix, StringComparison.Ordinal))
        {
            return;
        }

        var http = context.GetHttpContext();
        if (http.Connection.LocalIpAddress is not null)
        {
            if (!_allowTcp)
            {
                throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.UnixSocketRequired,
                    "Region RPCs are served only on the Unix domain socket (PmemService:AllowDataPlaneOverTcp=false).");
            }

            return;
        }

        var peer = PeerIdentity.Get(http);
        if (peer is null)
        {
            PmemLog.PeerUnauthenticated(_logger, context.Method);
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

        PmemLog.PeerNotAllowed(_logger, context.Method, credentials.Uid, credentials.Gid, credentials.Pid);
        throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.PeerNotAllowed,
            $"Unix socket callers with uid {credentials.Uid} / gid {credentials.Gid} are not allowed (PmemService:AllowedUids / AllowedGids).");
    }
}
