using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;
using Pmem2.Internal.Interop;

namespace Pmem2;

/// <summary>
/// What a mapping is made of (struct pmem2_source): a file descriptor of a regular file or a
/// device DAX, or anonymous memory. Creation validates the descriptor like pmem2_source_from_fd
/// (access mode and file type); size and alignment are asked for live.
/// </summary>
public sealed partial class Pmem2Source : IDisposable
{
    private readonly SafeFileHandle? _handle;
    private readonly bool _ownsHandle;
    private readonly ulong _anonymousSize;
    private volatile bool _disposed;

    private Pmem2Source(Pmem2SourceType type, SafeFileHandle? handle, bool ownsHandle, ulong anonymousSize, ulong rdev, ulong dev)
    {
        Type = type;
        _handle = handle;
        _ownsHandle = ownsHandle;
        _anonymousSize = anonymousSize;
        DeviceNumber = rdev;
        FileSystemDevice = dev;
    }

    /// <summary>pmem2_source_from_fd over a handle, borrowed: not duplicated, not disposed by the source
    /// (see <see cref="FromHandle(SafeFileHandle, bool)"/> to transfer ownership).</summary>
    public static Pmem2Source FromHandle(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        PlatformGuard.EnsureSupported();
        return FromValidatedHandle(handle, ownsHandle: false);
    }

    /// <summary>pmem2_source_from_fd over a raw descriptor (borrowed: not duplicated, not closed).</summary>
    [Obsolete("Ownership of the descriptor is implicit here (borrowed). Use FromBorrowedFileDescriptor(fd) or FromOwnedFileDescriptor(fd).")]
    public static Pmem2Source FromFileDescriptor(int fd) => FromBorrowedFileDescriptor(fd);

    /// <summary>
    /// pmem2_source_from_fd over a raw descriptor the caller keeps owning: it is neither duplicated nor
    /// closed by the source. Keep it open until the source is disposed (size queries, deep flush and
    /// mcsafe I/O use it; maps created from the source do not need it after creation).
    /// </summary>
    public static Pmem2Source FromBorrowedFileDescriptor(int fd)
    {
        PlatformGuard.EnsureSupported();
        if (fd < 0)
        {
            // libpmem2 returns INVALID_FILE_HANDLE here without setting a message.
            Errors.Throw(Pmem2ErrorCode.InvalidFileHandle, $"invalid file descriptor {fd}");
        }

        return FromValidatedHandle(new SafeFileHandle(fd, ownsHandle: false), ownsHandle: false);
    }

