namespace PmemService.Server;

/// <summary>
/// Stable google.rpc.ErrorInfo reasons (domain <see cref="Domain"/>). They are API: never rename one.
/// </summary>
public static class PmemErrorReasons
{
    /// <summary>ErrorInfo domain of every reason below.</summary>
    public const string Domain = "pmem.v1";

    /// <summary>Trailer carrying the last persisted offset of a stream that ended early.</summary>
    public const string PersistedOffsetTrailer = "pmem-persisted-offset";

    /// <summary>ErrorInfo metadata key: last persisted offset of an interrupted stream.</summary>
    public const string PersistedOffsetKey = "persisted_offset";

    /// <summary>ErrorInfo metadata key: bytes of the interrupted stream that are persistent.</summary>
    public const string BytesPersistedKey = "bytes_persisted";

    // INVALID_ARGUMENT
    /// <summary>Name empty, too long, with characters outside [A-Za-z0-9._-] or starting with '.'.</summary>
    public const string InvalidRegionName = "INVALID_REGION_NAME";
    /// <summary>Size 0 when creating a region.</summary>
    public const string InvalidRegionSize = "INVALID_REGION_SIZE";
    /// <summary>Granularity value outside the enum.</summary>
    public const string InvalidGranularity = "INVALID_GRANULARITY";
    /// <summary>OpenDirect access is not READ_ONLY or READ_WRITE.</summary>
    public const string InvalidDirectAccess = "INVALID_DIRECT_ACCESS";
    /// <summary>Negative page_size.</summary>
    public const string InvalidPageSize = "INVALID_PAGE_SIZE";
    /// <summary>page_token not produced by this service.</summary>
    public const string InvalidPageToken = "INVALID_PAGE_TOKEN";
    /// <summary>ReadRegion length above the unary limit (use StreamReadRegion).</summary>
    public const string ReadTooLarge = "READ_TOO_LARGE";
    /// <summary>StreamReadRegion chunk_size above the configured maximum.</summary>
    public const string ChunkSizeTooLarge = "CHUNK_SIZE_TOO_LARGE";
    /// <summary>StreamWriteRegion did not start with a header.</summary>
    public const string MissingStreamHeader = "MISSING_STREAM_HEADER";
    /// <summary>StreamWriteRegion carried a second header or an empty message.</summary>
    public const string UnexpectedStreamMessage = "UNEXPECTED_STREAM_MESSAGE";
    /// <summary>StreamWriteRegion ended with fewer bytes than header.total_length.</summary>
    public const string StreamLengthMismatch = "STREAM_LENGTH_MISMATCH";
    /// <summary>A request body that is not a valid protobuf message of the method's request type.</summary>
    public const string MalformedMessage = "MALFORMED_MESSAGE";
    /// <summary>A stream message above the server's MaxReceiveMessageSize (RESOURCE_EXHAUSTED).</summary>
    public const string MessageTooLarge = "MESSAGE_TOO_LARGE";

    // OUT_OF_RANGE
    /// <summary>offset/length outside the region.</summary>
    public const string RangeOutOfBounds = "RANGE_OUT_OF_BOUNDS";
    /// <summary>offset + length overflows 64 bits.</summary>
    public const string RangeOverflow = "RANGE_OVERFLOW";

    // NOT_FOUND
    /// <summary>No region file with that name in the pool.</summary>
    public const string RegionNotFound = "REGION_NOT_FOUND";
    /// <summary>The region was deleted (force) while the call was using it.</summary>
    public const string RegionDeleted = "REGION_DELETED";

    // ALREADY_EXISTS
    /// <summary>A file with the region's name appeared while it was being created.</summary>
    public const string RegionAlreadyExists = "REGION_ALREADY_EXISTS";

