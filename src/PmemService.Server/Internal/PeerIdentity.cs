using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace PmemService.Server.Internal;

/// <summary>
/// Caller identity on the Unix socket: a Kestrel connection middleware reads SO_PEERCRED once per
/// accepted connection into <see cref="PeerCredentialsFeature"/>; a request middleware (added first by
/// an <see cref="IStartupFilter"/>) makes it <c>HttpContext.User</c> and tags the request's activity
/// (<c>pmem.peer.uid</c>, <c>pmem.peer.gid</c>, <c>pmem.peer.pid</c>, <c>pmem.transport</c>).
/// </summary>
internal static class PeerIdentity
{
    public const string UidTag = "pmem.peer.uid";
    public const string GidTag = "pmem.peer.gid";
    public const string PidTag = "pmem.peer.pid";
    public const string TransportTag = "pmem.transport";

    /// <summary>Connection middleware for the Unix socket listener.</summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> ConnectionMiddleware(ILogger logger) => next => context =>
    {
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
        if (socket is null)
        {
            PmemLog.PeerCredentialsUnavailable(logger, context.ConnectionId, "no socket feature");
        }
        else if (PeerCredentials.TryRead(socket, out var credentials, out var error))
        {
            context.Features.Set(new PeerCredentialsFeature(credentials));
        }
        else
        {
            PmemLog.PeerCredentialsUnavailable(logger, context.ConnectionId, error ?? "unknown");
        }

        return next(context);
    };

    /// <summary>The peer credentials of the request's connection, if it is a Unix socket connection whose SO_PEERCRED was read.</summary>
    public static PeerCredentialsFeature? Get(HttpContext context) => context.Features.Get<PeerCredentialsFeature>();
}

/// <summary>Adds the request middleware of <see cref="PeerIdentity"/> in front of the application's pipeline.</summary>
internal sealed class PeerIdentityStartupFilter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(static (context, nextMiddleware) =>
        {
            var peer = PeerIdentity.Get(context);
            // Tags only for an activity someone records (an ActivitySource listener, e.g. OpenTelemetry): without
            // one, ASP.NET Core still creates an Activity per request for its log scope, and four boxed tags on
            // every data-plane call were work nobody read.
            var activity = Activity.Current is { IsAllDataRequested: true } current && current.Source.HasListeners() ? current : null;
            if (peer is not null)
            {
                context.User = peer.Principal;
                if (activity is not null)
                {
                    activity.SetTag(PeerIdentity.TransportTag, "unix");
                    activity.SetTag(PeerIdentity.UidTag, peer.Credentials.Uid);
                    activity.SetTag(PeerIdentity.GidTag, peer.Credentials.Gid);
                    activity.SetTag(PeerIdentity.PidTag, peer.Credentials.Pid);
                }
            }
            else
            {
                activity?.SetTag(PeerIdentity.TransportTag, context.Connection.LocalIpAddress is null ? "unix" : "tcp");
            }

            return nextMiddleware(context);
        });
        next(app);
    };
}
