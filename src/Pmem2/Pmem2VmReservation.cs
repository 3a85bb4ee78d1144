using System.Runtime.InteropServices;
using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>
/// A reserved range of virtual address space (struct pmem2_vm_reservation): inaccessible
/// (PROT_NONE, private anonymous, no commit charge) until maps are placed into it through
/// <see cref="Pmem2Config.SetVmReservation"/>. Deleting a map inside it re-covers ("mends") the map's
/// range with PROT_NONE memory, so the reservation stays whole. Thread-safe.
/// </summary>
public sealed class Pmem2VmReservation : IDisposable
{
    private const nuint MiB = 1 << 20;
    private const nuint GiB = 1 << 30;

    private readonly object _sync = new();
    private readonly SortedList<ulong, Pmem2Map> _maps = [];
    private nint _address;
    private ulong _size;
    private bool _disposed;

    private Pmem2VmReservation(nint address, ulong size)
    {
        _address = address;
        _size = size;
    }

    /// <summary>
    /// pmem2_vm_reservation_new. With <paramref name="address"/> 0 the kernel chooses a place aligned
    /// to 2 MiB (1 GiB for sizes of 2 GiB or more); otherwise the range must be free
    /// (MAP_FIXED_NOREPLACE, MAPPING_EXISTS when occupied). Address and size must be page multiples.
    /// <para>
    /// A size of 0 is accepted, as by libpmem2: the result reserves no address space (it has an address,
    /// 2 MiB-aligned or the requested one, whose following 2 MiB were free when it was created), can be
    /// <see cref="Extend"/>ed, and its <see cref="Dispose"/> fails with -EINVAL "munmap: Invalid argument"
    /// (munmap of 0 bytes) for as long as it stays empty, exactly like pmem2_vm_reservation_delete.
    /// </para>
    /// </summary>
    public static unsafe Pmem2VmReservation Create(nint address, ulong size)
    {
        PlatformGuard.EnsureSupported();
        var page = (ulong)Environment.SystemPageSize;
        if ((ulong)address % page != 0)
        {
            Errors.Throw(Pmem2ErrorCode.AddressUnaligned, $"address {Errors.Pointer(address)} is not a multiple of 0x{page:x}");
        }

        if (size % page != 0)
        {
            Errors.Throw(Pmem2ErrorCode.LengthUnaligned, $"reservation size {size} is not a multiple of {page}");
        }

        if (size > (ulong)nint.MaxValue)
        {
            // libpmem2 adds its alignment to the size unchecked, and the wrapped-around request can succeed.
            Errors.ThrowErrno(LibC.ENOMEM, "mmap MAP_ANONYMOUS");
        }

        if (address != 0)
        {
            if (size == 0)
            {
                // libpmem2 1.12.1 reserves size + 2 MiB at a fixed address, so even a 0-byte reservation
                // needs the next 2 MiB free; ours checks that and keeps nothing.
                var probe = MapFixedNoReplace((void*)address, 2 * MiB);
                _ = LibC.munmap(probe, 2 * MiB);
                return new Pmem2VmReservation(address, 0);
            }

            var got = MapFixedNoReplace((void*)address, (nuint)size);
            return new Pmem2VmReservation((nint)got, size);
        }

        // Over-reserve and trim to the predicted alignment (vm_reservation_posix.c).
        var align = size >= 2 * GiB ? GiB : 2 * MiB;
        var dlength = (nuint)size + align;
        var daddr = LibC.mmap(null, dlength, LibC.PROT_NONE, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
        if (daddr == LibC.MAP_FAILED)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "mmap MAP_ANONYMOUS");
        }

        // With size 0 both pieces cover the whole probe: nothing stays reserved, only the address is kept.
        var start = ((nuint)daddr + align - 1) & ~(align - 1);
        var before = start - (nuint)daddr;
        var after = dlength - before - (nuint)size;
        if (before != 0)
        {
            _ = LibC.munmap(daddr, before);
        }

        if (after != 0)
        {
            _ = LibC.munmap((void*)(start + (nuint)size), after);
        }

