using System.Runtime.CompilerServices;
using Pmem2.Internal;
using Pmem2.Internal.Flush;
using Pmem2.Internal.Mem;

namespace Pmem2;

/// <summary>
/// A mapping (struct pmem2_map). Disposing unmaps exactly once; every access through this type is
/// bounds-checked and holds a reference on <see cref="Handle"/>, so none can outlive the unmap:
/// a concurrent <see cref="Dispose"/> defers the munmap until in-flight calls have returned, and
/// later calls throw <see cref="ObjectDisposedException"/>.
/// <para>
/// The persistence functions are those libpmem2 picks for the effective granularity
/// (reference §4): PAGE = msync(MS_SYNC) of the page-aligned range; CACHE_LINE = CLWB / CLFLUSHOPT /
/// CLFLUSH of every 64-byte line then sfence; BYTE = sfence only.
/// </para>
/// </summary>
public sealed unsafe partial class Pmem2Map : IDisposable
{
    private readonly Pmem2MappingHandle _handle;
    private readonly byte* _address;
    private readonly nuint _size;
    private readonly Pmem2Granularity _granularity;
    private readonly Pmem2SourceType _sourceType;
    private readonly ulong _deviceNumber;
    private readonly MemFlusher _flusher;
    private readonly bool _readable;
    private readonly bool _writable;
    private int _disposed;

    private Pmem2Map(Pmem2MappingHandle handle, Mapper.Mapping mapping, Pmem2Source source, Pmem2Protection protection)
    {
        // On x86-64 any of PROT_READ / PROT_WRITE / PROT_EXEC makes a page readable; only PROT_WRITE
        // makes it writable. A store to a read-only page, or a load or cache-line flush of a PROT_NONE
        // page, is a SIGSEGV that .NET cannot survive, so such calls are refused up front.
        _readable = protection != Pmem2Protection.None;
        _writable = (protection & Pmem2Protection.Write) != 0;
        _handle = handle;
        _address = (byte*)mapping.Address;
        _size = mapping.ContentLength;
        _granularity = mapping.Granularity;
        IsMapSync = mapping.MapSync;
        _sourceType = source.Type;
        _deviceNumber = source.DeviceNumber;

        // The flush the copy engines use for their temporal stores (libpmem2's Info.flush): the CPU
        // routine on every granularity (BYTE copies ignore it, eADR needs no flush). Where CPU flushing
        // is unavailable, PAGE copies skip it, since the msync that follows them writes back the range.
        // The engines' flush is uncounted (Pmem2Diagnostics counts flush_fn calls, not the per-block
        // flushes inside a copy).
        delegate*<byte*, nuint, void> flush = FusedCopy.EngineFlush; // &CpuFlush.FlushLines
        if (_granularity == Pmem2Granularity.Page && CpuFlush.Instruction == Pmem2FlushInstruction.Msync)
        {
            flush = &CpuFlush.FlushNone;
        }

        _flusher = new MemFlusher(flush, CpuFlush.FenceAfterNonTemporal);
        Pmem2EventSource.Log.MapCreated((long)mapping.Address, (long)_size, _granularity.ToString(), IsMapSync);
        if (CpuFlush.FallbackReason is { } reason)
        {
            Pmem2EventSource.Log.FlushFallback(reason);
        }
    }

    /// <summary>pmem2_map_new: maps <paramref name="source"/> as described by <paramref name="config"/>.
    /// The config and source may be reused or disposed afterwards (an owned source's descriptor may be
    /// closed: the mapping stays valid).</summary>
    public static Pmem2Map Create(Pmem2Config config, Pmem2Source source)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(source);
        PlatformGuard.EnsureSupported();

        // A snapshot, so a config changed by another thread meanwhile cannot mix two settings.
        config = config.Clone();
        var rsv = config.VmReservation;
        if (rsv is null)
        {
            return CreateUnlocked(config, source, null);
        }