    /// <summary>Opens <paramref name="path"/> and wraps it; the source owns (and closes) the handle.
    /// Opening failures are thrown as -errno ("open \"path\": No such file or directory").</summary>
    public static Pmem2Source Open(string path, FileAccess access = FileAccess.ReadWrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        PlatformGuard.EnsureSupported();
        var flags = access switch
        {
            FileAccess.Read => LibC.O_RDONLY,
            FileAccess.Write => LibC.O_WRONLY,
            FileAccess.ReadWrite => LibC.O_RDWR,
            _ => throw new ArgumentOutOfRangeException(nameof(access), access, null),
        };

        // libc open rather than File.OpenHandle: .NET refuses directories and takes advisory locks,
        // while libpmem2 semantics need the raw descriptor (a directory must reach the type check).
        var handle = LibC.open(path, flags | LibC.O_CLOEXEC, 0);
        if (handle.IsInvalid)
        {
            var errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            Errors.ThrowErrno(errno, $"open \"{path}\"");
        }

        try
        {
            return FromValidatedHandle(handle, ownsHandle: true);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>pmem2_source_from_anon: zero-filled anonymous memory of <paramref name="size"/> bytes.</summary>
    public static Pmem2Source FromAnonymous(ulong size)
    {
        PlatformGuard.EnsureSupported();
        return new Pmem2Source(Pmem2SourceType.Anonymous, null, false, size, 0, 0);
    }

    /// <summary>Kind of source.</summary>
    public Pmem2SourceType Type { get; }

    /// <summary>The wrapped handle (null for anonymous sources).</summary>
    public SafeFileHandle? Handle => _handle;

    /// <summary>st_rdev of the descriptor at creation (device DAX major:minor).</summary>
    internal ulong DeviceNumber { get; }

    /// <summary>st_dev of the descriptor at creation.</summary>
    internal ulong FileSystemDevice { get; }

    /// <summary>pmem2_source_get_fd. Throws FILE_DESCRIPTOR_NOT_SET for anonymous sources.</summary>
    public int GetFileDescriptor()
    {
        ThrowIfDisposed();
        if (_handle is null)
        {
            Errors.Throw(Pmem2ErrorCode.FileDescriptorNotSet, "File descriptor is not set, source type does not support fd");
        }

        return (int)_handle.DangerousGetHandle();
    }

    /// <summary>pmem2_source_size: live size (fstat on every call for files).</summary>
    public ulong GetSize()
    {
        ThrowIfDisposed();
        if (_handle is null)
        {
            return _anonymousSize;
        }

        var st = FStat(_handle);
        switch (Type)
        {
            case Pmem2SourceType.DeviceDax:
                return DeviceDax.Size(DeviceNumber);
            default:
                if (st.st_size < 0)
                {
                    Errors.Throw(Pmem2ErrorCode.InvalidFileHandle, $"kernel says size of regular file is negative ({st.st_size})");
                }

                return (ulong)st.st_size;
        }
    }

    /// <summary>pmem2_source_alignment: required offset / length alignment.</summary>
    public ulong GetAlignment()
    {
        ThrowIfDisposed();
        var alignment = Type == Pmem2SourceType.DeviceDax ? DeviceDax.Alignment(DeviceNumber) : (ulong)Environment.SystemPageSize;
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        {
            Errors.Throw(Pmem2ErrorCode.InvalidAlignmentValue, $"alignment ({alignment}) has to be a power of two");
        }

        return alignment;
    }

    /// <summary>pmem2_source_numa_node: the NUMA node of the NVDIMM region behind the source
    /// (NOSUPP for anonymous memory, DAX_REGION_NOT_FOUND when the source is not on a region).</summary>
    public int GetNumaNode()
    {
        ThrowIfDisposed();
        if (Type == Pmem2SourceType.Anonymous)
        {
            Errors.Throw(Pmem2ErrorCode.NoSupp, "Anonymous sources are not bound to numa nodes.");
        }

        var region = NdRegion.Find(this) ?? throw new Pmem2Exception(Pmem2ErrorCode.DaxRegionNotFound, "unknown region");
        return NdRegion.NumaNode(region);
    }

    /// <summary>pmem2_source_device_usc: the sum of the unsafe (dirty) shutdown counts of the region's
    /// DIMMs; NOSUPP for anonymous memory, a source off any region, or a DIMM that does not report it.</summary>
    public ulong GetDeviceUsc()
    {
        ThrowIfDisposed();
        if (Type == Pmem2SourceType.Anonymous)
        {
            Errors.Throw(Pmem2ErrorCode.NoSupp, "Anonymous source does not support unsafe shutdown count");
        }

        var region = NdRegion.Find(this) ?? throw new Pmem2Exception(Pmem2ErrorCode.NoSupp, "Unsafe shutdown count is not supported for this source");
        ulong usc = 0;
        foreach (var dimm in NdRegion.Dimms(region))
        {
            var count = NdRegion.DirtyShutdown(dimm);
            if (count < 0)
            {
                Errors.Throw(Pmem2ErrorCode.NoSupp, "Unsafe shutdown count is not supported for this source");
            }

            usc += (ulong)count;
        }

        return usc;
    }

    /// <summary>pmem2_source_device_id: the concatenated unique ids of the region's DIMMs; NOSUPP for
    /// anonymous memory, a source off any region, or a DIMM without an id.</summary>
    public string GetDeviceId()
    {
        ThrowIfDisposed();
        if (Type == Pmem2SourceType.Anonymous)
        {
            Errors.Throw(Pmem2ErrorCode.NoSupp, "Anonymous source does not have device id");
        }

        var region = NdRegion.Find(this) ?? throw new Pmem2Exception(Pmem2ErrorCode.NoSupp, "unknown region");
        var id = new System.Text.StringBuilder();
        foreach (var dimm in NdRegion.Dimms(region))
        {
            id.Append(NdRegion.UniqueId(dimm) ?? throw new Pmem2Exception(Pmem2ErrorCode.NoSupp, $"{dimm} has no unique id"));
        }

        return id.ToString();
    }

    /// <summary>
    /// pmem2_source_pread_mcsafe for regular files: reads <paramref name="destination"/>.Length bytes at
    /// <paramref name="offset"/> with pread; EIO (a bad block under the file) is IO_FAIL, a range past
    /// the end is LENGTH_OUT_OF_RANGE, an anonymous source SOURCE_TYPE_NOT_SUPPORTED. Device DAX (which
    /// libpmem2 reads through a temporary mapping under a SIGBUS handler) is NOSUPP here.
    /// </summary>
    public unsafe void PreadMcsafe(Span<byte> destination, ulong offset)
    {
        var handle = McsafeHandle(offset, (ulong)destination.Length);
        fixed (byte* p = destination)
        {
            McsafeLoop(handle, p, (nuint)destination.Length, offset, write: false);
        }
    }

    /// <summary>pmem2_source_pwrite_mcsafe for regular files (see <see cref="PreadMcsafe"/>).</summary>
    public unsafe void PwriteMcsafe(ReadOnlySpan<byte> source, ulong offset)
    {
        var handle = McsafeHandle(offset, (ulong)source.Length);
        fixed (byte* p = source)
        {
            McsafeLoop(handle, p, (nuint)source.Length, offset, write: true);
        }
    }

    private SafeFileHandle McsafeHandle(ulong offset, ulong length)
    {
        ThrowIfDisposed();
        if (_handle is null)
        {
            Errors.Throw(Pmem2ErrorCode.SourceTypeNotSupported,
                "operation doesn't support provided source type, only sources created from file descriptor or file handle are supported");
        }

        if (Type == Pmem2SourceType.DeviceDax)
        {
            Errors.Throw(Pmem2ErrorCode.NoSupp, "machine-check-safe I/O on device DAX is not supported");
        }

        // libpmem2 checks only "length > size - offset" in unsigned arithmetic and prints that remainder
        // as "the file length" (for both reads and writes). An offset past the end wraps the remainder
        // around and passes its check (reading nothing or writing past the end); ours refuses it.
        var size = GetSize();
        var remaining = unchecked(size - offset);
        if (length > remaining)
        {
            Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, $"size of read {length} from offset {offset} goes beyond the file length {remaining}");
        }

        if (offset > size)
        {
            Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, $"offset {offset} goes beyond the file length {size}");
        }

        return _handle;
    }

