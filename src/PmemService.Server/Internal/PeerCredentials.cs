using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using System.Runtime.InteropServices;
using System.Security.Claims;

namespace PmemService.Server.Internal;

/// <summary>
/// The credentials of the process at the other end of a connected Unix domain socket, as the kernel
/// recorded them at connect(2) (<c>SO_PEERCRED</c>, <c>struct ucred { pid_t pid; uid_t uid; gid_t gid; }</c>).
/// Read with <see cref="Socket.GetRawSocketOption"/>, so no interop of our own; they cannot be forged by
/// the peer (the kernel fills them in), and they stay those of the connecting process even when it
/// passes the descriptor on. Reusable by every listener that owns a Unix socket (the gRPC endpoint,
/// the direct-access lane).
/// </summary>
internal readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid)
{
    /// <summary>Authentication type of the <see cref="ClaimsIdentity"/> built from these credentials.</summary>
    public const string AuthenticationType = "unix-peercred";

    private const int SolSocket = 1;   // SOL_SOCKET (Linux)
    private const int SoPeerCred = 17; // SO_PEERCRED (Linux, x86-64)
    private const int UcredSize = 12;  // sizeof(struct ucred)

    /// <summary>Reads SO_PEERCRED of a connected AF_UNIX stream socket; false (with the reason) when the kernel does not answer.</summary>
    public static bool TryRead(Socket socket, out PeerCredentials credentials, out string? error)
    {
        ArgumentNullException.ThrowIfNull(socket);
        credentials = default;
        error = null;
        if (socket.AddressFamily != AddressFamily.Unix)
        {
            error = "not a Unix domain socket";
            return false;
        }

        Span<byte> ucred = stackalloc byte[UcredSize];
        try
        {
            var length = socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
            if (length != UcredSize)
            {
                error = $"SO_PEERCRED returned {length} bytes";
                return false;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            error = e.Message;
            return false;
        }

        credentials = new PeerCredentials(
            MemoryMarshal.Read<int>(ucred),
            MemoryMarshal.Read<uint>(ucred[4..]),
            MemoryMarshal.Read<uint>(ucred[8..]));
        return true;
    }

    /// <summary>SO_PEERCRED of <paramref name="socket"/>; null when it is not a connected Unix socket or names no process.</summary>
    public static PeerCredentials? FromSocket(Socket? socket) =>
        socket is not null && TryRead(socket, out var credentials, out _) && credentials.Pid > 0 ? credentials : null;

    /// <summary>SO_PEERCRED of the Kestrel connection carrying <paramref name="context"/> (Unix socket transport only).</summary>
    public static PeerCredentials? FromHttpContext(HttpContext context) =>
        context.Features.Get<PeerCredentialsFeature>()?.Credentials is { Pid: > 0 } known
            ? known
            : FromSocket(context.Features.Get<IConnectionSocketFeature>()?.Socket);

    /// <inheritdoc />
    public override string ToString() => $"pid {Pid}, uid {Uid}, gid {Gid}";

    /// <summary>A principal with the claims of <see cref="PmemClaimTypes"/> (name "uid:N").</summary>
    public ClaimsPrincipal ToPrincipal()
    {
        var uid = Uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.Name, "uid:" + uid),
                new Claim(PmemClaimTypes.Uid, uid, ClaimValueTypes.UInteger32),
                new Claim(PmemClaimTypes.Gid, Gid.ToString(System.Globalization.CultureInfo.InvariantCulture), ClaimValueTypes.UInteger32),
                new Claim(PmemClaimTypes.Pid, Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), ClaimValueTypes.Integer32),
            ],
            AuthenticationType);
        return new ClaimsPrincipal(identity);
    }
}

/// <summary>Connection feature holding the peer credentials read once when a Unix socket connection is accepted.</summary>
internal sealed class PeerCredentialsFeature
{
    public PeerCredentialsFeature(PeerCredentials credentials)
    {
        Credentials = credentials;
        Principal = credentials.ToPrincipal();
    }

    public PeerCredentials Credentials { get; }

    /// <summary>The principal set as HttpContext.User on every request of the connection.</summary>
    public ClaimsPrincipal Principal { get; }

    /// <summary>The region identity of the connection's peer, built once (<see cref="RegionCaller.From"/>).</summary>
    internal RegionCaller? RegionCaller { get; set; }
}
