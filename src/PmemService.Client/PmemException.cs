using System.Globalization;
using Google.Rpc;
using Grpc.Core;

namespace PmemService.Client;

/// <summary>What went wrong, derived from the gRPC status code (and the ErrorInfo reason).</summary>
public enum PmemErrorKind
{
    /// <summary>Unclassified failure (UNKNOWN or an unexpected status).</summary>
    Unknown = 0,
    /// <summary>The region does not exist (NOT_FOUND).</summary>
    RegionNotFound,
    /// <summary>The request is malformed (INVALID_ARGUMENT).</summary>
    InvalidArgument,
    /// <summary>The offset/length lies outside the region (OUT_OF_RANGE).</summary>
    OutOfRange,
    /// <summary>The region is not in the required state, e.g. mapped with other parameters,
    /// not mapped, or the granularity is unavailable (FAILED_PRECONDITION).</summary>
    FailedPrecondition,
    /// <summary>The resource already exists (ALREADY_EXISTS).</summary>
    AlreadyExists,
    /// <summary>The operation was aborted by a conflict (ABORTED).</summary>
    Aborted,
    /// <summary>Space, quota or mapping limits are exhausted, or a message is too large (RESOURCE_EXHAUSTED).</summary>
    ResourceExhausted,
    /// <summary>The caller may not do this, e.g. data-plane calls over TCP (PERMISSION_DENIED / UNAUTHENTICATED).</summary>
    PermissionDenied,
    /// <summary>The server is unreachable, draining or shutting down (UNAVAILABLE). Retryable.</summary>
    Unavailable,
    /// <summary>The call's deadline expired (DEADLINE_EXCEEDED).</summary>
    DeadlineExceeded,
    /// <summary>The call was cancelled by the server (CANCELLED).</summary>
    Cancelled,
    /// <summary>The server reported unrecoverable data loss, e.g. a poisoned line (DATA_LOSS).</summary>
    DataLoss,
    /// <summary>End-to-end verification failed: the CRC-64 or offsets of the transferred bytes do not match.</summary>
    ChecksumMismatch,
    /// <summary>The server failed internally (INTERNAL / UNIMPLEMENTED).</summary>
    Internal,
}

/// <summary>
/// A failed PmemService call, with the gRPC status, the <c>google.rpc.ErrorInfo</c> reason and
/// metadata (domain <c>pmem.v1</c>), and for interrupted uploads the last persisted offset.
/// </summary>
public class PmemException : Exception
{
    /// <summary>Trailer carrying the last persisted region offset of an interrupted StreamWriteRegion.</summary>
    public const string PersistedOffsetTrailer = "pmem-persisted-offset";

    /// <summary>ErrorInfo metadata key carrying the last persisted region offset.</summary>
    public const string PersistedOffsetMetadataKey = "persisted_offset";

    /// <summary>The error domain of PmemService's ErrorInfo details.</summary>
    public const string ErrorDomain = "pmem.v1";

    private static readonly IReadOnlyDictionary<string, string> s_noMetadata = new Dictionary<string, string>();

    /// <summary>Creates an exception for a client-side condition (no gRPC status behind it).</summary>
    public PmemException(PmemErrorKind kind, string reason, string message, Exception? innerException = null)
        : this(kind, KindToStatus(kind), reason, message, s_noMetadata, null, innerException)
    {
    }

    /// <summary>Creates an exception with every field given.</summary>
    protected PmemException(
        PmemErrorKind kind,
        StatusCode statusCode,
        string? reason,
        string message,
        IReadOnlyDictionary<string, string> metadata,
        long? persistedOffset,
        Exception? innerException)
        : base(message, innerException)
    {
        Kind = kind;
        StatusCode = statusCode;
        Reason = reason;
        Metadata = metadata;
        PersistedOffset = persistedOffset;
    }

    /// <summary>The classification of the failure.</summary>
    public PmemErrorKind Kind { get; }

    /// <summary>The gRPC status code of the call (or the closest one for client-side failures).</summary>
    public StatusCode StatusCode { get; }

    /// <summary>
    /// The stable UPPER_SNAKE_CASE reason from the server's ErrorInfo (e.g. <c>REGION_NOT_FOUND</c>),
    /// or a client-side reason such as <c>CHECKSUM_MISMATCH</c>; <see langword="null"/> when the
    /// server sent no ErrorInfo.
    /// </summary>
    public string? Reason { get; }