    private static unsafe void McsafeLoop(SafeFileHandle handle, byte* buffer, nuint length, ulong offset, bool write)
    {
        while (length > 0)
        {
            var n = write
                ? LibC.pwrite(handle, buffer, length, (long)offset)
                : LibC.pread(handle, buffer, length, (long)offset);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR)
                {
                    continue;
                }

                var what = write ? "pwrite" : "pread";
                throw errno == LibC.EIO ? Errors.FromErrno(Pmem2ErrorCode.IoFail, errno, what) : Errors.FromErrno(errno, what);
            }

            if (n == 0)
            {
                // The file shrank under us between the size check and the read.
                Errors.Throw(Pmem2ErrorCode.LengthOutOfRange, $"the file ended at offset {offset} during the read");
            }

            buffer += n;
            length -= (nuint)n;
            offset += (ulong)n;
        }
    }

    /// <summary>pmem2_source_delete. Closes the handle only when the source owns it.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_ownsHandle)
        {
            _handle?.Dispose();
        }
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private static Pmem2Source FromValidatedHandle(SafeFileHandle handle, bool ownsHandle)
    {
        if (handle.IsInvalid || handle.IsClosed)
        {
            Errors.Throw(Pmem2ErrorCode.InvalidFileHandle, $"fcntl: {Errors.StrError(LibC.EBADF)}");
        }

        int flags;
        try
        {
            flags = LibC.fcntl(handle, LibC.F_GETFL, 0);
        }
        catch (ObjectDisposedException)
        {
            flags = -1;
            Marshal.SetLastPInvokeError(LibC.EBADF);
        }

        if (flags == -1)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw Errors.FromErrno(errno == LibC.EBADF ? Pmem2ErrorCode.InvalidFileHandle : (Pmem2ErrorCode)(-errno), errno, "fcntl");
        }

        if ((flags & LibC.O_ACCMODE) == LibC.O_WRONLY)
        {
            Errors.Throw(Pmem2ErrorCode.InvalidFileHandle, "fd must be open with O_RDONLY or O_RDWR");
        }

        var st = FStat(handle);
        var type = (st.st_mode & LibC.S_IFMT) switch
        {
            LibC.S_IFREG => Pmem2SourceType.RegularFile,
            LibC.S_IFDIR => throw new Pmem2Exception(Pmem2ErrorCode.InvalidFileType, "cannot set fd to directory in pmem2_source_from_fd"),
            LibC.S_IFCHR => DeviceDax.IsDeviceDax(st.st_rdev)
                ? Pmem2SourceType.DeviceDax
                : throw new Pmem2Exception(Pmem2ErrorCode.InvalidFileType,
                    $"character device {LibC.Major(st.st_rdev)}:{LibC.Minor(st.st_rdev)} is not a device DAX"),
            var other => throw new Pmem2Exception(Pmem2ErrorCode.InvalidFileType, $"file type 0{Convert.ToString(other, 8)} not supported"),
        };

        return new Pmem2Source(type, handle, ownsHandle, 0, st.st_rdev, st.st_dev);
    }

    /// <summary>fstat, with EBADF (or a closed SafeFileHandle) reported as INVALID_FILE_HANDLE.</summary>
    internal static unsafe Stat FStat(SafeFileHandle handle)
    {
        Stat st = default;
        int rc;
        try
        {
            rc = handle.IsClosed ? -1 : LibC.fstat(handle, &st);
            if (rc != 0 && handle.IsClosed)
            {
                Marshal.SetLastPInvokeError(LibC.EBADF);
            }
        }
        catch (ObjectDisposedException)
        {
            rc = -1;
            Marshal.SetLastPInvokeError(LibC.EBADF);
        }

        if (rc != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw Errors.FromErrno(errno == LibC.EBADF ? Pmem2ErrorCode.InvalidFileHandle : (Pmem2ErrorCode)(-errno), errno, "fstat");
        }

        return st;
    }
}
