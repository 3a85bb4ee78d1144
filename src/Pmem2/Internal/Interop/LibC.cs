using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using off_t = long;
using size_t = nuint;

namespace Pmem2.Internal.Interop;

/// <summary>
/// The few libc entry points the engine needs (Linux x86-64, glibc), source-generated with
/// [LibraryImport]. Every call that can fail sets errno, read back with
/// <see cref="Marshal.GetLastPInvokeError"/>. File descriptors travel as <see cref="SafeFileHandle"/>
/// so the marshaller holds a reference (DangerousAddRef/Release) for the duration of the call and a
/// concurrent close cannot recycle the descriptor number under us.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    // <sys/mman.h> protections.
    public const int PROT_NONE = 0x0;
    public const int PROT_READ = 0x1;
    public const int PROT_WRITE = 0x2;
    public const int PROT_EXEC = 0x4;

    // <sys/mman.h> flags (x86-64 values).
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_SHARED_VALIDATE = 0x03;
    public const int MAP_FIXED = 0x10;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_NORESERVE = 0x4000;
    public const int MAP_FIXED_NOREPLACE = 0x100000;
    public const int MAP_SYNC = 0x80000;

    public const int MS_ASYNC = 1;
    public const int MS_INVALIDATE = 2;
    public const int MS_SYNC = 4;

    // <fcntl.h>
    public const int F_GETFL = 3;
    public const int O_ACCMODE = 0x3;
    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CLOEXEC = 0x80000;
    public const int O_DIRECTORY = 0x10000;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NOFOLLOW = 0x20000;

    // <fcntl.h> *at flags, <stdio.h> renameat2 flags.
    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const uint RENAME_NOREPLACE = 1;

    // <sys/stat.h>
    public const uint S_IFMT = 0xF000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFLNK = 0xA000;
    public const uint S_IFSOCK = 0xC000;

    // <errno.h>
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int EROFS = 30;
    public const int ELOOP = 40;
    public const int EOPNOTSUPP = 95; // == ENOTSUP on Linux

    public static readonly void* MAP_FAILED = (void*)-1;

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset);

    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* mmap(void* addr, size_t length, int prot, int flags, SafeFileHandle fd, off_t offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int munmap(void* addr, size_t length);

    // Pointer-free overloads for code outside src/Pmem2 (tests may not use unsafe code).
    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint mmap(nint addr, size_t length, int prot, int flags, int fd, off_t offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int munmap(nint addr, size_t length);

    [LibraryImport(Lib, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int mprotect(nint addr, size_t length, int prot);

    [LibraryImport(Lib, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int mprotect(void* addr, size_t length, int prot);

    [LibraryImport(Lib, EntryPoint = "msync", SetLastError = true)]
    public static partial int msync(void* addr, size_t length, int flags);

    /// <summary>fcntl is variadic; F_GETFL ignores the third argument, which is passed as 0 so the
    /// register that a variadic callee may read holds a defined value.</summary>
    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(SafeFileHandle fd, int cmd, int arg);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    public static partial nint pread(SafeFileHandle fd, byte* buf, size_t count, off_t offset);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint pwrite(SafeFileHandle fd, byte* buf, size_t count, off_t offset);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial SafeFileHandle open(string path, int flags, int mode);

    /// <summary>openat(2): a name resolved relative to a directory descriptor.</summary>
    [LibraryImport(Lib, EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial SafeFileHandle openat(SafeFileHandle dirfd, string path, int flags, int mode);

    /// <summary>renameat2(2) (glibc 2.28+); RENAME_NOREPLACE fails with EEXIST instead of replacing.</summary>
    [LibraryImport(Lib, EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int renameat2(SafeFileHandle olddirfd, string oldpath, SafeFileHandle newdirfd, string newpath, uint flags);

    /// <summary>unlinkat(2) of a non-directory.</summary>
    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlinkat(SafeFileHandle dirfd, string path, int flags);

    /// <summary>fallocate(2); mode 0 allocates the blocks of [offset, offset+len) and extends the size.</summary>
    [LibraryImport(Lib, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int fallocate(SafeFileHandle fd, int mode, off_t offset, off_t len);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    public static partial int fsync(SafeFileHandle fd);

    /// <summary>realpath(3) into a caller buffer of at least PATH_MAX (4096) bytes.</summary>
    [LibraryImport(Lib, EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial byte* realpath(string path, byte* resolved);

    /// <summary>Major number of a dev_t (glibc's gnu_dev_major encoding).</summary>
    public static uint Major(ulong dev) => (uint)(((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffUL));

    /// <summary>Minor number of a dev_t (glibc's gnu_dev_minor encoding).</summary>
    public static uint Minor(ulong dev) => (uint)((dev & 0xff) | ((dev >> 12) & ~0xffUL));

    /// <summary>realpath(3) as a managed string, or null with errno in <paramref name="errno"/>.</summary>
    public static string? RealPath(string path, out int errno)
    {
        byte* buf = stackalloc byte[4096];
        var result = realpath(path, buf);
        if (result == null)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        errno = 0;
        return Marshal.PtrToStringUTF8((nint)buf);
    }
}

/// <summary>struct stat on Linux x86-64 (glibc), 144 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Stat
{
    public ulong st_dev;
    public ulong st_ino;
    public ulong st_nlink;
    public uint st_mode;
    public uint st_uid;
    public uint st_gid;
    public int __pad0;
    public ulong st_rdev;
    public long st_size;
    public long st_blksize;
    public long st_blocks;
    public long st_atime;
    public long st_atime_nsec;
    public long st_mtime;
    public long st_mtime_nsec;
    public long st_ctime;
    public long st_ctime_nsec;
    public long __reserved0;
    public long __reserved1;
    public long __reserved2;
}