    /// <summary>The ErrorInfo metadata (empty when there is none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// For an interrupted StreamWriteRegion: the region offset just past the last persisted byte,
    /// from the <c>pmem-persisted-offset</c> trailer or the ErrorInfo metadata <c>persisted_offset</c>.
    /// </summary>
    public long? PersistedOffset { get; }

    /// <summary>The reason if present, otherwise the status code in UPPER_SNAKE_CASE (e.g. <c>NOT_FOUND</c>).</summary>
    public string ReasonOrCode => Reason ?? StatusCodeName(StatusCode);

    /// <summary>Converts a gRPC failure into a <see cref="PmemException"/>, reading its rich status details.</summary>
    public static PmemException FromRpcException(RpcException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);

        Google.Rpc.Status? status = null;
        try
        {
            status = exception.GetRpcStatus();
        }
        catch (Exception ex) when (ex is Google.Protobuf.InvalidProtocolBufferException or FormatException)
        {
            // A malformed grpc-status-details-bin trailer: fall back to the plain status.
        }

        var info = status?.GetDetail<ErrorInfo>();
        var metadata = info is { Metadata.Count: > 0 }
            ? new Dictionary<string, string>(info.Metadata)
            : s_noMetadata;

        var message = status?.Message;
        if (string.IsNullOrEmpty(message))
        {
            message = exception.Status.Detail;
        }

        if (string.IsNullOrEmpty(message))
        {
            message = StatusCodeName(exception.StatusCode).ToLowerInvariant().Replace('_', ' ');
        }

        var badRequest = status?.GetDetail<BadRequest>();
        if (badRequest is { FieldViolations.Count: > 0 })
        {
            // Servers usually repeat the status message as the violation's description: name the field only then.
            var violations = string.Join("; ", badRequest.FieldViolations.Select(v =>
                string.IsNullOrEmpty(v.Description) || message.Contains(v.Description, StringComparison.Ordinal)
                    ? $"field {v.Field}"
                    : $"{v.Field}: {v.Description}"));
            if (!message.Contains(violations, StringComparison.Ordinal))
            {
                message = $"{message} ({violations})";
            }
        }

        var persisted = ReadPersistedOffset(exception.Trailers, metadata);
        var reason = string.IsNullOrEmpty(info?.Reason) ? null : info!.Reason;
        var kind = StatusToKind(exception.StatusCode);
        return new PmemException(kind, exception.StatusCode, reason, message, metadata, persisted, exception);
    }

    /// <summary>Reads the last persisted offset from trailers or ErrorInfo metadata.</summary>
    internal static long? ReadPersistedOffset(Metadata? trailers, IReadOnlyDictionary<string, string> metadata)
    {
        var text = trailers?.GetValue(PersistedOffsetTrailer);
        if (text is null && !metadata.TryGetValue(PersistedOffsetMetadataKey, out text))
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
    }

    /// <summary>Maps a gRPC status code to a <see cref="PmemErrorKind"/>.</summary>
    public static PmemErrorKind StatusToKind(StatusCode code) => code switch
    {
        StatusCode.NotFound => PmemErrorKind.RegionNotFound,
        StatusCode.InvalidArgument => PmemErrorKind.InvalidArgument,
        StatusCode.OutOfRange => PmemErrorKind.OutOfRange,
        StatusCode.FailedPrecondition => PmemErrorKind.FailedPrecondition,
        StatusCode.AlreadyExists => PmemErrorKind.AlreadyExists,
        StatusCode.Aborted => PmemErrorKind.Aborted,
        StatusCode.ResourceExhausted => PmemErrorKind.ResourceExhausted,
        StatusCode.PermissionDenied or StatusCode.Unauthenticated => PmemErrorKind.PermissionDenied,
        StatusCode.Unavailable => PmemErrorKind.Unavailable,
        StatusCode.DeadlineExceeded => PmemErrorKind.DeadlineExceeded,
        StatusCode.Cancelled => PmemErrorKind.Cancelled,
        StatusCode.DataLoss => PmemErrorKind.DataLoss,
        StatusCode.Internal or StatusCode.Unimplemented => PmemErrorKind.Internal,
        _ => PmemErrorKind.Unknown,
    };

    private static StatusCode KindToStatus(PmemErrorKind kind) => kind switch
    {
        PmemErrorKind.RegionNotFound => StatusCode.NotFound,
        PmemErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        PmemErrorKind.OutOfRange => StatusCode.OutOfRange,
        PmemErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        PmemErrorKind.AlreadyExists => StatusCode.AlreadyExists,
        PmemErrorKind.Aborted => StatusCode.Aborted,
        PmemErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        PmemErrorKind.PermissionDenied => StatusCode.PermissionDenied,
        PmemErrorKind.Unavailable => StatusCode.Unavailable,
        PmemErrorKind.DeadlineExceeded => StatusCode.DeadlineExceeded,
        PmemErrorKind.Cancelled => StatusCode.Cancelled,
        PmemErrorKind.DataLoss or PmemErrorKind.ChecksumMismatch => StatusCode.DataLoss,
        PmemErrorKind.Internal => StatusCode.Internal,
        _ => StatusCode.Unknown,
    };

    /// <summary>The canonical UPPER_SNAKE_CASE name of a status code (e.g. <c>FAILED_PRECONDITION</c>).</summary>
    public static string StatusCodeName(StatusCode code) => code switch
    {
        StatusCode.OK => "OK",
        StatusCode.Cancelled => "CANCELLED",
        StatusCode.Unknown => "UNKNOWN",
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.AlreadyExists => "ALREADY_EXISTS",
        StatusCode.PermissionDenied => "PERMISSION_DENIED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
        StatusCode.Aborted => "ABORTED",
        StatusCode.OutOfRange => "OUT_OF_RANGE",
        StatusCode.Unimplemented => "UNIMPLEMENTED",
        StatusCode.Internal => "INTERNAL",
        StatusCode.Unavailable => "UNAVAILABLE",
        StatusCode.DataLoss => "DATA_LOSS",
        StatusCode.Unauthenticated => "UNAUTHENTICATED",
        _ => ((int)code).ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>One line: <c>REASON: message</c>.</summary>
    public override string ToString() => $"{ReasonOrCode}: {Message}";
}

