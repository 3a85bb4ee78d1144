namespace PmemService.Server.Internal.DirectAccess;

/// <summary>
/// The side-channel wire format (docs/direct-access.md). Client → server, once: the magic
/// <c>"PMD1"</c>, a 1-byte grant length, the grant's ASCII bytes. Server → client: one reply, either
/// <c>[0]</c> with the region descriptor attached (SCM_RIGHTS), or <c>[code][u16 length][UTF-8 message]</c>
/// followed by close. Later, the server may send <c>[R]</c> (revoked) and close after a grace period;
/// the lease ends when either side closes. While the lease is held, a read-write client may send persist
/// reports (issue 14): <c>[P][u64 offset][u64 length]</c> little-endian, after its persist of that range
/// returned; the service turns each into a WatchRegion event (DIRECT_PERSIST).
/// </summary>
internal static class DirectProtocol
{
    public static ReadOnlySpan<byte> Magic => "PMD1"u8;

    public const byte Ok = 0;
    public const byte GrantUnknown = 1;
    public const byte GrantExpired = 2;
    public const byte PeerMismatch = 3;
    public const byte RegionUnavailable = 4;
    public const byte BadRequest = 5;
    public const byte Revoked = (byte)'R';

    public const int MaxGrantLength = 128;

    /// <summary>Client → server persist report tag.</summary>
    public const byte PersistReport = (byte)'P';

    /// <summary>Length of one persist report: the tag, offset, length.</summary>
    public const int PersistReportLength = 17;
}
