using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Pmem2.Internal;

namespace Pmem2;

/// <summary>
/// Passing file descriptors over a connected Unix domain socket (<c>sendmsg</c>/<c>recvmsg</c>
/// with one <c>SCM_RIGHTS</c> control message, as the Plasma object store hands out its mapped
/// files) and reading a file descriptor's access mode. The socket stays owned by its
/// <see cref="Socket"/>; every call holds a reference on its handle. A received descriptor is
/// <c>O_CLOEXEC</c> (<c>MSG_CMSG_CLOEXEC</c>) and owned by the returned <see cref="SafeFileHandle"/>;
/// extra descriptors a peer may have packed into the message are closed, never leaked.
/// </summary>
public static unsafe partial class Pmem2DescriptorPassing
{
    private const int SOL_SOCKET = 1;
    private const int SCM_RIGHTS = 1;
    private const int MSG_NOSIGNAL = 0x4000;
    private const int MSG_CTRUNC = 0x8;
    private const int MSG_CMSG_CLOEXEC = 0x40000000;
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int F_GETFL = 3;
    private const int O_ACCMODE = 3;

    /// <summary>Control buffer room: CMSG_SPACE of 8 descriptors (a peer sending more gets MSG_CTRUNC).</summary>
    private const int ControlSpace = 64;

    /// <summary>
    /// Sends <paramref name="payload"/> (at least one byte) with <paramref name="descriptor"/> attached as
    /// SCM_RIGHTS. Blocks until sent (bounded by <paramref name="timeout"/> when the socket is non-blocking).
    /// Throws <see cref="Pmem2Exception"/> with the negated errno on failure.
    /// </summary>
    public static void Send(Socket socket, ReadOnlySpan<byte> payload, SafeFileHandle descriptor, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(descriptor);
        if (payload.IsEmpty)
        {
            throw new ArgumentException("A descriptor travels with at least one byte of data.", nameof(payload));
        }

        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var socketAdded = false;
        var fdAdded = false;
        var handle = socket.SafeHandle;
        handle.DangerousAddRef(ref socketAdded);
        descriptor.DangerousAddRef(ref fdAdded);
        try
        {
            var control = stackalloc byte[ControlSpace];
            new Span<byte>(control, ControlSpace).Clear();
            var header = (CmsgHeader*)control;
            header->Length = (nuint)(sizeof(CmsgHeader) + sizeof(int));
            header->Level = SOL_SOCKET;
            header->Type = SCM_RIGHTS;
            *(int*)(control + sizeof(CmsgHeader)) = (int)descriptor.DangerousGetHandle();
            fixed (byte* data = payload)
            {
                var iov = new IoVec { Base = data, Length = (nuint)payload.Length };
                var message = new MsgHeader
                {
                    Iov = &iov,
                    IovLength = 1,
                    Control = control,
                    ControlLength = (nuint)(sizeof(CmsgHeader) + 8), // CMSG_SPACE(sizeof(int))
                };
                while (true)
                {
                    var sent = sendmsg((int)handle.DangerousGetHandle(), &message, MSG_NOSIGNAL);
                    if (sent >= 0)
                    {
                        if (sent != payload.Length)
                        {
                            throw new Pmem2Exception((Pmem2ErrorCode)(-EAGAIN), $"sendmsg sent {sent} of {payload.Length} bytes.");
                        }

                        return;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR)
                    {
                        continue;
                    }

                    if (errno == EAGAIN && Environment.TickCount64 < deadline)
                    {
                        socket.Poll(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)), SelectMode.SelectWrite);
                        continue;
                    }

                    throw Errors.FromErrno(errno, "sendmsg(SCM_RIGHTS)");
                }
            }
        }
        finally
        {
            if (fdAdded)
            {
                descriptor.DangerousRelease();
            }

            if (socketAdded)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="buffer"/>, waiting at most <paramref name="timeout"/>;
    /// returns the byte count (0 at end of stream) and the descriptor that came with it, if exactly one
    /// did (null otherwise; any others are closed).
    /// </summary>
    public static int Receive(Socket socket, Span<byte> buffer, TimeSpan timeout, out SafeFileHandle? descriptor)
    {
        ArgumentNullException.ThrowIfNull(socket);
        descriptor = null;
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var added = false;
        var handle = socket.SafeHandle;
        handle.DangerousAddRef(ref added);
        try
        {
            var control = stackalloc byte[ControlSpace];
            fixed (byte* data = buffer)
            {
                while (true)
                {
                    new Span<byte>(control, ControlSpace).Clear();
                    var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
                    var message = new MsgHeader { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSpace };
                    var received = recvmsg((int)handle.DangerousGetHandle(), &message, MSG_CMSG_CLOEXEC);
                    if (received < 0)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno == EINTR)
                        {
                            continue;
                        }

                        var left = deadline - Environment.TickCount64;
                        if (errno == EAGAIN && left > 0)
                        {
                            socket.Poll(TimeSpan.FromMilliseconds(left), SelectMode.SelectRead);
                            continue;
                        }

                        throw Errors.FromErrno(errno == EAGAIN ? 110 /* ETIMEDOUT */ : errno, "recvmsg(SCM_RIGHTS)");
                    }

                    descriptor = TakeDescriptors(control, (int)Math.Min(message.ControlLength, ControlSpace));
                    if ((message.Flags & MSG_CTRUNC) != 0)
                    {
                        descriptor?.Dispose();
                        descriptor = null;
                    }

                    return (int)received;
                }
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>The access mode of an open descriptor (fcntl F_GETFL &amp; O_ACCMODE): Read, Write or ReadWrite.</summary>
    public static FileAccess GetAccessMode(SafeFileHandle descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var added = false;
        descriptor.DangerousAddRef(ref added);
        try
        {
            var flags = fcntl((int)descriptor.DangerousGetHandle(), F_GETFL, 0);
            if (flags < 0)
            {
                throw Errors.FromErrno(Marshal.GetLastPInvokeError(), "fcntl(F_GETFL)");
            }

            return (flags & O_ACCMODE) switch
            {
                0 => FileAccess.Read,
                1 => FileAccess.Write,
                _ => FileAccess.ReadWrite,
            };
        }
        finally
        {
            if (added)
            {
                descriptor.DangerousRelease();
            }
        }
    }

    /// <summary>Walks the control messages: the first SCM_RIGHTS descriptor is kept if it is the only one; every other is closed.</summary>
    private static SafeFileHandle? TakeDescriptors(byte* control, int length)
    {
        var fds = new List<int>();
        var offset = 0;
        while (offset + sizeof(CmsgHeader) <= length)
        {
            var header = (CmsgHeader*)(control + offset);
            var cmsgLength = (int)header->Length;
            if (cmsgLength < sizeof(CmsgHeader) || offset + cmsgLength > length)
            {
                break;
            }

            if (header->Level == SOL_SOCKET && header->Type == SCM_RIGHTS)
            {
                var count = (cmsgLength - sizeof(CmsgHeader)) / sizeof(int);
                for (var i = 0; i < count; i++)
                {
                    fds.Add(*(int*)(control + offset + sizeof(CmsgHeader) + (i * sizeof(int))));
                }
            }

            offset += (cmsgLength + 7) & ~7;
        }

        if (fds.Count == 1)
        {
            return new SafeFileHandle(fds[0], ownsHandle: true);
        }

        foreach (var fd in fds)
        {
            _ = close(fd);
        }

        return null;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CmsgHeader
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(int socket, MsgHeader* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvmsg(int socket, MsgHeader* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