    // FAILED_PRECONDITION
    /// <summary>MapRegion size differs from the existing region's (growing is not supported).</summary>
    public const string RegionSizeMismatch = "REGION_SIZE_MISMATCH";
    /// <summary>Data RPC on a region nobody has mapped (call MapRegion first).</summary>
    public const string RegionNotMapped = "REGION_NOT_MAPPED";
    /// <summary>DeleteRegion while mapped, without force.</summary>
    public const string RegionInUse = "REGION_IN_USE";
    /// <summary>Requested granularity finer than the platform/pool provides (no MAP_SYNC).</summary>
    public const string GranularityNotSupported = "GRANULARITY_NOT_SUPPORTED";
    /// <summary>The region file is empty or not a regular file pmem2 can map.</summary>
    public const string RegionNotMappable = "REGION_NOT_MAPPABLE";
    /// <summary>The pool's filesystem does not support fallocate, so region files would be sparse.</summary>
    public const string PoolNotPreallocatable = "POOL_NOT_PREALLOCATABLE";

    // RESOURCE_EXHAUSTED
    /// <summary>Region size above PmemService:MaxRegionSize.</summary>
    public const string RegionSizeLimit = "REGION_SIZE_LIMIT";
    /// <summary>Mapping would exceed PmemService:MaxMappedBytes.</summary>
    public const string MappedBytesLimit = "MAPPED_BYTES_LIMIT";
    /// <summary>The pool filesystem has no room for the region (fallocate failed with ENOSPC/EFBIG).</summary>
    public const string PoolSpaceExhausted = "POOL_SPACE_EXHAUSTED";
    /// <summary>The kernel refused memory or descriptors (ENOMEM, EMFILE).</summary>
    public const string SystemResourcesExhausted = "SYSTEM_RESOURCES_EXHAUSTED";

    // PERMISSION_DENIED
    /// <summary>The pool file could not be accessed (EACCES/EPERM).</summary>
    public const string AccessDenied = "ACCESS_DENIED";
    /// <summary>Data-plane RPC over TCP while PmemService:AllowDataPlaneOverTcp is false.</summary>
    public const string UnixSocketRequired = "UNIX_SOCKET_REQUIRED";
    /// <summary>OpenDirect: the caller's process credentials (SO_PEERCRED) could not be read, or the direct lane is disabled.</summary>
    public const string DirectAccessUnavailable = "DIRECT_ACCESS_UNAVAILABLE";

    // UNAVAILABLE
    /// <summary>The server is shutting down; retry against the next instance.</summary>
    public const string ShuttingDown = "SHUTTING_DOWN";

    // CANCELLED / DEADLINE_EXCEEDED
    /// <summary>The client cancelled the call.</summary>
    public const string Cancelled = "CANCELLED";
    /// <summary>The call's deadline passed.</summary>
    public const string DeadlineExceeded = "DEADLINE_EXCEEDED";

    // DATA_LOSS
    /// <summary>An I/O error (EIO, poisoned memory) while accessing the region, or a failed persist
    /// (msync error of any errno): sticky for the mapping until the region is unmapped and mapped again.</summary>
    public const string IoError = "IO_ERROR";
    /// <summary>The request touches a known bad range (NVDIMM bad block) of the region; ErrorInfo
    /// metadata bad_offset / bad_length give the range.</summary>
    public const string BadBlock = "BAD_BLOCK";

    // INTERNAL
    /// <summary>An unexpected pmem2 error.</summary>
    public const string Pmem2Error = "PMEM2_ERROR";
    /// <summary>Anything else; details are logged, not returned.</summary>
    public const string Internal = "INTERNAL";

    // Region lifecycle under faults (issue 9).
    /// <summary>DATA_LOSS: the region file was truncated, replaced or removed outside the service while mapped;
    /// the mapping was retired (never reused) and bytes acknowledged in it may be gone. Unmap, then map again.</summary>
    public const string RegionFileChanged = "REGION_FILE_CHANGED";
    /// <summary>FAILED_PRECONDITION: the pool's filesystem is read-only (EROFS), e.g. remounted read-only after an error.</summary>
    public const string PoolReadOnly = "POOL_READ_ONLY";
    // Region content (SetRegionContent)
    /// <summary>INVALID_ARGUMENT: content_crc64 is not 16 hex digits (or is given with clear).</summary>
    public const string InvalidChecksum = "INVALID_CHECKSUM";
    /// <summary>FAILED_PRECONDITION: the pool's filesystem has no user extended attributes (EOPNOTSUPP).</summary>
    public const string ContentMetadataNotSupported = "CONTENT_METADATA_NOT_SUPPORTED";

