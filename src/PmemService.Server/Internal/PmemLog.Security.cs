using Microsoft.Extensions.Logging;

namespace PmemService.Server.Internal;

/// <summary>Security log messages (event ids 100-119).</summary>
internal static partial class PmemLog
{
    [LoggerMessage(100, LogLevel.Warning, "Pool {PoolPath} has mode {Mode}: users other than the service's can create, rename or delete region files in it. Make it 0700 (or 0750 with PmemService:PoolGroupAccess)", EventName = "PoolWritableByOthers")]
    public static partial void PoolWritableByOthers(ILogger logger, string poolPath, string mode);

    [LoggerMessage(101, LogLevel.Warning, "Pool {PoolPath} has mode {Mode}: every local user can enter it and list the regions; region files created before 0600 may be readable. Make it 0700 (or 0750 with PmemService:PoolGroupAccess)", EventName = "PoolOpenToOthers")]
    public static partial void PoolOpenToOthers(ILogger logger, string poolPath, string mode);

    [LoggerMessage(102, LogLevel.Warning, "{Method} denied to Unix socket peer uid {PeerUid} gid {PeerGid} pid {PeerPid}: not in PmemService:AllowedUids / AllowedGids", EventName = "PeerNotAllowed")]
    public static partial void PeerNotAllowed(ILogger logger, string method, uint peerUid, uint peerGid, int peerPid);

    [LoggerMessage(103, LogLevel.Warning, "{Method} denied: the Unix socket peer's credentials (SO_PEERCRED) could not be read", EventName = "PeerUnauthenticated")]
    public static partial void PeerUnauthenticated(ILogger logger, string method);

    [LoggerMessage(104, LogLevel.Warning, "PmemService:AllowDataPlaneOverTcp is true: region RPCs are served on TCP {TcpEndpoint} WITHOUT authentication; anyone who reaches the port can read, write and delete every region", EventName = "DataPlaneOverTcpUnauthenticated")]
    public static partial void DataPlaneOverTcpUnauthenticated(ILogger logger, string tcpEndpoint);

    [LoggerMessage(105, LogLevel.Debug, "Unix socket connection {ConnectionId}: SO_PEERCRED could not be read ({Reason})", EventName = "PeerCredentialsUnavailable")]
    public static partial void PeerCredentialsUnavailable(ILogger logger, string connectionId, string reason);

    [LoggerMessage(106, LogLevel.Warning, "{Method} from {RemoteAddress} over TCP not authenticated ({Reason}): {Detail}", EventName = "TcpCallerUnauthenticated")]
    public static partial void TcpCallerUnauthenticated(ILogger logger, string method, string remoteAddress, string reason, string detail);

    [LoggerMessage(107, LogLevel.Information, "TCP {TcpEndpoint} is HTTPS; region RPCs need a client certificate ({Certificates}) or a bearer token ({Tokens})", EventName = "TcpAuthenticationEnabled")]
    public static partial void TcpAuthenticationEnabled(ILogger logger, string tcpEndpoint, bool certificates, bool tokens);

    [LoggerMessage(108, LogLevel.Warning, "{Method} refused for {Identity}: it already has {Limit} streams open (PmemService:MaxConcurrentStreamsPerIdentity)", EventName = "StreamLimitReached")]
    public static partial void StreamLimitReached(ILogger logger, string method, string identity, int limit);

    [LoggerMessage(109, LogLevel.Warning, "{Method} on region {Region} denied to {Identity}: it needs '{Needed}' and has '{Has}'", EventName = "RegionAccessDenied")]
    public static partial void RegionAccessDenied(ILogger logger, string method, string identity, string region, string needed, string has);

    [LoggerMessage(110, LogLevel.Information, "Access of region {Region} changed by {Identity}: owner {Owner}, entries [{Entries}]", EventName = "RegionAccessChanged")]
    public static partial void RegionAccessChanged(ILogger logger, string region, string identity, string owner, string entries);

    [LoggerMessage(111, LogLevel.Warning, "Region {Region} refused for {Identity}: it has {Used} {Quota} of the {Limit} allowed per identity", EventName = "RegionQuotaExceeded")]
    public static partial void RegionQuotaExceeded(ILogger logger, string identity, string region, string quota, long used, long limit);

    [LoggerMessage(112, LogLevel.Information, "Per-region access is {Mode}; {Regions} region(s) in the pool, {Legacy} without an owner (created before per-region access: visible to superusers only in Isolated mode)", EventName = "RegionAccessMode")]
    public static partial void RegionAccessModeStarted(ILogger logger, RegionAccessMode mode, int regions, int legacy);

    [LoggerMessage(113, LogLevel.Warning, "PmemService:RegionAccess is Shared: every admitted caller can read, write and delete every region", EventName = "RegionAccessShared")]
    public static partial void RegionAccessShared(ILogger logger);
}
