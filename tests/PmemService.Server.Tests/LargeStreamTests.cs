using System.IO.Hashing;
using System.Buffers.Binary;
using Google.Protobuf;
using PmemService.Contracts.V1;
using Xunit.Abstractions;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>The one big-data test: 256 MiB streamed in 1 MiB chunks over the Unix socket, verified by CRC-64.</summary>
public sealed class LargeStreamTests : IClassFixture<SharedServerFixture>
{
    private readonly PmemTestServer _server;
    private readonly ITestOutputHelper _output;

    public LargeStreamTests(SharedServerFixture fixture, ITestOutputHelper output)
    {
        _server = fixture.Server;
        _output = output;
    }

    [Fact]
    public async Task Stream_of_256_MiB_in_1_MiB_chunks_round_trips_with_matching_crc64()
    {
        const int chunkSize = 1 << 20;
        const int chunks = 256;
        const ulong total = (ulong)chunkSize * chunks;
        var name = UniqueName("big");
        await CreateAsync(_server.Uds, name, total);

        var buffer = Pattern(chunkSize, 42);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var clientCrc = new Crc64();
        using (var call = _server.Uds.StreamWriteRegion())
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, TotalLength = total } });
            for (var i = 0; i < chunks; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(buffer, i); // every chunk distinct
                clientCrc.Append(buffer);
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(buffer) });
            }

            await call.RequestStream.CompleteAsync();
            var response = await call;
            Assert.Equal(total, response.BytesPersisted);
            Assert.Equal(total, response.PersistedOffset);
            Assert.Equal(clientCrc.GetCurrentHashAsUInt64(), response.Crc64);
        }

        _output.WriteLine($"StreamWriteRegion 256 MiB over UDS: {watch.Elapsed.TotalSeconds:F2} s ({256 / watch.Elapsed.TotalSeconds:F0} MiB/s)");
        watch.Restart();

        var readCrc = new Crc64();
        var expectedOffset = 0UL;
        using (var read = _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = chunkSize }))
        {
            while (await read.ResponseStream.MoveNext(CancellationToken.None))
            {
                Assert.Equal(expectedOffset, read.ResponseStream.Current.Offset);
                readCrc.Append(read.ResponseStream.Current.Data.Span);
                expectedOffset += (ulong)read.ResponseStream.Current.Data.Length;
            }
        }

        _output.WriteLine($"StreamReadRegion 256 MiB over UDS: {watch.Elapsed.TotalSeconds:F2} s ({256 / watch.Elapsed.TotalSeconds:F0} MiB/s)");
        Assert.Equal(total, expectedOffset);
        Assert.Equal(clientCrc.GetCurrentHashAsUInt64(), readCrc.GetCurrentHashAsUInt64());

        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
    }
}
