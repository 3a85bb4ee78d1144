using Microsoft.Extensions.Logging;

namespace PmemService.Server.Internal;

/// <summary>Source-generated log messages of the service with stable event ids (grpc-dotnet GrpcServerLog shape).</summary>
internal static partial class PmemLog
{
    [LoggerMessage(1, LogLevel.Information, "PmemService starting: pool {PoolPath}, Unix socket {UnixSocketPath}, TCP {TcpEndpoint}", EventName = "ServiceStarting")]
    public static partial void ServiceStarting(ILogger logger, string poolPath, string unixSocketPath, string tcpEndpoint);

    [LoggerMessage(2, LogLevel.Information, "Pmem2 engine: flush instruction {FlushInstruction}, copy engine {CopyEngine}", EventName = "Pmem2Engine")]
    public static partial void Pmem2Engine(ILogger logger, string flushInstruction, string copyEngine);

    [LoggerMessage(3, LogLevel.Information, "Pool probe: effective granularity {Granularity}, MAP_SYNC {MapSync}", EventName = "PoolProbed")]
    public static partial void PoolProbed(ILogger logger, string granularity, bool mapSync);

    [LoggerMessage(4, LogLevel.Warning, "Pool {PoolPath} is not on a DAX filesystem (MAP_SYNC unavailable: {Reason}); regions run at PAGE granularity and every persist is an msync of the written pages. Mount a DAX filesystem (ext4/xfs -o dax) and set PmemService:RequireDax=true to insist on CACHE_LINE", EventName = "NoDax")]
    public static partial void NoDax(ILogger logger, string poolPath, string reason);

    [LoggerMessage(5, LogLevel.Information, "Region {Region} created ({Size} bytes, fully allocated)", EventName = "RegionCreated")]
    public static partial void RegionCreated(ILogger logger, string region, ulong size);

    [LoggerMessage(6, LogLevel.Information, "Region {Region} mapped: {Size} bytes, granularity {Granularity}, MAP_SYNC {MapSync}", EventName = "RegionMapped")]
    public static partial void RegionMapped(ILogger logger, string region, ulong size, string granularity, bool mapSync);

    [LoggerMessage(7, LogLevel.Information, "Region {Region} persisted and unmapped", EventName = "RegionUnmapped")]
    public static partial void RegionUnmapped(ILogger logger, string region);

    [LoggerMessage(8, LogLevel.Information, "Region {Region} deleted (force {Force})", EventName = "RegionDeleted")]
    public static partial void RegionDeleted(ILogger logger, string region, bool force);

    [LoggerMessage(9, LogLevel.Debug, "Stream write to {Region} complete: {Bytes} bytes persisted up to offset {PersistedOffset}", EventName = "StreamWriteCompleted")]
    public static partial void StreamWriteCompleted(ILogger logger, string region, ulong bytes, ulong persistedOffset);

    [LoggerMessage(10, LogLevel.Warning, "Stream write to {Region} ended early ({Reason}): {BytesPersisted} bytes persistent, persisted offset {PersistedOffset}", EventName = "StreamWriteInterrupted")]
    public static partial void StreamWriteInterrupted(ILogger logger, string region, string reason, ulong bytesPersisted, ulong persistedOffset);

    [LoggerMessage(11, LogLevel.Information, "Shutdown: persisting and unmapping {Count} mapped regions", EventName = "ShutdownPersisting")]
    public static partial void ShutdownPersisting(ILogger logger, int count);

    [LoggerMessage(12, LogLevel.Information, "Shutdown complete: every mapping persisted and unmapped", EventName = "ShutdownComplete")]
    public static partial void ShutdownComplete(ILogger logger);

    [LoggerMessage(13, LogLevel.Warning, "Removed {Path}, left behind by an interrupted region creation", EventName = "StaleTempFileRemoved")]
    public static partial void StaleTempFileRemoved(ILogger logger, string path);

    [LoggerMessage(14, LogLevel.Error, "Unhandled error in {Method}", EventName = "UnhandledError")]
    public static partial void UnhandledError(ILogger logger, string method, Exception exception);

    [LoggerMessage(15, LogLevel.Information, "Unix socket {Path} listening with mode {Mode}", EventName = "SocketModeSet")]
    public static partial void SocketModeSet(ILogger logger, string path, string mode);

    [LoggerMessage(16, LogLevel.Warning, "Removed stale Unix socket {Path}", EventName = "StaleSocketRemoved")]
    public static partial void StaleSocketRemoved(ILogger logger, string path);

    [LoggerMessage(17, LogLevel.Information, "Pool {PoolPath} holds {Count} regions", EventName = "RegionsFound")]
    public static partial void RegionsFound(ILogger logger, string poolPath, int count);

