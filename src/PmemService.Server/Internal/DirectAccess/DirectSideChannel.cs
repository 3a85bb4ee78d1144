using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.DirectAccess;

/// <summary>
/// The direct access lane (issue 11, docs/direct-access.md): OpenDirect issues a grant bound to the
/// calling process (SO_PEERCRED of the gRPC connection); the client presents it on this Unix socket
/// (its own listener next to the gRPC socket, same file mode), the server checks the peer's
/// SO_PEERCRED against the grant, opens the region file through the pool descriptor (O_NOFOLLOW,
/// O_RDONLY or O_RDWR as granted), checks it is the inode the service maps, and sends the descriptor
/// with SCM_RIGHTS. The lease lives as long as the connection. Forced delete and shutdown revoke:
/// <c>[R]</c> is sent and the connection is closed after <see cref="DirectAccessOptions.RevokeGraceMilliseconds"/>.
/// </summary>
internal sealed class DirectSideChannel : IHostedService, IDisposable
{
    private readonly RegionManager _regions;
    private readonly DirectAccessOptions _options;
    private readonly PmemServiceOptions _service;
    private readonly ILogger<DirectSideChannel> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Task, byte> _connections = new();
    private Socket? _listener;
    private Task? _acceptLoop;

    public DirectSideChannel(RegionManager regions, IOptions<DirectAccessOptions> options, IOptions<PmemServiceOptions> service, ILogger<DirectSideChannel> logger)
    {
        _regions = regions;
        _options = options.Value;
        _service = service.Value;
        _logger = logger;
        SocketPath = _options.Enabled ? _options.ResolveSocketPath(_service.FullUnixSocketPath) : null;
    }

    /// <summary>The side-channel socket path, or null when the lane is off (no Unix socket, or disabled).</summary>
    public string? SocketPath { get; }

    private DirectLeaseRegistry Registry => _regions.DirectLeases;

    // ---- OpenDirect (gRPC) -----------------------------------------------------------------------

    /// <summary>OpenDirect: checks the region is mapped at a granularity the client accepts, issues a grant bound to <paramref name="peer"/>.</summary>
    public OpenDirectResponse Open(OpenDirectRequest request, PeerCredentials? peer, bool overTcp, RegionCaller? regionCaller = null)
    {
        RegionName.Validate(request.Name);
        var access = DirectLeaseRegistry.FromProto(request.Access);
        var required = GranularityConvert.ToPmem2(request.RequiredGranularity, "required_granularity");
        if (SocketPath is null || _listener is null)
        {
            throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.DirectAccessUnavailable,
                "The direct access lane is off (PmemService:DirectAccess:Enabled, or no Unix socket).");
        }