        // The reservation stays locked from the "is the region free" check until the map is recorded
        // in it, so two concurrent maps cannot both claim (and MAP_FIXED over) the same range.
        lock (rsv.SyncRoot)
        {
            return CreateUnlocked(config, source, rsv);
        }
    }

    /// <summary>
    /// pmem2_map_from_existing: wraps a mapping the caller made (and keeps owning: disposing the map
    /// only unregisters it). The granularity is trusted, as in libpmem2; the range is registered
    /// process-wide and MAP_EXISTS is thrown when it overlaps a registered map.
    /// </summary>
    public static Pmem2Map FromExisting(Pmem2Source source, nint address, ulong length, Pmem2Granularity granularity)
    {
        ArgumentNullException.ThrowIfNull(source);
        PlatformGuard.EnsureSupported();
        source.ThrowIfDisposed();
        if (granularity is not (Pmem2Granularity.Byte or Pmem2Granularity.CacheLine or Pmem2Granularity.Page))
        {
            Errors.Throw(Pmem2ErrorCode.GranularityNotSupported, $"unknown granularity value {(int)granularity}");
        }

        if (address == 0 || length == 0 || length > (ulong)nint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(length), "the existing mapping must have a non-null address and a positive length");
        }

        var mapping = new Mapper.Mapping(address, (nuint)length, 0, false, granularity);
        var handle = new Pmem2MappingHandle();
        try
        {
            handle.Attach(address, (nuint)length, 0, reservation: null, ownsMapping: false);
        }
        catch
        {
            handle.SetHandleAsInvalid();
            throw;
        }

        return new Pmem2Map(handle, mapping, source, Pmem2Protection.Read | Pmem2Protection.Write);
    }

    private static Pmem2Map CreateUnlocked(Pmem2Config config, Pmem2Source source, Pmem2VmReservation? rsv)
    {
        var mapping = Mapper.Map(config, source);
        var handle = new Pmem2MappingHandle();
        try
        {
            handle.Attach(mapping.Address, mapping.ContentLength, mapping.ReservedLength, rsv);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        var map = new Pmem2Map(handle, mapping, source, config.Protection);
        rsv?.AddLocked(config.VmReservationOffset, map);
        return map;
    }

    /// <summary>pmem2_map_get_address.</summary>
    public nint Address => (nint)_address;

    /// <summary>pmem2_map_get_size: the content length (not page-rounded).</summary>
    public ulong Size => _size;

    /// <summary>pmem2_map_get_store_granularity: the effective granularity.</summary>
    public Pmem2Granularity StoreGranularity => _granularity;

    /// <summary>Whether the MAP_SHARED_VALIDATE|MAP_SYNC mapping succeeded (the file is on DAX).</summary>
    public bool IsMapSync { get; }

    /// <summary>
    /// The first failed persist of this map (an msync or deep flush error, <see cref="Pmem2Exception.IsPersistFailure"/>),
    /// or null. Sticky, errseq-style: once set, every later call that would claim persistence
    /// (Persist, Flush, Drain, DeepFlush, CompleteDeferred, Memcpy / Memmove / Memset without
    /// <see cref="Pmem2MemFlags.NoFlush"/>) throws a <see cref="Pmem2Exception"/> with this code and never
    /// calls msync again, because the kernel reports a write-back error only once. Only a new map of
    /// the file starts clean. libpmem2 abort()s instead (docs/pmem2.md).
    /// </summary>
    public Pmem2Exception? PersistFailure => Volatile.Read(ref _persistFailure);

    /// <summary>Whether <see cref="PersistFailure"/> is set.</summary>
    public bool IsPersistFailed => PersistFailure is not null;

    /// <summary>The SafeBuffer-derived handle that owns the mapping.</summary>
    public Pmem2MappingHandle Handle => _handle;

    /// <summary>Whether the map has been disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0 || _handle.IsClosed;

    /// <summary>A view of the whole mapping. Valid only until the map is disposed; prefer the
    /// bounds-checked methods below when the map may be disposed concurrently. Throws
    /// <see cref="InvalidOperationException"/> for maps larger than <see cref="int.MaxValue"/> bytes
    /// (use <see cref="GetSpan(ulong, int)"/>).</summary>
    public Span<byte> GetSpan()
    {
        ThrowIfDisposed();
        if (_size > int.MaxValue)
        {
            throw new InvalidOperationException($"The mapping is {_size} bytes, more than a Span<byte> can cover; use GetSpan(offset, length).");
        }

        return new Span<byte>(_address, (int)_size);
    }

    /// <summary>A view of [offset, offset+length) of the mapping, with the same lifetime caveat as <see cref="GetSpan()"/>.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ThrowIfDisposed();
        CheckRange(offset, (ulong)length);
        return new Span<byte>(_address + offset, length);
    }

    /// <summary>Copies mapping bytes [offset, offset+destination.Length) into destination.</summary>
    public void Read(ulong offset, Span<byte> destination)
    {
        CheckRange(offset, (ulong)destination.Length);
        RequireAccess(write: false);
        using (AcquireHandle())
        {
            new ReadOnlySpan<byte>(_address + offset, destination.Length).CopyTo(destination);
        }
    }

    /// <summary>pmem2_memcpy_fn into the mapping at <paramref name="offset"/>.</summary>
    public void Memcpy(ulong offset, ReadOnlySpan<byte> source, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        CheckRange(offset, (ulong)source.Length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            fixed (byte* src = source)
            {
                MemmoveRaw(_address + offset, src, (nuint)source.Length, flags);
            }
        }
    }

    /// <summary>pmem2_memmove_fn within the mapping (overlap-safe).</summary>
    public void Memmove(ulong destinationOffset, ulong sourceOffset, ulong length, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        CheckRange(destinationOffset, length);
        CheckRange(sourceOffset, length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            MemmoveRaw(_address + destinationOffset, _address + sourceOffset, (nuint)length, flags);
        }
    }

    /// <summary>pmem2_memset_fn within the mapping.</summary>
    public void Memset(ulong offset, byte value, ulong length, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        CheckRange(offset, length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            MemsetRaw(_address + offset, value, (nuint)length, flags);
        }
    }

    /// <summary>pmem2_persist_fn over a range of the mapping.</summary>
    public void Persist(ulong offset, ulong length)
    {
        CheckRange(offset, length);
        RequireFlushable();
        using (AcquireHandle())
        {
            PersistRaw(_address + offset, (nuint)length);
        }
    }

    /// <summary>pmem2_flush_fn over a range of the mapping.</summary>
    public void Flush(ulong offset, ulong length)
    {
        CheckRange(offset, length);
        RequireFlushable();
        using (AcquireHandle())
        {
            FlushRaw(_address + offset, (nuint)length);
        }
    }

    /// <summary>pmem2_drain_fn.</summary>
    public void Drain()
    {
        ThrowIfDisposed();
        DrainRaw();
    }

    /// <summary>pmem2_deep_flush over a range of the mapping (DEEP_FLUSH_RANGE when outside; the offset
    /// wraps like a pointer, so an offset of 2^64 - n addresses n bytes before the map).</summary>
    public void DeepFlush(ulong offset, ulong length)
    {
        RequireFlushable();
        using (AcquireHandle())
        {
            DeepFlushRaw(unchecked(_address + offset), (nuint)length);
        }
    }

    /// <summary>
    /// Extension beyond libpmem2, for bulk streams: a non-temporal copy whose persistence is deferred.
    /// On CACHE_LINE and BYTE maps it is Memcpy with NONTEMPORAL|NODRAIN; on PAGE maps the msync is
    /// deferred too. Call <see cref="CompleteDeferred"/> over the written range before acknowledging.
    /// </summary>
    public void CopyNonTemporalDeferred(ulong offset, ReadOnlySpan<byte> source)
    {
        CheckRange(offset, (ulong)source.Length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            fixed (byte* src = source)
            {
                CopyNonTemporalDeferredRaw(_address + offset, src, (nuint)source.Length);
            }
        }
    }

    /// <summary>Makes deferred copies over [offset, offset+length) persistent: drain on CACHE_LINE and BYTE,
    /// msync of the page-aligned range on PAGE.</summary>
    public void CompleteDeferred(ulong offset, ulong length)
    {
        CheckRange(offset, length);
        RequireFlushable();
        using (AcquireHandle())
        {
            CompleteDeferredRaw(_address + offset, (nuint)length);
        }
    }

    /// <summary>pmem2_map_delete: unregisters and unmaps, exactly once (later calls do nothing).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _handle.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"Pmem2Map(0x{(nuint)_address:x}, {_size} bytes, {_granularity}{(IsMapSync ? ", MAP_SYNC" : string.Empty)}{(IsDisposed ? ", disposed" : string.Empty)})";

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckRange(ulong offset, ulong length)
    {
        if (offset > _size || length > _size - offset)
        {
            ThrowOutOfRange(offset, length);
        }
    }

    private void ThrowOutOfRange(ulong offset, ulong length) =>
        throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset}+{length}) is outside the {_size}-byte mapping.");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RequireAccess(bool write)
    {
        if (write ? !_writable : !_readable)
        {
            ThrowNoAccess(write ? "written (no Pmem2Protection.Write)" : "read (Pmem2Protection.None)");
        }
    }

    /// <summary>CPU cache-line flushes fault on PROT_NONE pages (they count as loads); msync does not.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RequireFlushable()
    {
        if (!_readable && _granularity != Pmem2Granularity.Page)
        {
            ThrowNoAccess("flushed by the CPU (Pmem2Protection.None)");
        }
    }

    private static void ThrowNoAccess(string what) =>
        throw new UnauthorizedAccessException($"The mapping's protection does not allow it to be {what}.");

    /// <summary>
    /// Takes one reference on the mapping handle for the duration of a call (SafeBuffer's
    /// DangerousAddRef / DangerousRelease), so a concurrent Dispose unmaps only after the call ends.
    /// Throws ObjectDisposedException when the map is already disposed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private HandleReference AcquireHandle()
    {
        ThrowIfDisposed();
        var added = false;
        _handle.DangerousAddRef(ref added);
        return new HandleReference(_handle);
    }

    /// <summary>Releases the reference taken by <see cref="AcquireHandle"/>.</summary>
    private readonly ref struct HandleReference(Pmem2MappingHandle handle)
    {
        public void Dispose() => handle.DangerousRelease();
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);
}
