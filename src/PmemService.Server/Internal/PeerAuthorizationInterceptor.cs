using System.Diagnostics;
using System.Security.Claims;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace PmemService.Server.Internal;

/// <summary>
/// Admission of pmem.v1 calls by the caller's identity; health and reflection (not pmem.v1) stay open.
/// <list type="bullet">
/// <item>Unix socket: the SO_PEERCRED identity (<see cref="PeerIdentity"/>); none read is UNAUTHENTICATED;
/// with PmemService:AllowedUids/AllowedGids set, a caller in neither list is PERMISSION_DENIED
/// <c>PEER_NOT_ALLOWED</c> (logged with uid, gid, pid).</item>
/// <item>TCP with PmemService:TcpAuthentication configured: a client certificate chained to ClientCaPath
/// or a bearer token signed by a key in JwtKeysPath, checked by the ASP.NET Core handlers; the result
/// becomes <c>HttpContext.User</c>. No credentials: UNAUTHENTICATED <c>UNAUTHENTICATED</c>; rejected:
/// <c>INVALID_CREDENTIALS</c>, an expired token <c>TOKEN_EXPIRED</c>.</item>
/// <item>TCP without authentication: only with AllowDataPlaneOverTcp, otherwise PERMISSION_DENIED
/// <c>UNIX_SOCKET_REQUIRED</c>.</item>
/// </list>
/// Runs inside <see cref="ErrorMappingInterceptor"/>, so its exceptions become statuses with ErrorInfo.
/// </summary>
internal sealed class PeerAuthorizationInterceptor : Interceptor
{
    private const string PmemMethodPrefix = "/pmem.v1.";

    private readonly ILogger<PeerAuthorizationInterceptor> _logger;
    private readonly PmemServiceOptions _options;
    private readonly PmemTcpAuthenticationOptions _tcp;
    private readonly UnixPeerAdmission _unixPeers;

    private readonly StreamLimiter _streams;

    public PeerAuthorizationInterceptor(ILogger<PeerAuthorizationInterceptor> logger, IOptions<PmemServiceOptions> options, IOptions<PmemTcpAuthenticationOptions> tcp,
        StreamLimiter streams, UnixPeerAdmission unixPeers)
    {
        _logger = logger;
        _streams = streams;
        _options = options.Value;
        _tcp = tcp.Value;
        _unixPeers = unixPeers;
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        await AdmitAsync(context).ConfigureAwait(false);
        return await continuation(request, context).ConfigureAwait(false);
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AdmitAsync(context).ConfigureAwait(false);
        using var lease = _streams.Acquire(context);
        return await continuation(requestStream, context).ConfigureAwait(false);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AdmitAsync(context).ConfigureAwait(false);
        using var lease = _streams.Acquire(context);
        await continuation(request, responseStream, context).ConfigureAwait(false);
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        await AdmitAsync(context).ConfigureAwait(false);
        using var lease = _streams.Acquire(context);
        await continuation(requestStream, responseStream, context).ConfigureAwait(false);
    }

    private ValueTask AdmitAsync(ServerCallContext context)
    {
        if (!context.Method.StartsWith(PmemMethodPrefix, StringComparison.Ordinal))
        {
            return ValueTask.CompletedTask;
        }

        var http = context.GetHttpContext();
        if (http.Connection.LocalIpAddress is null)
        {
            _unixPeers.Admit(context.Method, http);
            return ValueTask.CompletedTask;
        }

        if (_tcp.Enabled)
        {
            return AuthenticateTcpAsync(context.Method, http);
        }

        if (!_options.AllowDataPlaneOverTcp)
        {
            throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.UnixSocketRequired,
                "Region RPCs are served only on the Unix domain socket (PmemService:AllowDataPlaneOverTcp=false and no PmemService:TcpAuthentication).");
        }

        return ValueTask.CompletedTask;
    }

    private async ValueTask AuthenticateTcpAsync(string method, HttpContext http)
    {
        var reason = PmemErrorReasons.Unauthenticated;
        var detail = "no client certificate and no bearer token";
        if (_tcp.CertificatesEnabled && http.Connection.ClientCertificate is not null)
        {
            var result = await http.AuthenticateAsync(PmemSecurityRegistration.CertificateScheme).ConfigureAwait(false);
            if (result.Succeeded && result.Principal is not null)
            {
                Accept(http, result.Principal, "certificate");
                return;
            }

            reason = PmemErrorReasons.InvalidCredentials;
            detail = "client certificate rejected: " + (result.Failure?.Message ?? "not valid");
        }

        if (_tcp.JwtEnabled && http.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var result = await http.AuthenticateAsync(PmemSecurityRegistration.BearerScheme).ConfigureAwait(false);
            if (result.Succeeded && result.Principal is not null)
            {
                Accept(http, result.Principal, "bearer");
                return;
            }

            reason = result.Failure is SecurityTokenExpiredException ? PmemErrorReasons.TokenExpired : PmemErrorReasons.InvalidCredentials;
            detail = "bearer token rejected: " + (result.Failure?.GetType().Name ?? "not valid");
        }

        PmemLog.TcpCallerUnauthenticated(_logger, method, http.Connection.RemoteIpAddress?.ToString() ?? "?", reason, detail);
        throw new PmemServiceException(StatusCode.Unauthenticated, reason, $"The call was not authenticated ({detail}).");
    }

    private static void Accept(HttpContext http, ClaimsPrincipal principal, string scheme)
    {
        http.User = principal;
        var activity = Activity.Current;
        if (activity is not null)
        {
            activity.SetTag(PeerIdentity.TransportTag, "tcp");
            activity.SetTag("pmem.auth.scheme", scheme);
            activity.SetTag("pmem.auth.subject", principal.FindFirst("sub")?.Value ?? principal.Identity?.Name);
        }
    }
}