        return new Pmem2VmReservation((nint)start, size);
    }

    /// <summary>pmem2_vm_reservation_get_address.</summary>
    public nint Address
    {
        get
        {
            lock (_sync)
            {
                return _address;
            }
        }
    }

    /// <summary>pmem2_vm_reservation_get_size.</summary>
    public ulong Size
    {
        get
        {
            lock (_sync)
            {
                return _size;
            }
        }
    }

    /// <summary>Number of maps currently placed in the reservation.</summary>
    public int MapCount
    {
        get
        {
            lock (_sync)
            {
                return _maps.Count;
            }
        }
    }

    internal object SyncRoot => _sync;

    /// <summary>pmem2_vm_reservation_extend: grows the reservation at its end by <paramref name="size"/>
    /// bytes (page multiple; MAPPING_EXISTS when the following range is occupied).</summary>
    public unsafe void Extend(ulong size)
    {
        var page = (ulong)Environment.SystemPageSize;
        if (size % page != 0)
        {
            Errors.Throw(Pmem2ErrorCode.LengthUnaligned, $"reservation extension size {size} is not a multiple of {page}");
        }

        lock (_sync)
        {
            ThrowIfDisposed();
            if (size == 0)
            {
                return;
            }

            _ = MapFixedNoReplace((void*)(_address + (nint)_size), (nuint)size);
            _size += size;
        }
    }

    /// <summary>pmem2_vm_reservation_shrink: gives back [offset, offset+size), which must be at the
    /// start or the end of the reservation, not the whole of it, and hold no map.</summary>
    public unsafe void Shrink(ulong offset, ulong size)
    {
        var page = (ulong)Environment.SystemPageSize;
        if (offset % page != 0)
        {
            Errors.Throw(Pmem2ErrorCode.OffsetUnaligned, $"reservation shrink offset {offset} is not a multiple of {page}");
        }

        if (size % page != 0)
        {
            Errors.Throw(Pmem2ErrorCode.LengthUnaligned, $"reservation shrink size {size} is not a multiple of {page}");
        }

        lock (_sync)
        {
            ThrowIfDisposed();
            if (offset >= _size)
            {
                Errors.Throw(Pmem2ErrorCode.OffsetOutOfRange, $"reservation shrink offset {offset} is out of reservation range");
            }

            if (size == 0)
            {
                Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, $"reservation shrink size {size} cannot be zero");
            }

            // libpmem2's order and unsigned arithmetic: an offset + size that wraps around passes this
            // check and is refused as "from the middle" below (it can never equal the size).
            var end = unchecked(offset + size);
            if (end > _size)
            {
                Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, $"reservation shrink size {size} stands out of reservation range");
            }

            if (offset != 0 && end != _size)
            {
                Errors.Throw(Pmem2ErrorCode.NoSupp, "shrinking reservation from the middle is not supported");
            }

            if (offset == 0 && size == _size)
            {
                Errors.Throw(Pmem2ErrorCode.NoSupp, "shrinking whole reservation is not supported");
            }

            if (FindLocked(offset, size) is not null)
            {
                Errors.Throw(Pmem2ErrorCode.VmReservationNotEmpty, $"reservation region (offset {offset}, size {size}) to be shrunk is occupied by a mapping");
            }

            if (LibC.munmap((void*)(_address + (nint)offset), (nuint)size) != 0)
            {
                Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "munmap");
            }

            if (offset == 0)
            {
                _address += (nint)size;
                var moved = _maps.ToArray();
                _maps.Clear();
                foreach (var (key, map) in moved)
                {
                    _maps.Add(key - size, map);
                }
            }

            _size -= size;
        }
    }

    /// <summary>pmem2_vm_reservation_map_find: the earliest map overlapping [offset, offset+length)
    /// (MAPPING_NOT_FOUND when none).</summary>
    public Pmem2Map FindMap(ulong offset, ulong length)
    {
        lock (_sync)
        {
            return FindLocked(offset, length) ?? throw NotFound();
        }
    }

    /// <summary>pmem2_vm_reservation_map_find_first.</summary>
    public Pmem2Map FindFirstMap()
    {
        lock (_sync)
        {
            return _maps.Count > 0 ? _maps.Values[0] : throw NotFound();
        }
    }

    /// <summary>pmem2_vm_reservation_map_find_last.</summary>
    public Pmem2Map FindLastMap()
    {
        lock (_sync)
        {
            return _maps.Count > 0 ? _maps.Values[^1] : throw NotFound();
        }
    }

    /// <summary>pmem2_vm_reservation_map_find_prev: the map before <paramref name="map"/>.</summary>
    public Pmem2Map FindPreviousMap(Pmem2Map map)
    {
        ArgumentNullException.ThrowIfNull(map);
        lock (_sync)
        {
            var i = _maps.IndexOfValue(map);
            return i > 0 ? _maps.Values[i - 1] : throw NotFound();
        }
    }

    /// <summary>pmem2_vm_reservation_map_find_next: the map after <paramref name="map"/>.</summary>
    public Pmem2Map FindNextMap(Pmem2Map map)
    {
        ArgumentNullException.ThrowIfNull(map);
        lock (_sync)
        {
            var i = _maps.IndexOfValue(map);
            return i >= 0 && i + 1 < _maps.Count ? _maps.Values[i + 1] : throw NotFound();
        }
    }

    /// <summary>pmem2_vm_reservation_delete: unmaps the reservation. Throws VM_RESERVATION_NOT_EMPTY
    /// (and keeps the reservation) while maps remain in it, and the munmap error (the reservation is
    /// kept too) when it fails: a 0-byte reservation gets -EINVAL "munmap: Invalid argument", like
    /// libpmem2's. Idempotent once it succeeded.</summary>
    public unsafe void Dispose()
    {
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            if (_maps.Count > 0)
            {
                // libpmem2 prints its struct's address; ours is the reservation's.
                Errors.Throw(Pmem2ErrorCode.VmReservationNotEmpty, $"vm reservation {Errors.Pointer(_address)} isn't empty");
            }

            if (LibC.munmap((void*)_address, (nuint)_size) != 0)
            {
                Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "munmap");
            }

            _disposed = true;
        }
    }

    // ----- used by the map layer, always under SyncRoot ---------------------------------------

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    internal Pmem2Map? FindLocked(ulong offset, ulong length)
    {
        var end = offset + length;
        foreach (var (start, map) in _maps)
        {
            var mapEnd = start + (ulong)map.Handle.ReservedLength;
            if (start < end && offset < mapEnd)
            {
                return map;
            }

            if (start >= end)
            {
                break;
            }
        }

        return null;
    }

    internal void AddLocked(ulong offset, Pmem2Map map) => _maps.Add(offset, map);

    /// <summary>Removes a map and re-covers its range with PROT_NONE memory (pmem2_map_delete in a reservation).</summary>
    internal unsafe bool RemoveAndMend(nint address, nuint length)
    {
        lock (_sync)
        {
            var offset = (ulong)(address - _address);
            _maps.Remove(offset);
            return Mend((void*)address, length);
        }
    }

    /// <summary>Re-covers [address, address+length) with inaccessible private anonymous memory.</summary>
    internal static unsafe bool Mend(void* address, nuint length)
    {
        if (length == 0)
        {
            return true;
        }

        var p = LibC.mmap(address, length, LibC.PROT_NONE, LibC.MAP_FIXED | LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
        return p != LibC.MAP_FAILED;
    }

    private static Pmem2Exception NotFound() => new(Pmem2ErrorCode.MappingNotFound, "no mapping found");

    private static unsafe void* MapFixedNoReplace(void* address, nuint size)
    {
        var got = LibC.mmap(address, size, LibC.PROT_NONE,
            LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE | LibC.MAP_FIXED_NOREPLACE, -1, 0);
        if (got == LibC.MAP_FAILED)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == LibC.EEXIST)
            {
                Errors.Throw(Pmem2ErrorCode.MappingExists, $"mmap MAP_FIXED_NOREPLACE: {Errors.StrError(errno)}");
            }

            Errors.ThrowErrno(errno, "mmap MAP_ANONYMOUS");
        }

        if (got != address)
        {
            // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a hint and maps elsewhere.
            _ = LibC.munmap(got, size);
            Errors.Throw(Pmem2ErrorCode.MappingExists, "mapping exists in the given address");
        }

        return got;
    }
}
