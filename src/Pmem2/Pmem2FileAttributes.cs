using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// Extended attributes of files this library maps (for example per-region metadata kept next to the
/// data): <c>fsetxattr</c> / <c>fgetxattr</c> / <c>fremovexattr</c> on an open descriptor, with an
/// <c>fsync</c> after each change so the attribute is as durable as the file's data. An attribute
/// lives in the file's inode: it moves with <c>rename</c> and goes away with <c>unlink</c>.
/// Errors are <see cref="Pmem2Exception"/> with the negated errno, like <see cref="Pmem2Files"/>;
/// a filesystem without user xattrs fails with EOPNOTSUPP (-95).
/// </summary>
public static partial class Pmem2FileAttributes
{
    /// <summary>Largest value accepted (the Linux VFS limit, XATTR_SIZE_MAX).</summary>
    public const int MaxValueSize = 65536;

    private const int ENODATA = 61;
    private const int EINTR = 4;
    private const int ERANGE = 34;

    /// <summary>Sets attribute <paramref name="name"/> (e.g. <c>user.pmem.content</c>) and fsyncs the file.</summary>
    /// <exception cref="Pmem2Exception">"fsetxattr: ..." or "fsync: ..." with the negated errno (EOPNOTSUPP, ENOSPC, EDQUOT, ...).</exception>
    public static void Set(SafeFileHandle handle, string name, ReadOnlySpan<byte> value)
    {
        SetUnsynced(handle, name, value);
        Sync(handle);
    }

    /// <summary>
    /// Sets attribute <paramref name="name"/> on <paramref name="handle"/>, a descriptor of the file
    /// <paramref name="mappedBy"/> maps (typically the one the map was made from), and fsyncs it as a
    /// persist of that map. Linux reports a failed write-back of a file's pages once per open file
    /// description (errseq), and an fsync writes back every dirty page of the file, the map's included:
    /// an fsync of the descriptor behind the mapping that is told about a failed write-back consumes the
    /// error the map's next msync would have seen, and that msync would then return 0 for bytes that never
    /// reached storage. So this fsync follows the map's sticky-error rules (<see cref="Pmem2Map.PersistFailure"/>):
    /// refused before the attribute is changed once a persist of the map failed, counted with the map's
    /// running msyncs (an msync that overlapped a failing fsync does not report success), and its failure
    /// becomes the map's persist failure.
    /// </summary>
    /// <exception cref="Pmem2Exception">"fsetxattr: ..." with the negated errno (not a persist failure: the map is
    /// unaffected), or the fsync's error (or the map's earlier one) with <see cref="Pmem2Exception.IsPersistFailure"/>.</exception>
    public static void Set(SafeFileHandle handle, string name, ReadOnlySpan<byte> value, Pmem2Map mappedBy)
    {
        ArgumentNullException.ThrowIfNull(mappedBy);
        mappedBy.ThrowIfPersistFailed();
        SetUnsynced(handle, name, value);
        mappedBy.SyncFileSticky(handle);
    }

    private static void SetUnsynced(SafeFileHandle handle, string name, ReadOnlySpan<byte> value)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value.Length, MaxValueSize);
        PlatformGuard.EnsureSupported();
        int errno;
        do
        {
            if (Native.fsetxattr(handle, name, value, (nuint)value.Length, 0) == 0)
            {
                return;
            }

            errno = Marshal.GetLastPInvokeError();
        }
        while (errno == EINTR);
        Errors.ThrowErrno(errno, "fsetxattr");
    }

    /// <summary>Reads attribute <paramref name="name"/>; <see langword="null"/> when the file does not have it.</summary>
    /// <exception cref="Pmem2Exception">"fgetxattr: ..." with the negated errno (other than ENODATA).</exception>
    public static byte[]? Get(SafeFileHandle handle, string name)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentException.ThrowIfNullOrEmpty(name);
        PlatformGuard.EnsureSupported();
        var buffer = new byte[256];
        for (var attempt = 0; attempt < 16; attempt++)
        {
            var length = Native.fgetxattr(handle, name, buffer, (nuint)buffer.Length);
            if (length >= 0)
            {
                return buffer.AsSpan(0, (int)length).ToArray();
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case ENODATA:
                    return null;
                case EINTR:
                    continue;
                case ERANGE when buffer.Length < MaxValueSize:
                    buffer = new byte[MaxValueSize];
                    continue;
                default:
                    Errors.ThrowErrno(errno, "fgetxattr");
                    break;
            }
        }

        Errors.ThrowErrno(EINTR, "fgetxattr");
        return null;
    }

    /// <summary>Removes attribute <paramref name="name"/> and fsyncs; <see langword="false"/> when the file did not have it.</summary>
    /// <exception cref="Pmem2Exception">"fremovexattr: ..." or "fsync: ..." with the negated errno.</exception>
    public static bool Remove(SafeFileHandle handle, string name)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentException.ThrowIfNullOrEmpty(name);
        PlatformGuard.EnsureSupported();
        int errno;
        do
        {
            if (Native.fremovexattr(handle, name) == 0)
            {
                Sync(handle);
                return true;
            }

            errno = Marshal.GetLastPInvokeError();
        }
        while (errno == EINTR);
        if (errno == ENODATA)
        {
            return false;
        }

        Errors.ThrowErrno(errno, "fremovexattr");
        return false;
    }

    private static void Sync(SafeFileHandle handle)
    {
        int errno;
        do
        {
            if (Native.fsync(handle) == 0)
            {
                return;
            }

            errno = Marshal.GetLastPInvokeError();
        }
        while (errno == EINTR);
        Errors.ThrowErrno(errno, "fsync");
    }

    private static partial class Native
    {
        private const string Lib = "libc";

        [LibraryImport(Lib, EntryPoint = "fsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int fsetxattr(SafeFileHandle fd, string name, ReadOnlySpan<byte> value, nuint size, int flags);

        [LibraryImport(Lib, EntryPoint = "fgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial nint fgetxattr(SafeFileHandle fd, string name, Span<byte> value, nuint size);

        [LibraryImport(Lib, EntryPoint = "fremovexattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int fremovexattr(SafeFileHandle fd, string name);

        [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
        public static partial int fsync(SafeFileHandle fd);
    }
}
