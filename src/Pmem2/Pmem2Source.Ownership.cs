using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>Descriptor ownership, explicit in the factory names: <c>Borrowed</c> (the caller closes
/// the descriptor, after disposing the source) or <c>Owned</c> (the source closes it on dispose).</summary>
public sealed partial class Pmem2Source
{
    /// <summary>
    /// pmem2_source_from_fd over a raw descriptor whose ownership passes to the source: it is closed
    /// when the source is disposed. Ownership passes only on success: when validation throws, the
    /// descriptor is left open and still belongs to the caller.
    /// </summary>
    public static Pmem2Source FromOwnedFileDescriptor(int fd)
    {
        PlatformGuard.EnsureSupported();
        if (fd < 0)
        {
            Errors.Throw(Pmem2ErrorCode.InvalidFileHandle, $"invalid file descriptor {fd}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            return FromValidatedHandle(handle, ownsHandle: true);
        }
        catch
        {
            handle.SetHandleAsInvalid(); // do not close what the caller still owns
            throw;
        }
    }

    /// <summary>
    /// pmem2_source_from_fd over a <see cref="SafeFileHandle"/>. With <paramref name="transferOwnership"/>
    /// false (what <see cref="FromHandle(SafeFileHandle)"/> does) the handle is borrowed: the caller
    /// disposes it, after the source. With true the source disposes it (on success only).
    /// </summary>
    public static Pmem2Source FromHandle(SafeFileHandle handle, bool transferOwnership)
    {
        ArgumentNullException.ThrowIfNull(handle);
        PlatformGuard.EnsureSupported();
        return FromValidatedHandle(handle, ownsHandle: transferOwnership);
    }

    /// <summary>Whether disposing the source closes its descriptor (<see cref="Open"/>,
    /// <see cref="FromOwnedFileDescriptor"/>, <see cref="FromHandle(SafeFileHandle, bool)"/> with true).</summary>
    public bool OwnsDescriptor => _ownsHandle;
}