/// <summary>
/// End-to-end verification of a transfer failed: the CRC-64 (ECMA-182) computed by the client does
/// not match the server's, or a streamed chunk arrived at an unexpected offset.
/// </summary>
public sealed class PmemChecksumMismatchException : PmemException
{
    /// <summary>Reason of checksum failures.</summary>
    public const string ChecksumMismatchReason = "CHECKSUM_MISMATCH";

    /// <summary>Creates the exception.</summary>
    public PmemChecksumMismatchException(string message, ulong expectedCrc64, ulong actualCrc64, long regionOffset, long length)
        : base(PmemErrorKind.ChecksumMismatch, ChecksumMismatchReason, message)
    {
        ExpectedCrc64 = expectedCrc64;
        ActualCrc64 = actualCrc64;
        RegionOffset = regionOffset;
        Length = length;
    }

    /// <summary>The CRC-64 of the source bytes as computed by the client.</summary>
    public ulong ExpectedCrc64 { get; }

    /// <summary>The CRC-64 reported by (or read back from) the server.</summary>
    public ulong ActualCrc64 { get; }

    /// <summary>Region offset of the checked range.</summary>
    public long RegionOffset { get; }

    /// <summary>Length of the checked range.</summary>
    public long Length { get; }
}

/// <summary>
/// An upload was stopped on request (the stop token of
/// <see cref="PmemClient.UploadAsync(Stream, string, long, IProgress{long}?, CancellationToken, CancellationToken)"/>):
/// region bytes from the upload's offset up to <see cref="PmemException.PersistedOffset"/> are persistent.
/// </summary>
public sealed class PmemUploadStoppedException : PmemException
{
    /// <summary>Creates the exception.</summary>
    public PmemUploadStoppedException(string region, long offset, long persistedOffset, Exception? innerException)
        : base(PmemErrorKind.Cancelled, StatusCode.Cancelled, "CANCELLED",
            string.Create(CultureInfo.InvariantCulture,
                $"upload to '{region}' stopped: {persistedOffset - offset} bytes persisted, region bytes [{offset}, {persistedOffset}) are durable; resume at offset {persistedOffset}"),
            new Dictionary<string, string>(), persistedOffset, innerException)
    {
        Region = region;
        Offset = offset;
    }

    /// <summary>The region of the upload.</summary>
    public string Region { get; }

    /// <summary>Region offset where the upload started.</summary>
    public long Offset { get; }

    /// <summary>Bytes of the upload that are persistent.</summary>
    public long BytesPersisted => (PersistedOffset ?? Offset) - Offset;
}
