using System.Security.Cryptography.X509Certificates;

namespace PmemService.Client;

/// <summary>Options of a <see cref="PmemClient"/>.</summary>
public sealed class PmemClientOptions
{
    /// <summary>Default chunk size of uploads and downloads: 1 MiB.</summary>
    public const int DefaultChunkSize = 1024 * 1024;

    /// <summary>Largest accepted <see cref="ChunkSize"/>: 16 MiB.</summary>
    public const int MaxChunkSize = 16 * 1024 * 1024;

    /// <summary>
    /// Deadline of every unary call (map, get, list page, write, read, persist, ...), measured from
    /// the start of the call. <see langword="null"/> means no deadline. Default 30 seconds.
    /// </summary>
    public TimeSpan? DefaultDeadline { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Deadline of each streaming call of <see cref="PmemClient.UploadAsync(Stream, string, long, IProgress{long}?, CancellationToken)"/>
    /// and <see cref="PmemClient.DownloadAsync(string, Stream, long, long, IProgress{long}?, CancellationToken)"/>
    /// (one attempt, not the whole transfer). <see langword="null"/> means no deadline. Default 1 hour.
    /// </summary>
    public TimeSpan? TransferDeadline { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Bytes per StreamWriteRegion message of uploads. Default 1 MiB. Must stay below the
    /// server's maximum receive message size (4 MiB by default) for uploads.
    /// </summary>
    public int ChunkSize { get; set; } = DefaultChunkSize;

    /// <summary>
    /// Bytes per StreamReadRegion response message the client asks for. Default 1 MiB (the server's
    /// default maximum, PmemService:MaxReadChunkSize).
    /// </summary>
    public int ReadChunkSize { get; set; } = DefaultChunkSize;

    /// <summary>
    /// Largest message the client accepts. <see langword="null"/> means 4 MiB or
    /// the larger chunk size plus 64 KiB, whichever is larger.
    /// </summary>
    public int? MaxReceiveMessageSize { get; set; }

    /// <summary>Largest message the client sends; <see langword="null"/> means unlimited.</summary>
    public int? MaxSendMessageSize { get; set; }

    /// <summary>
    /// Attempts (first try included) of idempotent unary and server-streaming calls
    /// (GetRegion, ListRegions, ReadRegion, PersistRegion, StreamReadRegion) through gRPC's
    /// built-in retry policy, on UNAVAILABLE. 1 disables retries. Default 4, at most 5.
    /// Writes, map, unmap and delete are never retried automatically.
    /// </summary>
    public int MaxRetryAttempts { get; set; } = 4;

    /// <summary>First retry backoff (gRPC randomizes each delay in [0, backoff]). Default 100 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Largest retry backoff. Default 2 seconds.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How many times an interrupted upload or download is resumed (from the server-reported
    /// persisted offset, or the last received byte) before the error is surfaced. Default 5; 0 disables.
    /// Uploads resume only from seekable sources.
    /// </summary>
    public int MaxTransferResumes { get; set; } = 5;

    /// <summary>
    /// Whether, after an upload was resumed, the bytes that an interrupted attempt had persisted are
    /// read back and checked against the source's CRC-64. Bytes of completed attempts are always
    /// checked against the CRC-64 the server returns. Default <see langword="true"/>.
    /// </summary>
    public bool VerifyResumedRanges { get; set; } = true;

    /// <summary>Optional HTTP handler; by default a <see cref="System.Net.Http.SocketsHttpHandler"/> is created.</summary>
    /// <remarks>
    /// For Unix sockets the default handler connects through <c>ConnectCallback</c>; a custom handler
    /// must do the same. The client does not dispose a handler given here.
    /// </remarks>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>
    /// Client certificate (with its private key) presented on an <c>https://</c> address: mutual TLS
    /// with a service whose PmemService:TcpAuthentication:ClientCaPath issued it. Ignored on Unix
    /// sockets, where the kernel tells the service who the caller is (SO_PEERCRED).
    /// </summary>
    public X509Certificate2? ClientCertificate { get; set; }

    /// <summary>
    /// Roots that the service's TLS certificate must chain to (only these; typically the CA of a
    /// private PKI). Null: the system's trust store.
    /// </summary>
    public X509Certificate2Collection? TrustedCertificateAuthorities { get; set; }

    /// <summary>Bearer token (JWT) sent as <c>authorization: Bearer ...</c> on every call; needs an <c>https://</c> address.</summary>
    public string? BearerToken { get; set; }

    /// <summary>
    /// Called before every call for the bearer token (re-reading a rotated token file, refreshing
    /// from an issuer); wins over <see cref="BearerToken"/>. Needs an <c>https://</c> address.
    /// </summary>
    public Func<CancellationToken, ValueTask<string?>>? BearerTokenProvider { get; set; }

    internal bool HasBearerToken => BearerTokenProvider is not null || !string.IsNullOrEmpty(BearerToken);

    internal void Validate()
    {
        if (ChunkSize is <= 0 or > MaxChunkSize)
        {
            throw new ArgumentOutOfRangeException(nameof(ChunkSize), ChunkSize, $"ChunkSize must be in [1, {MaxChunkSize}].");
        }

        if (ReadChunkSize is <= 0 or > MaxChunkSize)
        {
            throw new ArgumentOutOfRangeException(nameof(ReadChunkSize), ReadChunkSize, $"ReadChunkSize must be in [1, {MaxChunkSize}].");
        }

        if (MaxRetryAttempts is < 1 or > 5)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRetryAttempts), MaxRetryAttempts, "MaxRetryAttempts must be in [1, 5].");
        }

        if (MaxTransferResumes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxTransferResumes), MaxTransferResumes, "MaxTransferResumes must not be negative.");
        }

        if (DefaultDeadline is { } d && d <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(DefaultDeadline), d, "DefaultDeadline must be positive.");
        }

        if (TransferDeadline is { } t && t <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(TransferDeadline), t, "TransferDeadline must be positive.");
        }

        if (InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialBackoff), "InitialBackoff must be positive and at most MaxBackoff.");
        }
    }

    internal PmemClientOptions Clone() => (PmemClientOptions)MemberwiseClone();
}
