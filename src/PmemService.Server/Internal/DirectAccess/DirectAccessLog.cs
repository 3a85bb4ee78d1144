using Microsoft.Extensions.Logging;

namespace PmemService.Server.Internal;

/// <summary>Direct access lane log messages (event ids 90-99).</summary>
internal static partial class PmemLog
{
    [LoggerMessage(90, LogLevel.Information, "Direct access side channel listening on {SocketPath}", EventName = "DirectSideChannelListening")]
    public static partial void DirectSideChannelListening(ILogger logger, string socketPath);

    [LoggerMessage(91, LogLevel.Debug, "Direct grant issued for region {Region} ({Access}) to pid {Pid} uid {Uid}", EventName = "DirectGrantIssued")]
    public static partial void DirectGrantIssued(ILogger logger, string region, string access, int pid, uint uid);

    [LoggerMessage(92, LogLevel.Warning, "Direct grant refused: {Reason} (peer pid {Pid} uid {Uid})", EventName = "DirectGrantRefused")]
    public static partial void DirectGrantRefused(ILogger logger, string reason, int pid, uint uid);

    [LoggerMessage(93, LogLevel.Information, "Direct lease opened on region {Region} ({Access}) by pid {Pid} uid {Uid}", EventName = "DirectLeaseOpened")]
    public static partial void DirectLeaseOpened(ILogger logger, string region, string access, int pid, uint uid);

    [LoggerMessage(94, LogLevel.Information, "Direct lease on region {Region} held by pid {Pid} ended (revoked {Revoked})", EventName = "DirectLeaseEnded")]
    public static partial void DirectLeaseEnded(ILogger logger, string region, int pid, bool revoked);

    [LoggerMessage(95, LogLevel.Warning, "{Count} direct lease(s) on region {Region} revoked ({Why})", EventName = "DirectLeasesRevoked")]
    public static partial void DirectLeasesRevoked(ILogger logger, string region, int count, string why);

    [LoggerMessage(96, LogLevel.Warning, "Direct lease on region {Region} held by pid {Pid} ignored the revocation; the connection was closed after the grace period", EventName = "DirectRevokeGraceExpired")]
    public static partial void DirectRevokeGraceExpired(ILogger logger, string region, int pid);

    [LoggerMessage(97, LogLevel.Error, "Direct access side-channel connection failed", EventName = "DirectConnectionFailed")]
    public static partial void DirectConnectionFailed(ILogger logger, Exception exception);
}