    // Caller identity (issue 12).
    /// <summary>PERMISSION_DENIED: the Unix socket caller's uid and gid (SO_PEERCRED) are not in
    /// PmemService:AllowedUids / AllowedGids.</summary>
    public const string PeerNotAllowed = "PEER_NOT_ALLOWED";
    /// <summary>UNAUTHENTICATED: the call carries no identity the service can check (a Unix socket
    /// connection whose SO_PEERCRED could not be read).</summary>
    public const string Unauthenticated = "UNAUTHENTICATED";
    /// <summary>UNAUTHENTICATED: TCP credentials were presented and rejected (a client certificate not chained
    /// to PmemService:TcpAuthentication:ClientCaPath, a token with a bad signature, issuer or audience).</summary>
    public const string InvalidCredentials = "INVALID_CREDENTIALS";
    /// <summary>UNAUTHENTICATED: the bearer token has expired.</summary>
    public const string TokenExpired = "TOKEN_EXPIRED";
    /// <summary>RESOURCE_EXHAUSTED: the caller identity already has PmemService:MaxConcurrentStreamsPerIdentity streams open.</summary>
    public const string StreamLimit = "STREAM_LIMIT";

    // Per-region access (issue 12 item 4/5)
    /// <summary>PERMISSION_DENIED: the caller's access list entry (or ownership) does not give the right the call needs
    /// (for example read but not write), or MapRegion(create_if_missing) of a name another identity's region has.</summary>
    public const string RegionAccessDenied = "REGION_ACCESS_DENIED";
    /// <summary>INVALID_ARGUMENT: SetRegionAccess with a subject that is not uid:N, gid:N or sub:TEXT, no right, or too many entries.</summary>
    public const string InvalidAccessEntry = "INVALID_ACCESS_ENTRY";
    /// <summary>FAILED_PRECONDITION: the pool's filesystem has no user extended attributes, so ownership cannot be stored (RegionAccess=Isolated).</summary>
    public const string AccessMetadataNotSupported = "ACCESS_METADATA_NOT_SUPPORTED";
    /// <summary>RESOURCE_EXHAUSTED: the owner already has PmemService:MaxRegionsPerIdentity regions.</summary>
    public const string RegionCountQuota = "REGION_COUNT_QUOTA";
    /// <summary>RESOURCE_EXHAUSTED: mapping would exceed PmemService:MaxMappedBytesPerIdentity for the region's owner.</summary>
    public const string MappedBytesQuota = "MAPPED_BYTES_QUOTA";

    // Sharing primitives (issue 14).
    /// <summary>INVALID_ARGUMENT: an AtomicWrite / CompareAndSwap / FetchAdd offset is not 8-byte aligned.</summary>
    public const string AtomicMisaligned = "ATOMIC_MISALIGNED";
    /// <summary>INVALID_ARGUMENT: flush_type is not a FlushType value, or FLUSH_TYPE_PERSISTENT was given with defer_persist.</summary>
    public const string InvalidFlushType = "INVALID_FLUSH_TYPE";
    /// <summary>INVALID_ARGUMENT: upload_id is not 1 to 64 characters of [A-Za-z0-9._-].</summary>
    public const string InvalidUploadId = "INVALID_UPLOAD_ID";
    /// <summary>NOT_FOUND: the region has no (unexpired) record of this upload id.</summary>
    public const string UploadNotFound = "UPLOAD_NOT_FOUND";
    /// <summary>DATA_LOSS: a watcher missed events: its after_sequence is older than the region's bounded history,
    /// its epoch is not the server's (the server restarted), or it read too slowly. ErrorInfo metadata
    /// oldest_sequence / latest_sequence / epoch say what is still available.</summary>
    public const string WatchHistoryOverflow = "WATCH_HISTORY_OVERFLOW";
    /// <summary>OUT_OF_RANGE: after_sequence is larger than the region's latest sequence in this epoch.</summary>
    public const string WatchSequenceAhead = "WATCH_SEQUENCE_AHEAD";
}
