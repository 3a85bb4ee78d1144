// PmemService from C# with grpc-dotnet: the generated client (PmemService.Contracts) over the Unix
// socket. Maps (creating) a region, writes and reads it with unary calls, streams a buffer in with
// StreamWriteRegion and back out with StreamReadRegion (checking the server's CRC-64), persists,
// unmaps and deletes it. Exits 0 when every step checked out, 1 otherwise.
//
//   dotnet run --project examples/dotnet -- unix:///run/pmem/pmem.sock   (or PMEM_ADDRESS=...)
using System.IO.Hashing;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using PmemService.Contracts.V1;
using PmemGrpc = PmemService.Contracts.V1.PmemService;

var address = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("PMEM_ADDRESS") ?? "unix:data/pmem.sock";
var region = args.Length > 1 ? args[1] : $"dotnet-example-{Environment.ProcessId}";

// A Unix socket channel: any authority, and a handler that dials the socket.
var socketPath = Path.GetFullPath(address.StartsWith("unix://", StringComparison.Ordinal) ? address["unix://".Length..] : address["unix:".Length..]);
using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
{
    HttpHandler = new SocketsHttpHandler
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    },
    MaxReceiveMessageSize = 8 << 20,
});
var client = new PmemGrpc.PmemServiceClient(channel);
DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);

try
{
    const int size = 4 << 20;
    var mapped = await client.MapRegionAsync(new MapRegionRequest { Name = region, Size = size, RequiredGranularity = Granularity.Page, CreateIfMissing = true }, deadline: Deadline());
    Console.WriteLine($"map {region}: created={mapped.Region.Created} granularity={mapped.Region.EffectiveGranularity} references={mapped.Region.MapReferences}");

    var hello = ByteString.CopyFromUtf8("hello from .NET");
    var written = await client.WriteRegionAsync(new WriteRegionRequest { Name = region, Offset = 100, Data = hello }, deadline: Deadline());
    Check(written.BytesWritten == (ulong)hello.Length && written.Persisted, "unary write not persisted");
    var read = await client.ReadRegionAsync(new ReadRegionRequest { Name = region, Offset = 100, Length = (ulong)hello.Length }, deadline: Deadline());
    Check(read.Data == hello, "unary read differs");
    Console.WriteLine($"write/read: {read.Data.ToStringUtf8()}");

    var bulk = new byte[3 << 20];
    Random.Shared.NextBytes(bulk);
    using (var stream = client.StreamWriteRegion(deadline: Deadline()))
    {
        await stream.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = region, Offset = 4096, TotalLength = (ulong)bulk.Length } });
        for (var at = 0; at < bulk.Length; at += 256 << 10)
        {
            await stream.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(bulk, at, Math.Min(256 << 10, bulk.Length - at)) });
        }

        await stream.RequestStream.CompleteAsync();
        var response = await stream;
        var crc = Crc64.HashToUInt64(bulk);
        Check(response.BytesPersisted == (ulong)bulk.Length && response.PersistedOffset == 4096 + (ulong)bulk.Length, "stream write short");
        Check(response.Crc64 == crc && response.Crc64Hex == $"0x{crc:x16}", "server CRC-64 differs from ours");
        Console.WriteLine($"stream write: {response.BytesPersisted} bytes persisted, crc64 {response.Crc64Hex}");
    }

    var back = new MemoryStream();
    using (var stream = client.StreamReadRegion(new StreamReadRegionRequest { Name = region, Offset = 4096, Length = (ulong)bulk.Length, ChunkSize = 512 << 10 }, deadline: Deadline()))
    {
        await foreach (var chunk in stream.ResponseStream.ReadAllAsync())
        {
            Check(chunk.Offset == 4096 + (ulong)back.Length, $"chunk at {chunk.Offset}, expected {4096 + back.Length}");
            chunk.Data.WriteTo(back);
        }
    }

    Check(back.ToArray().AsSpan().SequenceEqual(bulk), "streamed read differs from what was written");
    Console.WriteLine($"stream read: {back.Length} bytes, identical");

    var persisted = await client.PersistRegionAsync(new PersistRegionRequest { Name = region }, deadline: Deadline());
    Console.WriteLine($"persist: {persisted.BytesPersisted} bytes");

    var info = await client.GetRegionAsync(new GetRegionRequest { Name = region }, deadline: Deadline());
    Check(info.Region.Mapped, "region not mapped");
    await client.UnmapRegionAsync(new UnmapRegionRequest { Name = region }, deadline: Deadline());
    await client.DeleteRegionAsync(new DeleteRegionRequest { Name = region }, deadline: Deadline());
    Console.WriteLine("unmap + delete: ok");
    Console.WriteLine(".NET example: OK");
    return 0;
}
catch (Exception e) when (e is RpcException or InvalidOperationException)
{
    Console.Error.WriteLine($".NET example FAILED: {(e is RpcException rpc ? $"{rpc.StatusCode} {rpc.Status.Detail}" : e.Message)}");
    return 1;
}

static void Check(bool condition, string what)
{
    if (!condition)
    {
        throw new InvalidOperationException(what);
    }
}
