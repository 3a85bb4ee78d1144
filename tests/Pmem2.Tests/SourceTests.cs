using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace Pmem2.Tests;

/// <summary>Port of src/test/pmem2_source, pmem2_source_size and pmem2_source_alignment.</summary>
public class SourceTests
{
    [Theory]
    [InlineData(FileAccess.ReadWrite)]
    [InlineData(FileAccess.Read)]
    public void ReadableDescriptorsAreAccepted(FileAccess access)
    {
        using var file = new TempFile(16 * (long)T.MiB);
        using var handle = file.OpenHandle(access);
        using var src = Pmem2Source.FromHandle(handle);
        Assert.Equal(Pmem2SourceType.RegularFile, src.Type);
        Assert.Same(handle, src.Handle);
        Assert.Equal((int)handle.DangerousGetHandle(), src.GetFileDescriptor());
    }

    [Fact]
    public void RawDescriptorIsWrappedNotOwned()
    {
        using var file = new TempFile(4096);
        using var handle = file.OpenHandle();
        var fd = (int)handle.DangerousGetHandle();
        using (var src = Pmem2Source.FromBorrowedFileDescriptor(fd))
        {
            Assert.Equal(fd, src.GetFileDescriptor());
            Assert.Equal(4096UL, src.GetSize());
        }

        // The source did not close the descriptor.
        Assert.Equal(4096, RandomAccess.GetLength(handle));
    }

    [Fact]
    public void WriteOnlyDescriptorIsRefused()
    {
        using var file = new TempFile(4096);
        using var handle = file.OpenHandle(FileAccess.Write);
        var e = T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Source.FromHandle(handle));
        Assert.Equal("fd must be open with O_RDONLY or O_RDWR", e.Message);
        T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Source.Open(file.Path, FileAccess.Write));
    }

    [Fact]
    public void ClosedDescriptorIsRefused()
    {
        using var file = new TempFile(4096);
        var handle = file.OpenHandle();
        var fd = (int)handle.DangerousGetHandle();
        handle.Dispose();
        T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Source.FromHandle(handle));
        // A raw descriptor number that is no longer open (fcntl: EBADF). Use a number far above any
        // descriptor this process can have open so a parallel test cannot reuse it.
        var e = T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Source.FromBorrowedFileDescriptor(1_000_000));
        Assert.Equal("fcntl: Bad file descriptor", e.Message);
        T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => Pmem2Source.FromBorrowedFileDescriptor(-1));
        Assert.True(fd >= 0);
    }

    [Fact]
    public void DirectoryIsRefused()
    {
        using var dir = new TempDir();
        var e = T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.Open(dir.Path, FileAccess.Read));
        Assert.Equal("cannot set fd to directory in pmem2_source_from_fd", e.Message);
    }

    [Fact]
    public void FifoIsRefused()
    {
        using var dir = new TempDir();
        var fifo = Path.Combine(dir.Path, "fifo");
        using (var p = System.Diagnostics.Process.Start("mkfifo", fifo))
        {
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
        }

        // O_RDWR on a FIFO does not block on Linux.
        var e = T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.Open(fifo, FileAccess.ReadWrite));
        Assert.Equal("file type 010000 not supported", e.Message);
    }

    [Fact]
    public void SocketIsRefused()
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var e = T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.FromBorrowedFileDescriptor((int)socket.Handle));
        Assert.Equal("file type 0140000 not supported", e.Message);
    }

    [Fact]
    public void NonDaxCharacterDeviceIsRefused()
    {
        T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.Open("/dev/null", FileAccess.ReadWrite));
        T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.Open("/dev/zero", FileAccess.Read));
    }

    [Fact]
    public void MissingPathIsErrno()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pmem2-missing-{Guid.NewGuid():N}");
        var e = T.Fails((Pmem2ErrorCode)(-2), () => Pmem2Source.Open(path));
        Assert.Equal(2, e.Errno);
        Assert.Equal($"open \"{path}\": No such file or directory", e.Message);
    }

    [Fact]
    public void AnonymousSourceHasNoDescriptor()
    {
        using var src = Pmem2Source.FromAnonymous(0);
        Assert.Equal(Pmem2SourceType.Anonymous, src.Type);
        Assert.Null(src.Handle);
        Assert.Equal(0UL, src.GetSize());
        Assert.Equal(4096UL, src.GetAlignment());
        var e = T.Fails(Pmem2ErrorCode.FileDescriptorNotSet, () => src.GetFileDescriptor());
        Assert.Equal("File descriptor is not set, source type does not support fd", e.Message);
        using var big = Pmem2Source.FromAnonymous(1UL << 30);
        Assert.Equal(1UL << 30, big.GetSize());
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(16L << 20)]
    public void SizeIsExact(long size)
    {
        using var file = new TempFile(size);
        using var src = file.OpenSource();
        Assert.Equal((ulong)size, src.GetSize());
        Assert.Equal(4096UL, src.GetAlignment());
    }

    [Fact]
    public void SizeIsLive()
    {
        using var file = new TempFile(0);
        using var handle = file.OpenHandle();
        using var src = Pmem2Source.FromHandle(handle);
        Assert.Equal(0UL, src.GetSize());
        RandomAccess.SetLength(handle, 16 << 20);
        Assert.Equal(16UL << 20, src.GetSize());
        RandomAccess.SetLength(handle, 3072);
        Assert.Equal(3072UL, src.GetSize());
    }

    [Fact]
    public void SizeOfClosedHandleIsInvalidFileHandle()
    {
        using var file = new TempFile(4096);
        var handle = file.OpenHandle();
        using var src = Pmem2Source.FromHandle(handle);
        handle.Dispose();
        var e = T.Fails(Pmem2ErrorCode.InvalidFileHandle, () => src.GetSize());
        Assert.Equal("fstat: Bad file descriptor", e.Message);
    }

    [Fact]
    public void OwnedSourceClosesItsHandleOnce()
    {
        using var file = new TempFile(4096);
        var src = file.OpenSource();
        var handle = src.Handle!;
        Assert.False(handle.IsClosed);
        src.Dispose();
        src.Dispose();
        Assert.True(handle.IsClosed);
        Assert.Throws<ObjectDisposedException>(() => src.GetSize());
    }

    [Fact]
    public void BorrowedHandleStaysOpen()
    {
        using var file = new TempFile(4096);
        using SafeFileHandle handle = file.OpenHandle();
        Pmem2Source.FromHandle(handle).Dispose();
        Assert.False(handle.IsClosed);
    }
}
