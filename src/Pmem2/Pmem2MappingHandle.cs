using System.Runtime.InteropServices;

namespace Pmem2;

/// <summary>
/// Owns one mapping (System.IO.MemoryMappedFiles' SafeMemoryMappedViewHandle shape): ReleaseHandle
/// unmaps, and SafeBuffer's AcquirePointer / ReleasePointer keep it mapped while in use. CONTRACT STUB.
/// </summary>
public sealed class Pmem2MappingHandle : SafeBuffer
{
    internal Pmem2MappingHandle()
        : base(ownsHandle: true)
    {
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle() => throw new NotImplementedException();
}
