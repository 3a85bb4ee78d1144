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

    internal Pmem2MappingHandle()
        : base(ownsHandle: true)
    {
    }

    /// <summary>Takes ownership of [address, address+reservedLength) and registers it process-wide.</summary>
    internal void Attach(nint address, nuint contentLength, nuint reservedLength)
    {
        _reservedLength = reservedLength;
        SetHandle(address);
        Initialize(contentLength);
        MapRegistry.Register((nuint)address, reservedLength, this);
        _registered = true;
    }

    /// <summary>The length that is unmapped (content length rounded up to a page).</summary>
    internal nuint ReservedLength => _reservedLength;

    /// <inheritdoc />
    protected override unsafe bool ReleaseHandle()
    {
        // Unregister first (under the registry's write lock, so no PAGE persist walk is still using the
        // range), then give the address range back to the kernel.
        if (_registered)
        {
            MapRegistry.Unregister((nuint)handle, this);
            _registered = false;
        }

        return LibC.munmap((void*)handle, _reservedLength) == 0;
    }
}
