using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Pmem2.Internal.Interop;

/// <summary>libc entry points for bad blocks (FIEMAP, fallocate modes, ndctl bus ioctls) and for
/// reading the process environment the way libpmem2's secure_getenv does.</summary>
internal static unsafe partial class LibC
{
    /// <summary>FALLOC_FL_KEEP_SIZE: allocate without changing the file size.</summary>
    public const int FALLOC_FL_KEEP_SIZE = 0x01;

    /// <summary>FALLOC_FL_PUNCH_HOLE: deallocate (must be or-ed with KEEP_SIZE).</summary>
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;

    /// <summary>FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap) (32-byte header).</summary>
    public const uint FS_IOC_FIEMAP = 0xC020660B;

    /// <summary>ND_IOCTL_ARS_CAP = _IOWR('N', ND_CMD_ARS_CAP (1), struct nd_cmd_ars_cap) (32 bytes).</summary>
    public const uint ND_IOCTL_ARS_CAP = 0xC0204E01;

    /// <summary>ND_IOCTL_CLEAR_ERROR = _IOWR('N', ND_CMD_CLEAR_ERROR (4), struct nd_cmd_clear_error) (32 bytes).</summary>
    public const uint ND_IOCTL_CLEAR_ERROR = 0xC0204E04;

    public const int ENXIO = 6;
    public const int ENOTTY = 25;

    /// <summary>getauxval(AT_SECURE): nonzero in setuid / setgid / capability-raising executions.</summary>
    public const ulong AT_SECURE = 23;

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl(SafeFileHandle fd, nuint request, void* arg);

    /// <summary>getenv(3) on the real process environment (native setenv calls are visible).</summary>
    [LibraryImport(Lib, EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    public static partial byte* getenv(string name);

    [LibraryImport(Lib, EntryPoint = "getauxval")]
    public static partial nuint getauxval(nuint type);
}

/// <summary>struct fiemap (linux/fiemap.h) header.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FiemapHeader
{
    public ulong fm_start;
    public ulong fm_length;
    public uint fm_flags;
    public uint fm_mapped_extents;
    public uint fm_extent_count;
    public uint fm_reserved;
}

/// <summary>struct fiemap_extent (56 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FiemapExtent
{
    public ulong fe_logical;
    public ulong fe_physical;
    public ulong fe_length;
    public ulong fe_reserved64_0;
    public ulong fe_reserved64_1;
    public uint fe_flags;
    public uint fe_reserved_0;
    public uint fe_reserved_1;
    public uint fe_reserved_2;
}

/// <summary>struct nd_cmd_ars_cap (linux/ndctl.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NdCmdArsCap
{
    public ulong address;
    public ulong length;
    public uint status;
    public uint max_ars_out;
    public uint clear_err_unit;
    public ushort flags;
    public ushort reserved;
}

/// <summary>struct nd_cmd_clear_error (linux/ndctl.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NdCmdClearError
{
    public ulong address;
    public ulong length;
    public uint status;
    public uint reserved;
    public ulong cleared;
}
