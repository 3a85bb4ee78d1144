using System.Buffers.Binary;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;

namespace PmemService.Server.Internal;

/// <summary>
/// The credentials of the process at the other end of a connected Unix domain socket, as the kernel
/// recorded them at connect time (<c>SO_PEERCRED</c>: <c>struct ucred { pid_t pid; uid_t uid; gid_t gid; }</c>).
/// Read with <see cref="Socket.GetRawSocketOption"/>, so no interop is needed.
/// </summary>
internal readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    /// <summary>SO_PEERCRED of <paramref name="socket"/>; null when it is not a connected Unix socket.</summary>
    public static PeerCredentials? FromSocket(Socket? socket)
    {
        if (socket is null || socket.AddressFamily != AddressFamily.Unix || !OperatingSystem.IsLinux())
        {
            return null;
        }

        Span<byte> ucred = stackalloc byte[12];
        try
        {
            if (socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred) != 12)
            {
                return null;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return null;
        }

        var pid = BinaryPrimitives.ReadInt32LittleEndian(ucred);
        return pid <= 0 ? null : new PeerCredentials(pid, BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]), BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]));
    }

    /// <summary>SO_PEERCRED of the Kestrel connection carrying <paramref name="context"/> (Unix socket transport only).</summary>
    public static PeerCredentials? FromHttpContext(HttpContext context) =>
        FromSocket(context.Features.Get<IConnectionSocketFeature>()?.Socket);

    /// <inheritdoc />
    public override string ToString() => $"pid {Pid}, uid {Uid}, gid {Gid}";
}
