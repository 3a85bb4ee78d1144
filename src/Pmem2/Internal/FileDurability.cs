using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>The system calls behind <see cref="Pmem2Files"/>.</summary>
internal static class FileDurability
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
}
