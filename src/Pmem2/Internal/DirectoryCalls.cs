using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>The system calls behind <see cref="Pmem2Directory"/> and <see cref="Pmem2Files"/>' stat and MAP_SYNC helpers.</summary>
internal static unsafe class DirectoryCalls
{
    public const int ReadOnly = LibC.O_RDONLY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC;
    public const int ReadWrite = LibC.O_RDWR | LibC.O_NOFOLLOW | LibC.O_CLOEXEC;
    public const int CreateExclusive = LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_NOFOLLOW | LibC.O_CLOEXEC;

    /// <summary>One path component: not empty, no '/', no NUL, not "." or "..".</summary>
    public static void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name is "." or ".." || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a single directory entry name.", nameof(name));
        }
    }

    public static SafeFileHandle OpenDirectory(string path)
    {
        while (true)
        {
            var handle = LibC.open(path, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
            if (!handle.IsInvalid)
            {
                return handle;
            }

            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            if (errno != LibC.EINTR)
            {
                Errors.ThrowErrno(errno, $"open \"{path}\"");
            }
        }
    }

    public static SafeFileHandle OpenAt(SafeFileHandle dir, string name, int flags, int mode)
    {
        while (true)
        {
            var handle = LibC.openat(dir, name, flags, mode);
            if (!handle.IsInvalid)
            {
                return handle;
            }

            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            if (errno != LibC.EINTR)
            {
                Errors.ThrowErrno(errno, $"openat \"{name}\"");
            }
        }
    }

    public static Pmem2FileStatus? StatAt(SafeFileHandle dir, string name)
    {
        Stat st;
        if (LibC.fstatat(dir, name, &st, LibC.AT_SYMLINK_NOFOLLOW) == 0)
        {
            return ToStatus(st);
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno == LibC.ENOENT)
        {
            return null;
        }

        Errors.ThrowErrno(errno, $"fstatat \"{name}\"");
        return null;
    }

    public static Pmem2FileStatus? LStat(string path)
    {
        Stat st;
        if (LibC.fstatat(LibC.AT_FDCWD, path, &st, LibC.AT_SYMLINK_NOFOLLOW) == 0)
        {
            return ToStatus(st);
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno == LibC.ENOENT)
        {
            return null;
        }

        Errors.ThrowErrno(errno, $"lstat \"{path}\"");
        return null;
    }

    public static Pmem2FileStatus FStat(SafeFileHandle handle)
    {
        Stat st;
        if (LibC.fstat(handle, &st) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), "fstat");
        }

        return ToStatus(st);
    }

    public static void RenameNoReplace(SafeFileHandle dir, string from, string to)
    {
        if (LibC.renameat2(dir, from, dir, to, LibC.RENAME_NOREPLACE) == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno != LibC.EINVAL)
        {
            Errors.ThrowErrno(errno, $"renameat2 \"{from}\" \"{to}\"");
        }

        // EINVAL: the filesystem does not support RENAME_NOREPLACE (FUSE through libfuse 2, older NFS).
        // Check the target, then a plain rename. The window between the two only matters against
        // another writer of the same directory while the service holds the pool's lock (one service
        // per pool; region names are created under the region's gate). linkat + unlinkat would be atomic, but libfuse 2 turns the unlink of
        // a still-open temporary into a hidden second link (.fuse_hidden*) that then names the inode.
        if (StatAt(dir, to) is not null)
        {
            Errors.ThrowErrno(LibC.EEXIST, $"renameat2 \"{from}\" \"{to}\"");
        }

        if (LibC.renameat2(dir, from, dir, to, 0) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"renameat \"{from}\" \"{to}\"");
        }
    }

    public static void UnlinkAt(SafeFileHandle dir, string name)
    {
        if (LibC.unlinkat(dir, name, 0) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"unlinkat \"{name}\"");
        }
    }

    public static void Fsync(SafeFileHandle handle, string what)
    {
        while (LibC.fsync(handle) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != LibC.EINTR)
            {
                Errors.ThrowErrno(errno, what);
            }
        }
    }

    /// <summary>
    /// Whether the kernel accepts a MAP_SHARED_VALIDATE|MAP_SYNC mapping of the file: one real mmap at an
    /// address the kernel picks (nothing is replaced), unmapped at once. PMEM2_FORCE_GRANULARITY is not
    /// consulted. EINVAL/EOPNOTSUPP mean no; any other failure is thrown.
    /// </summary>
    public static bool ProbeMapSync(SafeFileHandle handle, nuint length)
    {
        var addr = LibC.mmap(null, length, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED_VALIDATE | LibC.MAP_SYNC, handle, 0);
        if (addr != LibC.MAP_FAILED)
        {
            _ = LibC.munmap(addr, length);
            return true;
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno is LibC.EINVAL or LibC.EOPNOTSUPP)
        {
            return false;
        }

        Errors.ThrowErrno(errno, "mmap MAP_SYNC");
        return false;
    }

    private static Pmem2FileStatus ToStatus(in Stat st) =>
        new(st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_nlink, st.st_uid);
}
