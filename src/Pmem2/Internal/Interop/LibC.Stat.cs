using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Pmem2.Internal.Interop;

/// <summary>
/// fstat / fstatat without timestamps: statx(2) asking only for the fields the engine reads (type,
/// mode, link count, owner, inode, size, blocks, device numbers).
/// <para>
/// Why not plain fstat: since Linux 6.13 ext4, xfs, btrfs and tmpfs keep <b>multigrain
/// timestamps</b>. A stat that returns ctime / mtime marks them "queried", and the next write fault
/// on a shared mapping (page_mkwrite, after an msync cleaned the page) then takes a fine-grained
/// timestamp instead of the coarse per-tick one, so every such fault dirties the inode and the
/// following msync writes the inode block too: one more synchronous metadata write (and device round
/// trip) per persisted PAGE write. Measured on this machine's ext4 (no journal, i_version): a loop of
/// 4 KiB store + msync with an fstat per iteration issued one REQ_META write per msync (2,000 in
/// 2,000), without it one per clock tick (445 in 2,000), and so did statx without the time fields
/// (523 in 2,000); the service's PAGE WriteRegion, which stats the region per call to detect a
/// replaced or truncated file, paid it on every call (msync p50 351-452 µs against 191 µs in the
/// benchmark's device loop on the same disk). Nothing in the engine reads a timestamp.
/// </para>
/// <para>
/// Fallback: a kernel without statx (before 4.11: ENOSYS, remembered) or a seccomp filter that
/// refuses it (EPERM) gets the plain fstat / fstatat, with the timestamps and their cost.
/// </para>
/// </summary>
internal static unsafe partial class LibC
{
    public const int AT_EMPTY_PATH = 0x1000;
    public const int ENOSYS = 38;

    // <linux/stat.h> statx mask bits: everything the engine reads, no STATX_ATIME/MTIME/CTIME/BTIME.
    private const uint STATX_TYPE = 0x1;
    private const uint STATX_MODE = 0x2;
    private const uint STATX_NLINK = 0x4;
    private const uint STATX_UID = 0x8;
    private const uint STATX_GID = 0x10;
    private const uint STATX_INO = 0x100;
    private const uint STATX_SIZE = 0x200;
    private const uint STATX_BLOCKS = 0x400;
    private const uint StatxWithoutTimes = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_INO | STATX_SIZE | STATX_BLOCKS;

    private static volatile bool s_noStatx;

    /// <summary>fstat(2) of a descriptor, without timestamps (see the class comment).</summary>
    public static int fstat(SafeFileHandle fd, Stat* buf) => StatWithoutTimes(fd, AT_FDCWD, string.Empty, AT_EMPTY_PATH, buf);

    /// <summary>fstatat(2) relative to a directory descriptor, without timestamps.</summary>
    public static int fstatat(SafeFileHandle dirfd, string path, Stat* buf, int flags) => StatWithoutTimes(dirfd, AT_FDCWD, path, flags, buf);

    /// <summary>fstatat(2) with a plain descriptor number (AT_FDCWD: lstat / stat of a path), without timestamps.</summary>
    public static int fstatat(int dirfd, string path, Stat* buf, int flags) => StatWithoutTimes(null, dirfd, path, flags, buf);

    /// <summary>statx of (<paramref name="handle"/> or else <paramref name="dirfd"/>, <paramref name="path"/>); 0 or -1 with errno, like the stat calls.</summary>
    private static int StatWithoutTimes(SafeFileHandle? handle, int dirfd, string path, int flags, Stat* buf)
    {
        if (!s_noStatx)
        {
            StatX sx;
            var rc = handle is null ? statx(dirfd, path, flags, StatxWithoutTimes, &sx) : statx(handle, path, flags, StatxWithoutTimes, &sx);
            if (rc == 0)
            {
                sx.CopyTo(buf);
                return 0;
            }

            if (!StatxUnavailable())
            {
                return -1;
            }
        }

        // The plain calls: fstat of a descriptor alone (AT_EMPTY_PATH), fstatat otherwise.
        return handle is null ? fstatat_full(dirfd, path, buf, flags)
            : (flags & AT_EMPTY_PATH) != 0 ? fstat_full(handle, buf)
            : fstatat_full(handle, path, buf, flags);
    }

    /// <summary>After a failed statx: whether to retry with the full stat (ENOSYS, remembered; EPERM from a seccomp filter).</summary>
    private static bool StatxUnavailable()
    {
        var errno = Marshal.GetLastPInvokeError();
        if (errno == ENOSYS)
        {
            s_noStatx = true;
            return true;
        }

        return errno == EPERM;
    }

    /// <summary>glibc's makedev (gnu_dev_makedev), the inverse of <see cref="Major"/> / <see cref="Minor"/>: st_dev as fstat reports it.</summary>
    public static ulong MakeDev(uint major, uint minor) =>
        ((ulong)(major & 0xfff) << 8) | ((ulong)(major & 0xfffff000) << 32) | (minor & 0xffUL) | ((ulong)(minor & 0xffffff00) << 12);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(SafeFileHandle dirfd, string path, int flags, uint mask, StatX* buf);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, StatX* buf);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    private static partial int fstat_full(SafeFileHandle fd, Stat* buf);

    /// <summary>fstatat(2) (an exported glibc symbol since 2.33).</summary>
    [LibraryImport(Lib, EntryPoint = "fstatat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fstatat_full(SafeFileHandle dirfd, string path, Stat* buf, int flags);

    [LibraryImport(Lib, EntryPoint = "fstatat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int fstatat_full(int dirfd, string path, Stat* buf, int flags);

    /// <summary><c>struct statx</c> (&lt;linux/stat.h&gt;, 256 bytes; only the fields read here).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatX
    {
        [FieldOffset(4)] public uint Blksize;
        [FieldOffset(16)] public uint Nlink;
        [FieldOffset(20)] public uint Uid;
        [FieldOffset(24)] public uint Gid;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Ino;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(48)] public ulong Blocks;
        [FieldOffset(128)] public uint RdevMajor;
        [FieldOffset(132)] public uint RdevMinor;
        [FieldOffset(136)] public uint DevMajor;
        [FieldOffset(140)] public uint DevMinor;

        /// <summary>The <c>struct stat</c> fstat would have filled, with zero timestamps.</summary>
        public readonly void CopyTo(Stat* st)
        {
            *st = default;
            st->st_dev = MakeDev(DevMajor, DevMinor);
            st->st_ino = Ino;
            st->st_nlink = Nlink;
            st->st_mode = Mode;
            st->st_uid = Uid;
            st->st_gid = Gid;
            st->st_rdev = MakeDev(RdevMajor, RdevMinor);
            st->st_size = (long)Size;
            st->st_blksize = Blksize;
            st->st_blocks = (long)Blocks;
        }
    }
}
