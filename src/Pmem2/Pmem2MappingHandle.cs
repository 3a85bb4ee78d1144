using System.Runtime.InteropServices;
using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>
/// Owns one mapping (System.IO.MemoryMappedFiles' SafeMemoryMappedViewHandle shape): ReleaseHandle
/// unregisters and unmaps, and SafeBuffer's AcquirePointer / ReleasePointer (or DangerousAddRef /
/// DangerousRelease) keep it mapped while in use. Disposing while a call holds a reference only marks
/// the handle closed: the unmap runs when the last reference is released, exactly once.
/// <see cref="SafeBuffer.ByteLength"/> is the content length; the unmapped length is the page-rounded
/// reservation.
/// </summary>
public sealed class Pmem2MappingHandle : SafeBuffer
{
    private nuint _reservedLength;
    private bool _registered;
    private bool _ownsMapping = true;
    private Pmem2VmReservation? _reservation;

    internal Pmem2MappingHandle()
        : base(ownsHandle: true)
    {
    }

    /// <summary>Takes ownership of [address, address+reservedLength) and registers it process-wide.
    /// Inside a reservation the range is re-covered with PROT_NONE memory on release instead of unmapped;
    /// a wrapped existing mapping (<paramref name="ownsMapping"/> false) is only unregistered.</summary>
    internal void Attach(nint address, nuint contentLength, nuint reservedLength, Pmem2VmReservation? reservation = null, bool ownsMapping = true)
    {
        _reservedLength = reservedLength;
        _reservation = reservation;
        _ownsMapping = ownsMapping;
        SetHandle(address);
        Initialize(contentLength);
        MapRegistry.Register((nuint)address, ownsMapping ? reservedLength : contentLength, this);
        _registered = true;
    }

    /// <summary>The length that is unmapped (content length rounded up to a page).</summary>
    internal nuint ReservedLength => _reservedLength;

    /// <inheritdoc />
    protected override unsafe bool ReleaseHandle()
    {
        Pmem2EventSource.Log.MapReleased(handle, (long)_reservedLength);

        // Unregister first (under the registry's write lock, so no PAGE persist walk is still using the
        // range), then give the address range back to the kernel.
        if (_registered)
        {
            MapRegistry.Unregister((nuint)handle, this);
            _registered = false;
        }

        if (!_ownsMapping)
        {
            return true;
        }

        if (_reservation is { } rsv)
        {
            return rsv.RemoveAndMend(handle, _reservedLength);
        }

        return LibC.munmap((void*)handle, _reservedLength) == 0;
    }
}
