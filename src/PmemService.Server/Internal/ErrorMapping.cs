using Grpc.Core;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>Maps non-domain exceptions (pmem2, I/O, access) to a <see cref="PmemServiceException"/>.</summary>
internal static class ErrorMapping
{
    private const int EPERM = 1;
    private const int EIO = 5;
    private const int ENOMEM = 12;
    private const int EACCES = 13;
    private const int ENFILE = 23;
    private const int EMFILE = 24;
    private const int ENOSPC = 28;
    private const int EOPNOTSUPP = 95;

    /// <summary>Returns the domain error for <paramref name="e"/>, or null when it is unexpected (INTERNAL).</summary>
    public static PmemServiceException? TryMap(Exception e) => e switch
    {
        PmemServiceException domain => domain,
        Pmem2Exception pmem2 => MapPmem2(pmem2),
        FileNotFoundException or DirectoryNotFoundException =>
            new PmemServiceException(StatusCode.NotFound, PmemErrorReasons.RegionNotFound, "The region file does not exist.", inner: e),
        RpcException { StatusCode: StatusCode.ResourceExhausted } rpc =>
            new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MessageTooLarge,
                $"A request message exceeds the server's receive limit (PmemService:MaxReceiveMessageSize): {rpc.Status.Detail}", inner: e),
        UnauthorizedAccessException =>
            new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.AccessDenied, $"Access to the pool was denied: {e.Message}", inner: e),
        _ => null,
    };

    /// <summary>Like <see cref="TryMap"/>, with INTERNAL for the unexpected.</summary>
    public static PmemServiceException Map(Exception e) =>
        TryMap(e) ?? new PmemServiceException(StatusCode.Internal, PmemErrorReasons.Internal, "Internal error.", inner: e);

    private static PmemServiceException MapPmem2(Pmem2Exception e)
    {
        if (e.IsPersistFailure)
        {
            // A failed persist is data loss whatever its errno (EIO, ENOSPC, EDQUOT at write-back):
            // the bytes it covered may not be on storage, and the mapping refuses every later persist.
            return new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.IoError,
                    $"Persisting the region failed ({e.Message}); bytes written since its last successful persist may be lost, and no later call persists this mapping until the region is unmapped and mapped again.", inner: e)
                .With("pmem2_error", e.Errno != 0 ? $"errno {e.Errno}" : e.Code.ToString());
        }

        var (code, reason) = e.Code switch
        {
            Pmem2ErrorCode.GranularityNotSupported => (StatusCode.FailedPrecondition, PmemErrorReasons.GranularityNotSupported),
            Pmem2ErrorCode.SourceEmpty or Pmem2ErrorCode.InvalidFileType or Pmem2ErrorCode.SourceTypeNotSupported
                or Pmem2ErrorCode.NoSupp => (StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMappable),
            Pmem2ErrorCode.MapRange or Pmem2ErrorCode.OffsetOutOfRange or Pmem2ErrorCode.LengthOutOfRange
                or Pmem2ErrorCode.DeepFlushRange => (StatusCode.OutOfRange, PmemErrorReasons.RangeOutOfBounds),
            Pmem2ErrorCode.NoAccess => (StatusCode.PermissionDenied, PmemErrorReasons.AccessDenied),
            Pmem2ErrorCode.IoFail => (StatusCode.DataLoss, PmemErrorReasons.IoError),
            _ => e.Errno switch
            {
                EACCES or EPERM => (StatusCode.PermissionDenied, PmemErrorReasons.AccessDenied),
                ENOSPC => (StatusCode.ResourceExhausted, PmemErrorReasons.PoolSpaceExhausted),
                ENOMEM or ENFILE or EMFILE => (StatusCode.ResourceExhausted, PmemErrorReasons.SystemResourcesExhausted),
                EIO => (StatusCode.DataLoss, PmemErrorReasons.IoError),
                EOPNOTSUPP => (StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMappable),
                _ => (StatusCode.Internal, PmemErrorReasons.Pmem2Error),
            },
        };

        var message = code == StatusCode.Internal ? "Unexpected pmem2 error." : e.Message;
        var error = new PmemServiceException(code, reason, message, code == StatusCode.FailedPrecondition && reason == PmemErrorReasons.GranularityNotSupported ? "required_granularity" : null, e);
        error.With("pmem2_error", e.Errno != 0 ? $"errno {e.Errno}" : e.Code.ToString());
        return error;
    }
}
