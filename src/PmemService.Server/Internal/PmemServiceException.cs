using Grpc.Core;

namespace PmemService.Server.Internal;

/// <summary>
/// A domain error with its gRPC code, stable reason and optional field at fault. Thrown by the
/// region manager and the service; turned into a google.rpc.Status by <see cref="ErrorMappingInterceptor"/>.
/// </summary>
internal sealed class PmemServiceException : Exception
{
    public PmemServiceException(StatusCode code, string reason, string message, string? field = null, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        Reason = reason;
        Field = field;
    }

    public StatusCode Code { get; }

    public string Reason { get; }

    /// <summary>Request field at fault (BadRequest.FieldViolation), if any.</summary>
    public string? Field { get; }

    /// <summary>Extra ErrorInfo metadata (string values, stable keys).</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    /// <summary>Last persisted offset of a stream that ended early (sent as trailer and metadata).</summary>
    public ulong? PersistedOffset { get; set; }

    /// <summary>Bytes of that stream that are persistent.</summary>
    public ulong? BytesPersisted { get; set; }

    public PmemServiceException With(string key, object value)
    {
        Metadata[key] = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
        return this;
    }

    public static PmemServiceException NotFound(string name) =>
        new PmemServiceException(StatusCode.NotFound, PmemErrorReasons.RegionNotFound, $"Region '{name}' does not exist.").With("region", name);

    public static PmemServiceException NotMapped(string name) =>
        new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMapped,
            $"Region '{name}' is not mapped; call MapRegion first.").With("region", name);

    public static PmemServiceException Deleted(string name) =>
        new PmemServiceException(StatusCode.NotFound, PmemErrorReasons.RegionDeleted, $"Region '{name}' was deleted.").With("region", name);

    public static PmemServiceException ShuttingDown() =>
        new(StatusCode.Unavailable, PmemErrorReasons.ShuttingDown, "The server is shutting down.");
}
