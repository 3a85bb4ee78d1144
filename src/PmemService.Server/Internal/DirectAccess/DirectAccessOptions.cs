namespace PmemService.Server.Internal.DirectAccess;

/// <summary>Direct access lane settings, section "PmemService:DirectAccess".</summary>
internal sealed class DirectAccessOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = PmemServiceOptions.SectionName + ":DirectAccess";

    /// <summary>Serve OpenDirect and the side channel (needs the Unix socket).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Side-channel socket path; empty: next to the gRPC socket, "&lt;name&gt;-direct.sock". Created with PmemService:UnixSocketMode.</summary>
    public string SocketPath { get; set; } = string.Empty;

    /// <summary>How long a grant from OpenDirect can be presented (milliseconds).</summary>
    public int GrantTtlMilliseconds { get; set; } = 10_000;

    /// <summary>After a revocation message, how long the server waits for the client to close before it closes the connection (milliseconds).</summary>
    public int RevokeGraceMilliseconds { get; set; } = 2_000;

    /// <summary>How long a side-channel client may take to present its grant (milliseconds).</summary>
    public int HandshakeTimeoutMilliseconds { get; set; } = 5_000;

    /// <summary>Resolves the side-channel path from the gRPC socket path; null when there is none.</summary>
    public string? ResolveSocketPath(string? grpcSocket)
    {
        if (!string.IsNullOrWhiteSpace(SocketPath))
        {
            return Path.GetFullPath(SocketPath);
        }

        if (grpcSocket is null)
        {
            return null;
        }

        return Path.Combine(Path.GetDirectoryName(grpcSocket)!, Path.GetFileNameWithoutExtension(grpcSocket) + "-direct.sock");
    }
}
