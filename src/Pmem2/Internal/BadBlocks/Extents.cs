using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal.BadBlocks;

/// <summary>One extent of a regular file: where its bytes live on the block device.</summary>
internal readonly record struct FileExtent(ulong Logical, ulong Physical, ulong Length);

/// <summary>
/// The extents of a file through the FIEMAP ioctl (extent_linux.c): a first call with no extent
/// buffer counts them, a second fills exactly that many. The block size is st_blksize. Device DAX
/// has no extents.
/// </summary>
internal static class Extents
{
    public static unsafe (ulong BlockSize, FileExtent[] Extents) Get(SafeFileHandle handle, bool deviceDax)
    {
        Stat st = default;
        if (LibC.fstat(handle, &st) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Errors.ThrowErrno(errno, $"fstat {handle.DangerousGetHandle()}");
        }

        var blockSize = (ulong)st.st_blksize;
        if (deviceDax)
        {
            return (blockSize, []);
        }

        var header = new FiemapHeader { fm_start = 0, fm_length = (ulong)st.st_size };
        if (LibC.ioctl(handle, LibC.FS_IOC_FIEMAP, &header) != 0)
        {
            Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"ioctl {handle.DangerousGetHandle()}");
        }

        var count = header.fm_mapped_extents;
        if (count == 0)
        {
            return (blockSize, []);
        }

        var size = sizeof(FiemapHeader) + (checked((int)count) * sizeof(FiemapExtent));
        var buffer = (byte*)NativeMemory.AllocZeroed((nuint)size);
        try
        {
            var h = (FiemapHeader*)buffer;
            h->fm_start = 0;
            h->fm_length = (ulong)st.st_size;
            h->fm_extent_count = count;
            if (LibC.ioctl(handle, LibC.FS_IOC_FIEMAP, buffer) != 0)
            {
                Errors.ThrowErrno(Marshal.GetLastPInvokeError(), $"ioctl {handle.DangerousGetHandle()}");
            }

            // The file may have lost extents between the two calls (libpmem2 keeps the smaller count).
            var n = Math.Min(count, h->fm_mapped_extents);
            var extents = new FileExtent[n];
            var e = (FiemapExtent*)(buffer + sizeof(FiemapHeader));
            for (var i = 0; i < n; i++)
            {
                extents[i] = new FileExtent(e[i].fe_logical, e[i].fe_physical, e[i].fe_length);
            }

            return (blockSize, extents);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }
}
