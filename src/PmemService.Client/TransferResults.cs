namespace PmemService.Client;

/// <summary>Result of <see cref="PmemClient.WriteAsync(string, long, ReadOnlyMemory{byte}, bool, CancellationToken)"/>.</summary>
/// <param name="BytesWritten">Bytes written.</param>
/// <param name="Persisted">Whether the bytes are persistent now (false only with deferred persist).</param>
public readonly record struct WriteResult(long BytesWritten, bool Persisted);

/// <summary>Result of an upload through StreamWriteRegion.</summary>
/// <param name="Region">Region name.</param>
/// <param name="Offset">Region offset of the first byte.</param>
/// <param name="Length">Bytes uploaded (all persisted).</param>
/// <param name="Crc64">CRC-64 (ECMA-182, <see cref="System.IO.Hashing.Crc64"/>) of the uploaded bytes, verified against the server.</param>
/// <param name="Attempts">Streams opened (1 when no resume was needed).</param>
/// <param name="ResumedFrom">Region offsets each resumed attempt started from, in order.</param>
/// <param name="Interruptions">The transient failures that were resumed from, in order (parallel to <paramref name="ResumedFrom"/>).</param>
/// <param name="Elapsed">Wall-clock duration of the whole upload.</param>
public sealed record UploadResult(
    string Region,
    long Offset,
    long Length,
    ulong Crc64,
    int Attempts,
    IReadOnlyList<long> ResumedFrom,
    IReadOnlyList<PmemException> Interruptions,
    TimeSpan Elapsed)
{
    /// <summary>Throughput in bytes per second.</summary>
    public double BytesPerSecond => Elapsed > TimeSpan.Zero ? Length / Elapsed.TotalSeconds : 0;
}

/// <summary>Result of a download through StreamReadRegion.</summary>
/// <param name="Region">Region name.</param>
/// <param name="Offset">Region offset of the first byte.</param>
/// <param name="Length">Bytes downloaded.</param>
/// <param name="Crc64">CRC-64 (ECMA-182) of the downloaded bytes.</param>
/// <param name="Attempts">Streams opened (1 when no resume was needed).</param>
/// <param name="Elapsed">Wall-clock duration of the whole download.</param>
public sealed record DownloadResult(
    string Region,
    long Offset,
    long Length,
    ulong Crc64,
    int Attempts,
    TimeSpan Elapsed)
{
    /// <summary>Throughput in bytes per second.</summary>
    public double BytesPerSecond => Elapsed > TimeSpan.Zero ? Length / Elapsed.TotalSeconds : 0;
}

/// <summary>Serving status reported by the standard gRPC health service.</summary>
public enum PmemHealthStatus
{
    /// <summary>The server did not say.</summary>
    Unknown = 0,
    /// <summary>The checks of the service pass.</summary>
    Serving = 1,
    /// <summary>At least one check of the service fails.</summary>
    NotServing = 2,
    /// <summary>The server does not know the named service.</summary>
    ServiceUnknown = 3,
}