    [LoggerMessage(18, LogLevel.Debug, "{Method} failed: {StatusCode} {Reason}: {Message}", EventName = "RpcFailed")]
    public static partial void RpcFailed(ILogger logger, string method, string statusCode, string reason, string message);

    [LoggerMessage(19, LogLevel.Error, "Persisting region {Region} before unmap failed", EventName = "PersistOnUnmapFailed")]
    public static partial void PersistOnUnmapFailed(ILogger logger, string region, Exception exception);

    [LoggerMessage(50, LogLevel.Error, "Persisting region {Region} failed ({Operation}); the mapping refuses every later persist until the region is unmapped and mapped again", EventName = "PersistFailed")]
    public static partial void PersistFailed(ILogger logger, string region, string operation, Exception exception);

    [LoggerMessage(51, LogLevel.Warning, "{Operation} on region {Region} refused: an earlier persist of its mapping failed ({Error})", EventName = "PersistRefusedAfterFailure")]
    public static partial void PersistRefusedAfterFailure(ILogger logger, string operation, string region, string error);

    [LoggerMessage(20, LogLevel.Warning, "Shutdown: {Count} calls still hold regions after the wait; their mappings are closed when they end", EventName = "ShutdownLeasesOutstanding")]
    public static partial void ShutdownLeasesOutstanding(ILogger logger, int count);

    // 30-49: region lifecycle (issue 9).
    [LoggerMessage(30, LogLevel.Warning, "Region {Region}: the mapping was retired because the region file changed outside the service ({Why})", EventName = "RegionFileChanged")]
    public static partial void RegionFileChanged(ILogger logger, string region, string why);

    [LoggerMessage(31, LogLevel.Error, "Region {Region}: persisting before the last unmap failed; the unmap is reported as failed", EventName = "UnmapPersistFailed")]
    public static partial void UnmapPersistFailed(ILogger logger, string region, Exception exception);

    [LoggerMessage(32, LogLevel.Error, "Shutdown: persisting region {Region} failed", EventName = "ShutdownPersistFailed")]
    public static partial void ShutdownPersistFailed(ILogger logger, string region, Exception exception);

    [LoggerMessage(33, LogLevel.Warning, "Pool probe failed ({Reason}); the service runs but readiness is NOT_SERVING until the probe succeeds", EventName = "PoolProbeFailed")]
    public static partial void PoolProbeFailed(ILogger logger, string reason);

    [LoggerMessage(34, LogLevel.Warning, "Could not remove {Path}, left behind by an interrupted creation: {Reason}", EventName = "StaleTempFileKept")]
    public static partial void StaleTempFileKept(ILogger logger, string path, string reason);

    [LoggerMessage(35, LogLevel.Information, "Region {Region}: waiting for {Leases} running calls before the last unmap persists", EventName = "UnmapWaitingForCalls")]
    public static partial void UnmapWaitingForCalls(ILogger logger, string region, int leases);

    [LoggerMessage(36, LogLevel.Warning, "Pool {PoolPath} is read-only; the pool lock is a shared read lock and regions cannot be created, mapped or deleted", EventName = "PoolReadOnly")]
    public static partial void PoolReadOnly(ILogger logger, string poolPath);

    // Sharing primitives (issue 14): event ids 120-139.
    [LoggerMessage(120, LogLevel.Debug, "Watch of {Region} started after sequence {AfterSequence} (latest {LatestSequence})", EventName = "WatchStarted")]
    public static partial void WatchStarted(ILogger logger, string region, ulong afterSequence, ulong latestSequence);

    [LoggerMessage(121, LogLevel.Warning, "Watch of {Region} ended: {Message}", EventName = "WatchOverflowed")]
    public static partial void WatchOverflowed(ILogger logger, string region, string message);

    [LoggerMessage(122, LogLevel.Information, "Upload {UploadId} to {Region}: persisted up to offset {PersistedOffset} (recorded)", EventName = "UploadRecorded")]
    public static partial void UploadRecorded(ILogger logger, string region, string uploadId, ulong persistedOffset);

    [LoggerMessage(123, LogLevel.Error, "Upload {UploadId} to {Region}: bytes persisted up to offset {PersistedOffset}, but the record could not be written", EventName = "UploadRecordFailed")]
    public static partial void UploadRecordFailed(ILogger logger, string region, string uploadId, ulong persistedOffset, Exception exception);

    [LoggerMessage(124, LogLevel.Debug, "Direct-access client persisted [{Offset}, +{Length}) of {Region}", EventName = "DirectPersistReported")]
    public static partial void DirectPersistReported(ILogger logger, string region, ulong offset, ulong length);
}
