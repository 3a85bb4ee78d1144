using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Pmem2;
using PmemService.Client.Internal;
using PmemService.Contracts.V1;

namespace PmemService.Client;

public sealed partial class PmemClient
{
    /// <summary>
    /// Opens the direct access lane to a region the service has mapped (MapRegion first): the
    /// service grants this process a lease, hands over the region file's descriptor on its side
    /// channel, and the returned <see cref="DirectRegion"/> maps it with Pmem2 at the same
    /// granularity as the service's own mapping. Only over the Unix socket. The lease lasts until
    /// the region is disposed (or this process exits), or until the service revokes it.
    /// </summary>
    /// <param name="name">Region name.</param>
    /// <param name="access">Read-only or read-write.</param>
    /// <param name="requiredGranularity">Coarsest store granularity tolerated (unspecified = page).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="PmemException">The service refused (not mapped, granularity, TCP, shutting down) or the side channel refused the grant.</exception>
    public async Task<DirectRegion> OpenDirectAsync(
        string name,
        DirectAccess access = DirectAccess.ReadWrite,
        Granularity requiredGranularity = Granularity.Unspecified,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var response = await UnaryAsync(_client.OpenDirectAsync,
            new OpenDirectRequest { Name = name, Access = access, RequiredGranularity = requiredGranularity }, cancellationToken).ConfigureAwait(false);
        return await DirectRegion.ConnectAsync(name, access, response, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>A callback given a view of a direct mapping that lives only for the call.</summary>
public delegate void DirectSpanAction(Span<byte> span);

/// <summary>State of a direct lease.</summary>
public enum DirectLeaseState
{
    /// <summary>The lease is held: the service keeps the region (no delete without force).</summary>
    Active,
    /// <summary>The service revoked it (forced delete, shutdown) or closed the side channel: stop using the mapping.</summary>
    Revoked,
    /// <summary>Disposed by this process.</summary>
    Closed,
}

/// <summary>
/// A region mapped directly into this process through the direct access lane. Writes go straight to
/// the mapping; <b>this process persists them</b> (<see cref="Persist"/>, or the Memcpy/Memset/atomic
/// calls without NoFlush): nothing here is durable until its persist returned. The service sees the
/// same file (ReadRegion reads what was stored here, persisted or not). Dispose unmaps, then ends the lease.
/// </summary>
public sealed class DirectRegion : IDisposable
{
    private readonly Socket _channel;
    private readonly Pmem2Map _map;
    private readonly Pmem2Source _source;
    private readonly CancellationTokenSource _revoked = new();
    private readonly Task _watch;
    private readonly PersistReportSender _reports;
    private readonly PendingPersistRanges _pending = new(); // NoDrain copies awaiting the next Drain
    private int _state; // DirectLeaseState

    private DirectRegion(string name, DirectAccess access, Socket channel, Pmem2Source source, Pmem2Map map, bool serverMapSync)
    {
        Name = name;
        Access = access;
        _channel = channel;
        _source = source;
        _map = map;
        ServerMapSync = serverMapSync;
        _reports = new PersistReportSender(channel);
        _watch = Task.Run(WatchAsync);
    }

    /// <summary>Region name.</summary>
    public string Name { get; }

    /// <summary>Access granted.</summary>
    public DirectAccess Access { get; }

    /// <summary>Mapped size in bytes.</summary>
    public long Size => (long)_map.Size;

    /// <summary>Effective store granularity (the same as the service's mapping).</summary>
    public Pmem2Granularity Granularity => _map.StoreGranularity;

    /// <summary>Whether this mapping uses MAP_SYNC.</summary>
    public bool IsMapSync => _map.IsMapSync;

    /// <summary>Whether the service's mapping uses MAP_SYNC.</summary>
    public bool ServerMapSync { get; }

    /// <summary>The lease's state.</summary>
    public DirectLeaseState State => (DirectLeaseState)Volatile.Read(ref _state);

    /// <summary>Cancelled when the service revokes the lease (forced delete, shutdown) or the side channel closes.</summary>
    public CancellationToken Revoked => _revoked.Token;

    /// <summary>Raised once when the lease is revoked (on a thread-pool thread).</summary>
    public event EventHandler? LeaseRevoked;

    internal static async Task<DirectRegion> ConnectAsync(string name, DirectAccess access, OpenDirectResponse grant, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Pmem2Source? source = null;
        Pmem2Map? map = null;
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(grant.SideChannelPath), cancellationToken).ConfigureAwait(false);
            var token = Encoding.ASCII.GetBytes(grant.Grant);
            var hello = new byte[5 + token.Length];
            "PMD1"u8.CopyTo(hello);
            hello[4] = checked((byte)token.Length);
            token.CopyTo(hello, 5);
            await socket.SendAsync(hello, SocketFlags.None, cancellationToken).ConfigureAwait(false);

            var reply = new byte[1024 + 3];
            var count = Pmem2DescriptorPassing.Receive(socket, reply, TimeSpan.FromSeconds(10), out var fd);
            if (count == 0 || reply[0] != 0 || fd is null)
            {
                fd?.Dispose();
                var message = count >= 3 ? Encoding.UTF8.GetString(reply, 3, Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(1)), count - 3)) : "the side channel closed";
                throw new PmemException(PmemErrorKind.PermissionDenied, "DIRECT_GRANT_REFUSED", $"Direct access to '{name}' refused: {message}.");
            }

            source = Pmem2Source.FromHandle(fd);
            var config = new Pmem2Config
            {
                RequiredStoreGranularity = Pmem2Granularity.Page,
                Length = grant.Size,
                Protection = access == DirectAccess.ReadOnly ? Pmem2Protection.Read : Pmem2Protection.Read | Pmem2Protection.Write,
            };
            map = Pmem2Map.Create(config, source);
            var expected = ToPmem2(grant.EffectiveGranularity);
            if (map.StoreGranularity != expected)
            {
                throw new PmemException(PmemErrorKind.FailedPrecondition, "GRANULARITY_MISMATCH",
                    $"Direct mapping of '{name}' has {map.StoreGranularity} granularity but the service's mapping has {expected}: persisting one way would not make the other's stores durable.");
            }

            return new DirectRegion(name, access, socket, source, map, grant.MapSync);
        }
        catch
        {
            map?.Dispose();
            source?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Calls <paramref name="action"/> with a view of [offset, offset+length) of the mapping, valid only
    /// during the call (the span cannot escape it). Stores through the span are not persistent until
    /// <see cref="Persist"/> covers them. A read-only lease's span must not be written (the page is
    /// mapped read-only: a store would fault).
    /// </summary>
    public void WithSpan(long offset, int length, DirectSpanAction action)
    {
        ArgumentNullException.ThrowIfNull(action);
        ObjectDisposedException.ThrowIf(State == DirectLeaseState.Closed, this);
        action(_map.GetSpan(checked((ulong)offset), length));
    }

    /// <summary>Copies bytes into the mapping (pmem2_memcpy with <paramref name="flags"/>: persisted before it returns unless NoFlush
    /// or NoDrain is given). Reported to the service's watchers once persistent: at once, or with NoDrain (at CACHE_LINE/BYTE,
    /// where the stores are not durable before the fence) at the next <see cref="Drain"/>; NoFlush ranges are never reported.</summary>
    public void Memcpy(long offset, ReadOnlySpan<byte> source, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        _map.Memcpy(checked((ulong)offset), source, flags);
        ReportAfterCopy(offset, source.Length, flags);
    }

    /// <summary>Fills bytes (pmem2_memset with <paramref name="flags"/>; reported to watchers when persisted).</summary>
    public void Memset(long offset, byte value, long length, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        _map.Memset(checked((ulong)offset), value, checked((ulong)length), flags);
        ReportAfterCopy(offset, length, flags);
    }

    /// <summary>Copies bytes out of the mapping.</summary>
    public void Read(long offset, Span<byte> destination) => _map.Read(checked((ulong)offset), destination);

    /// <summary>Persists a range (cache-line flush + drain, or msync at PAGE). A failure is sticky. Once persisted, the range is
    /// reported to the service on the side channel, and its WatchRegion watchers see it (kind DIRECT_PERSIST).</summary>
    public void Persist(long offset, long length)
    {
        _map.Persist(checked((ulong)offset), checked((ulong)length));
        ReportPersisted(offset, length);
    }

    /// <summary>Flushes a range without draining.</summary>
    public void Flush(long offset, long length) => _map.Flush(checked((ulong)offset), checked((ulong)length));

    /// <summary>Waits for flushes to complete; then reports the ranges copied with NoDrain since the last drain to the service's watchers.
    /// As with pmem2_drain (a fence of the calling CPU's stores), call it on the thread that made the copies.</summary>
    public void Drain()
    {
        _map.Drain();
        ReportPending();
    }

    /// <summary>
    /// Maps the pages of a range into this process ahead of use (<see cref="Pmem2Map.Populate"/>:
    /// <c>MADV_POPULATE_WRITE</c>, or <c>_READ</c> on a read-only lease), so a bulk copy that follows does not
    /// take a page fault per 4 KiB page. Changes no byte. Returns false on kernels before Linux 5.14 (no
    /// populate: pages fault in on first touch, as without this call). Worth it for a lease that writes a
    /// large range more than once or needs a predictable first copy; it costs the fault time up front.
    /// </summary>
    public bool Prefault(long offset, long length) => _map.Populate(checked((ulong)offset), checked((ulong)length));

    /// <summary>Prefaults the whole region (<see cref="Prefault(long, long)"/>).</summary>
    public bool Prefault() => _map.Populate(0, _map.Size);

    /// <summary>Atomic 8-byte store at an aligned offset, then persist of those 8 bytes.</summary>
    public void AtomicStore64(long offset, long value)
    {
        _map.AtomicStore64(checked((ulong)offset), value);
        ReportPersisted(offset, sizeof(long));
    }

    /// <summary>Atomic 8-byte load at an aligned offset.</summary>
    public long AtomicLoad64(long offset) => _map.AtomicLoad64(checked((ulong)offset));

    /// <summary>Atomic 8-byte compare-and-swap at an aligned offset, then persist; returns the value found.</summary>
    public long CompareExchange64(long offset, long value, long comparand)
    {
        var found = _map.CompareExchange64(checked((ulong)offset), value, comparand);
        ReportPersisted(offset, sizeof(long));
        return found;
    }

    /// <summary>Atomic 8-byte fetch-and-add at an aligned offset, then persist; returns the value before the add.</summary>
    public long FetchAdd64(long offset, long delta)
    {
        var previous = _map.FetchAdd64(checked((ulong)offset), delta);
        ReportPersisted(offset, sizeof(long));
        return previous;
    }

    /// <summary>
    /// After a Memcpy/Memset: report now when the range is persistent; hold it until the next drain when
    /// only its fence is missing (NoDrain at CACHE_LINE/BYTE: non-temporal stores may still sit in
    /// write-combining buffers, and flushed lines are durable only after the sfence; at PAGE the flush is the
    /// msync and drain is a no-op, so the range is persistent already). Adjacent ranges merge (a bulk copy in
    /// pieces is one record); at <see cref="PendingPersistRanges.Capacity"/> separate ranges this process drains itself
    /// (one sfence) and reports them, so the list stays bounded.
    /// </summary>
    private void ReportAfterCopy(long offset, long length, Pmem2MemFlags flags)
    {
        if ((flags & Pmem2MemFlags.NoFlush) != 0 || length <= 0 || Access != DirectAccess.ReadWrite)
        {
            return;
        }

        if ((flags & Pmem2MemFlags.NoDrain) == 0 || _map.StoreGranularity == Pmem2Granularity.Page)
        {
            ReportPersisted(offset, length);
            return;
        }

        if (_pending.Add(offset, length))
        {
            _map.Drain();
            ReportPending();
        }
    }

    private void ReportPending()
    {
        foreach (var (offset, length) in _pending.TakeAll())
        {
            ReportPersisted(offset, length);
        }
    }

    /// <summary>
    /// Tells the service (side channel record <c>[P][u64 offset][u64 length]</c>) that this process persisted a range, so
    /// WatchRegion watchers see it. Queued (<see cref="PersistReportSender"/>); best effort: a revoked or closed lease reports nothing.
    /// </summary>
    private void ReportPersisted(long offset, long length)
    {
        if (Access != DirectAccess.ReadWrite || length <= 0 || State != DirectLeaseState.Active)
        {
            return;
        }

        _reports.Report(offset, length);
    }

    private async Task WatchAsync()
    {
        var buffer = new byte[16];
        try
        {
            while (true)
            {
                var n = await _channel.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (n == 0 || Array.IndexOf(buffer, (byte)'R', 0, n) >= 0)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }

        if (Interlocked.CompareExchange(ref _state, (int)DirectLeaseState.Revoked, (int)DirectLeaseState.Active) == (int)DirectLeaseState.Active)
        {
            try
            {
                _revoked.Cancel();
                LeaseRevoked?.Invoke(this, EventArgs.Empty);
            }
            catch (Exception e) when (e is AggregateException or ObjectDisposedException)
            {
                // A callback failed, or Dispose raced with the revocation.
            }
        }
    }

    /// <summary>Unmaps, then closes the side channel (which ends the lease).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _state, (int)DirectLeaseState.Closed) == (int)DirectLeaseState.Closed)
        {
            return;
        }

        _map.Dispose();
        _source.Dispose();
        _reports.Complete(TimeSpan.FromSeconds(1)); // queued persist reports go out before the channel closes
        try
        {
            _channel.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        _channel.Dispose();
        Debug.Assert(_watch is not null);
        _revoked.Dispose();
    }

    private static Pmem2Granularity ToPmem2(Granularity granularity) => granularity switch
    {
        Contracts.V1.Granularity.Byte => Pmem2Granularity.Byte,
        Contracts.V1.Granularity.CacheLine => Pmem2Granularity.CacheLine,
        _ => Pmem2Granularity.Page,
    };
}
