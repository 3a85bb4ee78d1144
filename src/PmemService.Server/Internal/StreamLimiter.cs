using System.Globalization;
using System.Threading.RateLimiting;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>
/// PmemService:MaxConcurrentStreamsPerIdentity: a <see cref="PartitionedRateLimiter"/> of concurrency
/// limiters (System.Threading.RateLimiting), one partition per caller identity, no queue: a stream
/// beyond the limit is RESOURCE_EXHAUSTED <c>STREAM_LIMIT</c> at once. The identity is the Unix socket
/// uid, else the authenticated TCP subject, else (unauthenticated TCP) the remote address.
/// </summary>
internal sealed class StreamLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string>? _limiter;
    private readonly int _limit;
    private readonly ILogger<StreamLimiter> _logger;

    public StreamLimiter(IOptions<PmemServiceOptions> options, ILogger<StreamLimiter> logger)
    {
        _logger = logger;
        _limit = options.Value.MaxConcurrentStreamsPerIdentity;
        if (_limit > 0)
        {
            _limiter = PartitionedRateLimiter.Create<string, string>(identity => RateLimitPartition.GetConcurrencyLimiter(identity,
                _ => new ConcurrencyLimiterOptions { PermitLimit = _limit, QueueLimit = 0, QueueProcessingOrder = QueueProcessingOrder.OldestFirst }));
        }
    }

    /// <summary>The identity key of a call (after admission set HttpContext.User).</summary>
    public static string IdentityOf(HttpContext http)
    {
        if (PeerIdentity.Get(http) is { } peer)
        {
            return "uid:" + peer.Credentials.Uid.ToString(CultureInfo.InvariantCulture);
        }

        var user = http.User;
        if (user.Identity?.IsAuthenticated == true)
        {
            return "sub:" + (user.FindFirst("sub")?.Value ?? user.Identity.Name ?? "?");
        }

        return "tcp:" + (http.Connection.RemoteIpAddress?.ToString() ?? "?");
    }

    /// <summary>A lease for one stream (dispose when the call ends), or RESOURCE_EXHAUSTED.</summary>
    public IDisposable? Acquire(ServerCallContext context)
    {
        if (_limiter is null || !context.Method.StartsWith("/pmem.v1.", StringComparison.Ordinal))
        {
            return null; // health Watch and reflection streams are not region streams
        }

        var identity = IdentityOf(context.GetHttpContext());
        var lease = _limiter.AttemptAcquire(identity);
        if (lease.IsAcquired)
        {
            return lease;
        }

        lease.Dispose();
        PmemLog.StreamLimitReached(_logger, context.Method, identity, _limit);
        throw new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.StreamLimit,
            $"At most {_limit} streams may be open at once per caller (PmemService:MaxConcurrentStreamsPerIdentity).");
    }

    public void Dispose() => _limiter?.Dispose();
}
