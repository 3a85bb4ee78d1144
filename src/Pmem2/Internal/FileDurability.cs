using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>The system calls behind <see cref="Pmem2Files"/>.</summary>
internal static unsafe class FileDurability
{
    public static void Allocate(SafeFileHandle handle, long length)
    {
        if (length == 0)
        {
            return; // fallocate rejects len 0 with EINVAL; there is nothing to allocate.
        }

        int errno;
        do
        {
            if (LibC.fallocate(handle, 0, 0, length) == 0)
            {
                return;
            }

            errno = Marshal.GetLastPInvokeError();
        }
        while (errno == LibC.EINTR);

        Errors.ThrowErrno(errno, "fallocate");
    }

    public static void SyncDirectory(string path)
    {
        SafeFileHandle handle;
        int errno;
        while (true)
        {
            handle = LibC.open(path, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
            if (!handle.IsInvalid)
            {
                break;
            }

            errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            if (errno != LibC.EINTR)
            {
                Errors.ThrowErrno(errno, $"open \"{path}\"");
            }
        }

        using (handle)
        {
            do
            {
                if (LibC.fsync(handle) == 0)
                {
                    return;
                }

                errno = Marshal.GetLastPInvokeError();
            }
            while (errno == LibC.EINTR);

            Errors.ThrowErrno(errno, "fsync");
        }
    }

    public static void WriteZeros(SafeFileHandle handle, long length, CancellationToken cancellationToken)
    {
        // 4 KiB per write: the page cache then holds single-page folios (see Pmem2Files.WriteZeros).
        const int Page = 4096;
        var zeros = (byte*)NativeMemory.AlignedAlloc(Page, Page);
        try
        {
            NativeMemory.Clear(zeros, Page);
            for (long offset = 0; offset < length;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var count = (nuint)Math.Min(Page, length - offset);
                var written = LibC.pwrite(handle, zeros, count, offset);
                if (written < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                    {
                        continue;
                    }

                    Errors.ThrowErrno(errno, "pwrite");
                }

                if (written == 0)
                {
                    Errors.ThrowErrno(LibC.EIO, "pwrite"); // no progress on a regular file: never loop on it
                }

                offset += written; // a short write continues where it stopped
            }
        }
        finally
        {
            NativeMemory.AlignedFree(zeros);
        }
    }
}