        if (overTcp)
        {
            throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.UnixSocketRequired,
                "OpenDirect is served only on the Unix domain socket: a descriptor can only reach a process on this node.");
        }

        if (peer is not { } caller)
        {
            throw new PmemServiceException(StatusCode.PermissionDenied, PmemErrorReasons.DirectAccessUnavailable,
                "The caller's process credentials (SO_PEERCRED) could not be read from the connection.");
        }

        // Same identities and access lists as the gRPC calls: read-only needs read, read-write needs write.
        using var lease = regionCaller is null
            ? _regions.Acquire(request.Name)
            : _regions.Acquire(request.Name, regionCaller, access == DirectAccessMode.ReadWrite ? AccessRights.Write : AccessRights.Read, "OpenDirect");
        var mapping = lease.Mapping;
        if (mapping.Effective > required)
        {
            throw RegionLifecycle.GranularityError(request.Name, mapping.Effective, required, "the service's mapping");
        }

        var grant = Registry.Issue(request.Name, access, caller, TimeSpan.FromMilliseconds(_options.GrantTtlMilliseconds));
        PmemLog.DirectGrantIssued(_logger, request.Name, access.ToString(), caller.Pid, caller.Uid);
        return new OpenDirectResponse
        {
            Grant = grant.Token,
            SideChannelPath = SocketPath,
            Size = mapping.Size,
            EffectiveGranularity = GranularityConvert.ToProto(mapping.Effective),
            MapSync = mapping.MapSync,
            GrantTtlMs = (uint)_options.GrantTtlMilliseconds,
        };
    }

    // ---- Side channel ----------------------------------------------------------------------------

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (SocketPath is null)
        {
            return Task.CompletedTask;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
        RemoveStale(SocketPath);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
            if (!OperatingSystem.IsWindows() && PmemServiceOptions.TryParseMode(_service.UnixSocketMode, out var mode))
            {
                File.SetUnixFileMode(SocketPath, mode);
            }

            listener.Listen(64);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        _acceptLoop = Task.Run(AcceptLoopAsync, CancellationToken.None);
        PmemLog.DirectSideChannelListening(_logger, SocketPath);
        return Task.CompletedTask;
    }

    /// <summary>Revokes every lease (shutdown), waits at most the grace for clients to close, closes the rest.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listener is null)
        {
            return;
        }

        var revoked = Registry.RevokeAll();
        if (revoked > 0)
        {
            PmemLog.DirectLeasesRevoked(_logger, "*", revoked, "shutdown");
        }

        _listener.Dispose();
        try
        {
            await Task.WhenAll(_connections.Keys.ToArray()).WaitAsync(TimeSpan.FromMilliseconds(_options.RevokeGraceMilliseconds + 1000), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_acceptLoop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        try
        {
            File.Delete(SocketPath!);
        }
        catch (IOException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        var listener = _listener!;
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException or SocketException)
            {
                return;
            }

            var task = Task.Run(() => ServeAsync(client));
            _connections.TryAdd(task, 0);
            _ = task.ContinueWith(t => _connections.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        DirectLease? lease = null;
        try
        {
            var peer = PeerCredentials.FromSocket(client);
            var grant = await ReadGrantAsync(client).ConfigureAwait(false);
            if (grant is null)
            {
                await RefuseAsync(client, DirectProtocol.BadRequest, "expected \"PMD1\", a grant length and the grant").ConfigureAwait(false);
                return;
            }

            var found = Registry.Take(grant);
            if (found is null)
            {
                PmemLog.DirectGrantRefused(_logger, "unknown or already used grant", peer?.Pid ?? 0, peer?.Uid ?? 0);
                await RefuseAsync(client, DirectProtocol.GrantUnknown, "unknown or already used grant").ConfigureAwait(false);
                return;
            }

            if (found.ExpiresAt < Environment.TickCount64)
            {
                PmemLog.DirectGrantRefused(_logger, "expired grant", peer?.Pid ?? 0, peer?.Uid ?? 0);
                await RefuseAsync(client, DirectProtocol.GrantExpired, "the grant expired").ConfigureAwait(false);
                return;
            }

            if (peer is not { } p || p.Pid != found.Peer.Pid || p.Uid != found.Peer.Uid)
            {
                PmemLog.DirectGrantRefused(_logger, $"grant of pid {found.Peer.Pid} uid {found.Peer.Uid} presented by another process", peer?.Pid ?? 0, peer?.Uid ?? 0);
                await RefuseAsync(client, DirectProtocol.PeerMismatch, "the grant belongs to another process").ConfigureAwait(false);
                return;
            }

            // Registered before the file is checked and opened, under the region's monitor together with
            // the Mapped check (AcquireForDirectLease): a delete without force from here on is refused, a
            // forced one revokes this lease; a delete that got there first makes this a refusal.
            lease = new DirectLease(found.Region, found.Access, p);
            var writable = found.Access == DirectAccessMode.ReadWrite;
            string? refusal = null;
            Microsoft.Win32.SafeHandles.SafeFileHandle? file = null;
            ulong regionSize = 0;
            try
            {
                using var call = _regions.AcquireForDirectLease(found.Region, lease); // Mapped, not being deleted, registered
                regionSize = call.Size;
                var (handle, status) = _regions.OpenForDirect(found.Region, writable);
                file = handle;
                if (!status.IsSameFile(call.Mapping.Identity) || (ulong)status.Size < call.Size)
                {
                    refusal = "the region file changed";
                }
            }
            catch (Exception e) when (e is PmemServiceException or Pmem2Exception or IOException)
            {
                refusal = e.Message;
            }

            if (refusal is not null || lease.IsRevoked)
            {
                file?.Dispose();
                PmemLog.DirectGrantRefused(_logger, refusal ?? "revoked", p.Pid, p.Uid);
                await RefuseAsync(client, DirectProtocol.RegionUnavailable, refusal ?? "the lease was revoked").ConfigureAwait(false);
                return;
            }

            using (file)
            {
                Pmem2DescriptorPassing.Send(client, [DirectProtocol.Ok], file!, TimeSpan.FromMilliseconds(_options.HandshakeTimeoutMilliseconds));
            }

            PmemLog.DirectLeaseOpened(_logger, found.Region, found.Access.ToString(), p.Pid, p.Uid);
            await HoldAsync(client, lease, writable ? regionSize : 0).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away: the lease (if any) ends below.
        }
        catch (Exception e)
        {
            PmemLog.DirectConnectionFailed(_logger, e);
        }
        finally
        {
            if (lease is not null)
            {
                Registry.Remove(lease);
                PmemLog.DirectLeaseEnded(_logger, lease.Region, lease.Peer.Pid, lease.IsRevoked);
            }
        }
    }

    /// <summary>
    /// Waits for the client to close (end of the lease) or for a revocation; after one, sends [R] and waits at most the grace.
    /// Meanwhile a read-write lease's client reports the ranges it persisted (<see cref="DirectProtocol.PersistReport"/>
    /// records, issue 14): each in-bounds one becomes a WatchRegion event of kind DIRECT_PERSIST.
    /// </summary>
    private async Task HoldAsync(Socket client, DirectLease lease, ulong writableSize)
    {
        var buffer = new byte[64 * DirectProtocol.PersistReportLength];
        var pending = 0; // bytes of an incomplete record at the start of buffer
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(lease.RevokedToken, _stopping.Token);
        try
        {
            while (true)
            {
                var n = await client.ReceiveAsync(buffer.AsMemory(pending), SocketFlags.None, linked.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return; // closed by the client (or its exit / SIGKILL)
                }

                pending = ReportPersists(lease, writableSize, buffer, pending + n);
            }
        }
        catch (OperationCanceledException) when (lease.IsRevoked || _stopping.IsCancellationRequested)
        {
        }

        try
        {
            await client.SendAsync(new[] { DirectProtocol.Revoked }, SocketFlags.None).ConfigureAwait(false);
            using var grace = new CancellationTokenSource(TimeSpan.FromMilliseconds(_options.RevokeGraceMilliseconds));
            while (await client.ReceiveAsync(buffer, SocketFlags.None, grace.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (OperationCanceledException)
        {
            PmemLog.DirectRevokeGraceExpired(_logger, lease.Region, lease.Peer.Pid);
        }
    }

    /// <summary>Publishes the complete persist reports in buffer[..count]; returns the bytes of an incomplete one, moved to the start.</summary>
    private int ReportPersists(DirectLease lease, ulong writableSize, byte[] buffer, int count)
    {
        var at = 0;
        for (; count - at >= DirectProtocol.PersistReportLength; at += DirectProtocol.PersistReportLength)
        {
            var record = buffer.AsSpan(at, DirectProtocol.PersistReportLength);
            var offset = BinaryPrimitives.ReadUInt64LittleEndian(record[1..]);
            var length = BinaryPrimitives.ReadUInt64LittleEndian(record[9..]);
            if (record[0] == DirectProtocol.PersistReport && length > 0 && offset < writableSize && length <= writableSize - offset && !lease.IsRevoked)
            {
                PmemLog.DirectPersistReported(_logger, lease.Region, offset, length);
                _regions.Watches.Publish(lease.Region, WatchEventKind.DirectPersist, offset, length, FlushType.Persistent);
            }
        }

        var rest = count - at;
        buffer.AsSpan(at, rest).CopyTo(buffer);
        return rest;
    }

    private async Task<string?> ReadGrantAsync(Socket client)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        timeout.CancelAfter(_options.HandshakeTimeoutMilliseconds);
        var header = new byte[5];
        if (!await ReadExactlyAsync(client, header, timeout.Token).ConfigureAwait(false) || !header.AsSpan(0, 4).SequenceEqual(DirectProtocol.Magic))
        {
            return null;
        }

        var length = header[4];
        if (length is 0 or > DirectProtocol.MaxGrantLength)
        {
            return null;
        }

        var token = new byte[length];
        if (!await ReadExactlyAsync(client, token, timeout.Token).ConfigureAwait(false))
        {
            return null;
        }

        return Encoding.ASCII.GetString(token);
    }

    private static async Task<bool> ReadExactlyAsync(Socket client, byte[] buffer, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await client.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return false;
            }

            read += n;
        }

        return true;
    }

    private static async Task RefuseAsync(Socket client, byte code, string message)
    {
        var text = Encoding.UTF8.GetBytes(message.Length > 1000 ? message[..1000] : message);
        var reply = new byte[3 + text.Length];
        reply[0] = code;
        BinaryPrimitives.WriteUInt16LittleEndian(reply.AsSpan(1), (ushort)text.Length);
        text.CopyTo(reply, 3);
        await client.SendAsync(reply, SocketFlags.None).ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Both);
    }

    private void RemoveStale(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new InvalidOperationException($"Another process is listening on the direct-access socket '{path}' (PmemService:DirectAccess:SocketPath).");
            }
            catch (SocketException)
            {
            }
        }

        File.Delete(path);
    }

    public void Dispose()
    {
        _listener?.Dispose();
        _stopping.Dispose();
    }
}
