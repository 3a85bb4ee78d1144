namespace PmemCtl;

/// <summary>
/// pmemctl's process exit codes. They are part of the tool's interface: scripts may rely on them,
/// so values never change meaning.
/// </summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>Any other failure (INTERNAL, UNKNOWN, local I/O errors).</summary>
    public const int Failure = 1;

    /// <summary>Bad command line: unknown command or option, missing or malformed argument.</summary>
    public const int Usage = 2;

    /// <summary>The region (or a local file, or the health service name) does not exist (NOT_FOUND).</summary>
    public const int NotFound = 3;

    /// <summary>The server rejected an argument: offset/length outside the region (OUT_OF_RANGE) or a
    /// malformed request (INVALID_ARGUMENT).</summary>
    public const int InvalidArgument = 4;

    /// <summary>The region's state forbids it (FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED): e.g. mapped
    /// with another size or granularity, not mapped, still mapped on delete, granularity unavailable.</summary>
    public const int Conflict = 5;

    /// <summary>The server is unreachable, shutting down, not serving, or a deadline expired
    /// (UNAVAILABLE, DEADLINE_EXCEEDED, health NOT_SERVING).</summary>
    public const int Unavailable = 6;

    /// <summary>Data integrity failure: CRC-64 or offset mismatch of a transfer, or DATA_LOSS on the server.</summary>
    public const int DataIntegrity = 7;

    /// <summary>Space, quota, mapping or message-size limits are exhausted (RESOURCE_EXHAUSTED).</summary>
    public const int ResourceExhausted = 8;

    /// <summary>Not allowed (PERMISSION_DENIED, UNAUTHENTICATED; e.g. data-plane calls over TCP), or a local
    /// file cannot be accessed.</summary>
    public const int PermissionDenied = 9;

    /// <summary>Interrupted (Ctrl+C / SIGINT), as shells report 128 + SIGINT.</summary>
    public const int Cancelled = 130;
}
