using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace Pmem2.Tests;

/// <summary>SCM_RIGHTS descriptor passing over a real Unix socket, F_GETFL access modes, and the 8-byte atomics.</summary>
public sealed class DescriptorPassingTests
{
    private static (Socket Client, Socket Server, TempDir Dir) Pair()
    {
        var dir = new TempDir();
        var path = Path.Combine(dir.Path, "s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(path));
        return (client, listener.Accept(), dir);
    }

    [Theory]
    [InlineData(FileAccess.Read)]
    [InlineData(FileAccess.ReadWrite)]
    public void A_sent_descriptor_arrives_as_a_new_descriptor_of_the_same_file_with_its_access_mode(FileAccess access)
    {
        using var file = new TempFile(8192);
        var (client, server, dir) = Pair();
        using (dir)
        using (client)
        using (server)
        using (var original = file.OpenHandle(access))
        {
            Assert.Equal(access, Pmem2DescriptorPassing.GetAccessMode(original));
            Pmem2DescriptorPassing.Send(server, [42], original, TimeSpan.FromSeconds(5));
            var buffer = new byte[16];
            var n = Pmem2DescriptorPassing.Receive(client, buffer, TimeSpan.FromSeconds(5), out var received);
            using (received)
            {
                Assert.Equal(1, n);
                Assert.Equal(42, buffer[0]);
                Assert.NotNull(received);
                Assert.NotEqual(original.DangerousGetHandle(), received.DangerousGetHandle());
                Assert.True(Pmem2Files.GetStatus(received).IsSameFile(Pmem2Files.GetStatus(original)));
                Assert.Equal(access, Pmem2DescriptorPassing.GetAccessMode(received));
            }
        }
    }

    [Fact]
    public void A_message_without_a_descriptor_gives_none_and_a_closed_peer_gives_zero_bytes()
    {
        var (client, server, dir) = Pair();
        using (dir)
        using (client)
        {
            server.Send([1, 2, 3]);
            var buffer = new byte[16];
            Assert.Equal(3, Pmem2DescriptorPassing.Receive(client, buffer, TimeSpan.FromSeconds(5), out var none));
            Assert.Null(none);
            server.Dispose();
            Assert.Equal(0, Pmem2DescriptorPassing.Receive(client, buffer, TimeSpan.FromSeconds(5), out none));
            Assert.Null(none);
        }
    }

    [Fact]
    public void Receive_times_out_when_nothing_arrives()
    {
        var (client, server, dir) = Pair();
        using (dir)
        using (client)
        using (server)
        {
            client.Blocking = false;
            var e = Assert.Throws<Pmem2Exception>(() => Pmem2DescriptorPassing.Receive(client, new byte[4], TimeSpan.FromMilliseconds(50), out _));
            Assert.Equal(110, e.Errno); // ETIMEDOUT
        }
    }

    [Fact]
    public void Atomic_store_and_compare_exchange_persist_aligned_8_byte_words()
    {
        using var file = new TempFile(8192);
        using var source = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), source);
        map.AtomicStore64(64, 5);
        Assert.Equal(5, map.AtomicLoad64(64));
        Assert.Equal(5, map.CompareExchange64(64, 9, 5));
        Assert.Equal(9, map.CompareExchange64(64, 1, 5)); // stale comparand: unchanged
        Assert.Equal(9, map.AtomicLoad64(64));
        Assert.Equal(9, BitConverter.ToInt64(File.ReadAllBytes(file.Path), 64)); // the file has it
        Assert.Throws<ArgumentException>(() => map.AtomicStore64(65, 1));
        Assert.Throws<ArgumentException>(() => map.CompareExchange64(4, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.AtomicStore64(8192, 1));

        using var readOnly = file.OpenSource(FileAccess.Read);
        using var roMap = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Protection = Pmem2Protection.Read }, readOnly);
        Assert.Equal(9, roMap.AtomicLoad64(64));
        Assert.Throws<UnauthorizedAccessException>(() => roMap.AtomicStore64(64, 1));
        Assert.Throws<UnauthorizedAccessException>(() => roMap.CompareExchange64(64, 1, 9));
        Assert.Throws<UnauthorizedAccessException>(() => roMap.FetchAdd64(64, 1));
    }

    [Fact]
    public async Task Fetch_add_is_atomic_across_threads_wraps_and_persists()
    {
        using var file = new TempFile(8192);
        using var source = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), source);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            for (var i = 0; i < 2000; i++)
            {
                map.FetchAdd64(128, 1);
            }
        })));
        Assert.Equal(8000, map.AtomicLoad64(128));
        Assert.Equal(8000, map.FetchAdd64(128, -8001));
        Assert.Equal(-1, BitConverter.ToInt64(File.ReadAllBytes(file.Path), 128)); // persisted in the file
        map.AtomicStore64(136, long.MaxValue);
        Assert.Equal(long.MaxValue, map.FetchAdd64(136, 1));
        Assert.Equal(long.MinValue, map.AtomicLoad64(136)); // wraps
        Assert.Throws<ArgumentException>(() => map.FetchAdd64(130, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.FetchAdd64(8192, 1));
    }
}
