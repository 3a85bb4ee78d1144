using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using PmemService.Contracts.V1;
using PmemService.Server.Internal;
using PmemService.Server.Internal.DataPath;
using Xunit.Abstractions;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>
/// StreamReadRegion's one-copy response serializer (<see cref="StreamReadChunkSerializer"/>): against a
/// real server through a raw byte[] method (the exact wire bytes of every message, compared with what
/// the generated serializer would have written), and directly with a serialization context that
/// behaves like grpc-dotnet's direct path, for the failure case (a read that fails after the
/// message header is already in the pipe).
/// </summary>
public sealed class ZeroCopyReadTests : IClassFixture<SharedServerFixture>
{
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(static b => b, static b => b);
    private static readonly Method<byte[], byte[]> RawStreamRead = new(MethodType.ServerStreaming, "pmem.v1.PmemService", "StreamReadRegion", Raw, Raw);

    private readonly PmemTestServer _server;
    private readonly ITestOutputHelper _output;

    public ZeroCopyReadTests(SharedServerFixture fixture, ITestOutputHelper output)
    {
        _server = fixture.Server;
        _output = output;
    }

    private static async Task<List<byte[]>> RawReadAsync(GrpcChannel channel, StreamReadRegionRequest request)
    {
        using var call = channel.CreateCallInvoker().AsyncServerStreamingCall(RawStreamRead, null, new CallOptions(), request.ToByteArray());
        var messages = new List<byte[]>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            messages.Add(call.ResponseStream.Current);
        }

        return messages;
    }

    private const int RegionSize = (3 << 20) + 321;

    /// <summary>Creates region <paramref name="name"/> and writes <see cref="Pattern"/>(<paramref name="dataLength"/>, <paramref name="seed"/>) at offset 0, 1 MiB per call.</summary>
    private static async Task<byte[]> CreateWithPatternAsync(PmemService.Contracts.V1.PmemService.PmemServiceClient client, string name, int regionSize, int dataLength, int seed)
    {
        await CreateAsync(client, name, (ulong)regionSize);
        var data = Pattern(dataLength, seed);
        for (var at = 0; at < data.Length; at += 1 << 20)
        {
            var n = Math.Min(1 << 20, data.Length - at);
            await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = (ulong)at, Data = ByteString.CopyFrom(data, at, n) });
        }

        return data;
    }

    [Theory]
    [InlineData(1u, 4097UL, 3001UL)]
    [InlineData(4095u, 1UL, (4095UL * 3) + 17)]
    [InlineData(4096u, 4096UL, 4096UL * 4)]         // no partial last chunk
    [InlineData(4096u, 4093UL, (4096UL * 4) + 1)]   // a last chunk of one byte
    [InlineData(65536u, 7UL, (65536UL * 2) + 5)]
    [InlineData(1u << 20, 3UL, (2UL << 20) + 999)]
    [InlineData(0u, 65535UL, 200_003UL)]            // the default chunk (64 KiB)
    [InlineData(0u, 0UL, 0UL)]                      // the whole region, offset 0 (no offset field in the first message)
    [InlineData(1u << 20, 5UL, 0UL)]                // to the end from an unaligned offset
    [InlineData(65536u, (ulong)RegionSize, 0UL)]    // from the end: nothing
    public async Task StreamReadRegion_round_trips_byte_for_byte_in_the_generated_wire_format(uint chunkSize, ulong offset, ulong length)
    {
        var name = UniqueName("zread");
        var data = await CreateWithPatternAsync(_server.Uds, name, RegionSize, RegionSize, (int)chunkSize + (int)offset);

        // Both transports: the Unix socket and TCP (h2c) answer through the same serializer.
        var channel = (offset & 1) == 0 ? _server.UdsChannel : _server.TcpChannel;
        var messages = await RawReadAsync(channel, new StreamReadRegionRequest { Name = name, Offset = offset, Length = length, ChunkSize = chunkSize });

        var expectedLength = length == 0 ? (ulong)RegionSize - offset : length;
        var chunk = chunkSize == 0 ? 65536UL : chunkSize;
        Assert.Equal((int)((expectedLength + chunk - 1) / chunk), messages.Count);
        var received = new MemoryStream();
        var next = offset;
        foreach (var raw in messages)
        {
            var message = StreamReadRegionResponse.Parser.ParseFrom(raw);
            Assert.Equal(next, message.Offset);
            Assert.Equal((int)Math.Min(chunk, offset + expectedLength - next), message.Data.Length);
            // Exactly the bytes the generated serializer writes for the same message (field order, an
            // omitted offset field at 0, no unknown fields).
            Assert.Equal(message.ToByteArray(), raw);
            message.Data.WriteTo(received);
            next += (ulong)message.Data.Length;
        }

        Assert.Equal(data.AsSpan((int)offset, (int)expectedLength).ToArray(), received.ToArray());
        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
    }

    [Fact]
    public async Task StreamReadRegion_through_the_generated_client_reads_the_whole_region()
    {
        var name = UniqueName("zgen");
        var data = await CreateWithPatternAsync(_server.Uds, name, 1 << 20, 1 << 20, 3);

        using var call = _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 100_000 });
        var back = new MemoryStream();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            Assert.Equal((ulong)back.Length, call.ResponseStream.Current.Offset);
            call.ResponseStream.Current.Data.WriteTo(back);
        }

        Assert.Equal(data, back.ToArray());
        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
    }

    // ---- the serializer alone --------------------------------------------------------------------

    /// <summary>
    /// What grpc-dotnet's HttpContextSerializationContext does without compression: with the payload
    /// length set, GetBufferWriter writes the 5-byte message header into the pipe and returns the pipe.
    /// </summary>
    private sealed class DirectPipeContext : SerializationContext
    {
        private readonly ArrayBufferWriter<byte> _pipe = new();
        private int? _payloadLength;

        public bool Completed { get; private set; }

        public ReadOnlySpan<byte> Written => _pipe.WrittenSpan;

        public override void SetPayloadLength(int payloadLength) => _payloadLength = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter()
        {
            Assert.NotNull(_payloadLength); // otherwise grpc-dotnet buffers (a second copy)
            var header = _pipe.GetSpan(5);
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)_payloadLength.Value);
            _pipe.Advance(5);
            return _pipe;
        }

        public override void Complete() => Completed = true;

        public override void Complete(byte[] payload) => throw new InvalidOperationException("the serializer must write into the pipe");

        /// <summary>The one framed message: its header's length matches what follows.</summary>
        public byte[] Payload()
        {
            Assert.True(Completed);
            Assert.Equal(0, Written[0]);
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(Written[1..5]);
            Assert.Equal(Written.Length - 5, length);
            return Written[5..].ToArray();
        }
    }

    private sealed class PatternReader : IRegionReader
    {
        public void Read(ulong offset, Span<byte> destination)
        {
            for (var i = 0; i < destination.Length; i++)
            {
                destination[i] = (byte)((offset + (ulong)i) * 31);
            }
        }
    }

    /// <summary>Fills part of the destination (a short read), then fails.</summary>
    private sealed class FailingReader(int filled, Exception error) : IRegionReader
    {
        public void Read(ulong offset, Span<byte> destination)
        {
            destination[..Math.Min(filled, destination.Length)].Fill(0xEE);
            throw error;
        }
    }

    public static TheoryData<ulong, int> VarintBoundaries()
    {
        var data = new TheoryData<ulong, int>();
        foreach (var offset in new ulong[] { 0, 1, 127, 128, 16_383, 16_384, (1UL << 21) - 1, 1UL << 32, ulong.MaxValue >> 1 })
        {
            foreach (var length in new[] { 1, 127, 128, 16_383, 16_384, (1 << 21) - 1, 1 << 21 })
            {
                data.Add(offset, length);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(VarintBoundaries))]
    public void Serializer_writes_what_the_generated_serializer_writes(ulong offset, int length)
    {
        var context = new DirectPipeContext();
        var chunk = new ZeroCopyReadChunk(new PatternReader()) { Offset = offset, Length = length };
        StreamReadChunkSerializer.Serialize(chunk, context);

        Assert.Null(chunk.Fault);
        var expected = new byte[length];
        new PatternReader().Read(offset, expected);
        Assert.Equal(new StreamReadRegionResponse { Offset = offset, Data = ByteString.CopyFrom(expected) }.ToByteArray(), context.Payload());
    }

    [Theory]
    [InlineData(0UL, 4096, 0)]
    [InlineData(4096UL, 4096, 1000)]
    [InlineData(12_345_678UL, 1 << 20, 1 << 19)]
    [InlineData(200UL, 1, 1)]
    public void A_read_that_fails_after_the_header_still_writes_a_whole_message_with_empty_data(ulong offset, int length, int filledBeforeFailing)
    {
        var error = RegionLease.FileChanged("r", "the file is shorter than the mapping");
        var context = new DirectPipeContext();
        var chunk = new ZeroCopyReadChunk(new FailingReader(filledBeforeFailing, error)) { Offset = offset, Length = length };

        StreamReadChunkSerializer.Serialize(chunk, context); // does not throw: the header is already in the pipe

        Assert.Same(error, chunk.Fault);
        var payload = context.Payload(); // the size announced in the header
        Assert.Equal(new StreamReadRegionResponse { Offset = offset, Data = ByteString.CopyFrom(new byte[length]) }.CalculateSize(), payload.Length);
        Assert.DoesNotContain((byte)0xEE, payload); // nothing the failed read left behind goes out

        var message = StreamReadRegionResponse.Parser.ParseFrom(payload);
        Assert.Equal(offset, message.Offset);
        Assert.True(message.Data.IsEmpty);
        // The zeroed bytes travel in an unknown field (15), which every parser skips; re-serializing
        // the parsed message (unknown fields kept) gives the same bytes.
        Assert.Equal(payload, message.ToByteArray());
        Assert.Equal(StreamReadChunkSerializer.FaultTag, payload[offset == 0 ? 0 : 1 + StreamReadChunkSerializer.VarintSize(offset)]);
    }

    [Fact]
    public void The_fault_field_is_unknown_to_StreamReadRegionResponse_and_its_tag_as_wide_as_data()
    {
        // A field 15 added to the proto would turn a failed chunk's zeros into a value of that field.
        Assert.Null(StreamReadRegionResponse.Descriptor.FindFieldByNumber(15));
        Assert.Equal(1, CodedOutputStream.ComputeTagSize(15));
        Assert.Equal(CodedOutputStream.ComputeTagSize(StreamReadRegionResponse.DataFieldNumber), CodedOutputStream.ComputeTagSize(15));
        Assert.Equal((uint)StreamReadChunkSerializer.FaultTag, WireFormat.MakeTag(15, WireFormat.WireType.LengthDelimited));
        Assert.Equal((uint)StreamReadChunkSerializer.DataTag, WireFormat.MakeTag(StreamReadRegionResponse.DataFieldNumber, WireFormat.WireType.LengthDelimited));
        Assert.Equal((uint)StreamReadChunkSerializer.OffsetTag, WireFormat.MakeTag(StreamReadRegionResponse.OffsetFieldNumber, WireFormat.WireType.Varint));
    }

    [Fact]
    public void A_message_over_the_send_limit_throws_before_anything_is_written()
    {
        var context = new LimitedContext(100);
        var chunk = new ZeroCopyReadChunk(new PatternReader()) { Offset = 1, Length = 200 };
        Assert.Throws<RpcException>(() => StreamReadChunkSerializer.Serialize(chunk, context));
        Assert.False(context.WriterTaken);
    }

    /// <summary>grpc-dotnet's check: GetBufferWriter throws RESOURCE_EXHAUSTED before writing the header.</summary>
    private sealed class LimitedContext(int limit) : SerializationContext
    {
        private int _payloadLength;

        public bool WriterTaken { get; private set; }

        public override void SetPayloadLength(int payloadLength) => _payloadLength = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter()
        {
            if (_payloadLength > limit)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, "Sending message exceeds the maximum configured message size."));
            }

            WriterTaken = true;
            return new ArrayBufferWriter<byte>();
        }

        public override void Complete()
        {
        }
    }

    // ---- the call's life: cancel, delete, shutdown, truncation -------------------------------------

    [Fact]
    public async Task A_cancelled_read_stream_releases_its_lease()
    {
        var name = UniqueName("zcancel");
        var data = await CreateWithPatternAsync(_server.Uds, name, 16 << 20, 1 << 20, 9);

        using var cts = new CancellationTokenSource();
        var call = _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 4096 }, cancellationToken: cts.Token);
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(data.AsSpan(0, 4096).ToArray(), call.ResponseStream.Current.Data.ToByteArray());
        await cts.CancelAsync();
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        Assert.Equal(StatusCode.Cancelled, e.StatusCode);
        call.Dispose();

        // The last unmap waits for running calls: it answers only once the stream's handler let go of its lease.
        var unmap = await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name }, deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(0U, unmap.RemainingReferences);
        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name });
    }

    [Fact]
    public async Task A_read_stream_of_a_region_deleted_with_force_ends_with_region_deleted_and_only_right_bytes()
    {
        var name = UniqueName("zdel");
        const int size = 16 << 20;
        var data = await CreateWithPatternAsync(_server.Uds, name, size, size, 4);

        using var call = _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 4096 });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var received = 0L;
        void Check(StreamReadRegionResponse m)
        {
            Assert.Equal((ulong)received, m.Offset);
            Assert.Equal(data.AsSpan((int)m.Offset, m.Data.Length).ToArray(), m.Data.ToByteArray());
            received += m.Data.Length;
        }

        Check(call.ResponseStream.Current);
        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
        await AssertError(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                Check(call.ResponseStream.Current);
            }
        }, StatusCode.NotFound, "REGION_DELETED");
        Assert.True(received < size, "the stream finished before the delete");
    }

    /// <summary>
    /// Shutdown with an open read stream, as before the one-copy serializer (checked against main's
    /// build): UNAVAILABLE SHUTTING_DOWN when the handler is between chunks; CANCELLED when it is blocked
    /// in WriteAsync on a client that has not taken the previous chunks yet (the write's cancellation,
    /// linked to ApplicationStopping, resets the HTTP/2 stream); or a transport status without details
    /// when the stopping server closes the connection before the trailers leave (ResumeTests accepts the
    /// same for uploads; one loaded run here ended with neither of the first two). Either way the chunks
    /// before it are right, the stream does not run to its end and the server stops.
    /// </summary>
    [Fact]
    public async Task Shutdown_ends_an_open_read_stream()
    {
        await using var server = await PmemTestServer.StartAsync();
        var name = UniqueName("zstop");
        const int size = 16 << 20;
        var data = await CreateWithPatternAsync(server.Uds, name, size, 1 << 20, 5);

        using var call = server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 4096 });
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var stop = server.StopViaLifetimeAsync();
        var received = 0L;
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            do
            {
                var m = call.ResponseStream.Current;
                Assert.Equal((ulong)received, m.Offset);
                Assert.Equal(m.Offset < (ulong)data.Length ? data.AsSpan((int)m.Offset, m.Data.Length).ToArray() : new byte[m.Data.Length], m.Data.ToByteArray());
                received += m.Data.Length;
            }
            while (await call.ResponseStream.MoveNext(CancellationToken.None));
        });
        _output.WriteLine($"{received} bytes, then {e.Status}");
        if (e.GetRpcStatus()?.GetDetail<Google.Rpc.ErrorInfo>() is { } info)
        {
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal("SHUTTING_DOWN", info.Reason);
        }
        else
        {
            // The stream reset (CANCELLED), or, rarely, the connection closed by the stopping server
            // before the trailers left (a transport status, no details) — never a torn message.
            Assert.True(e.StatusCode is StatusCode.Cancelled or StatusCode.Unavailable or StatusCode.Internal, e.ToString());
            Assert.DoesNotContain("Incomplete message", e.Status.Detail, StringComparison.OrdinalIgnoreCase);
        }

        await stop.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(received < size, "the stream finished before the shutdown");
    }

    /// <summary>
    /// The file truncated underneath while chunks are read: the check before each chunk (fstat) or, when
    /// the truncation lands between that check and the end of the pread, the serializer's short read
    /// ends the call with DATA_LOSS REGION_FILE_CHANGED. Every chunk that carries data carries the right
    /// bytes; a chunk failed in the serializer carries none (and the status follows it). Which of the two
    /// paths a round takes is a race (large chunks make the pread a good part of each round trip), so
    /// several rounds run; the deterministic cases are the serializer tests above and
    /// FuseFaultTests.EioOnAStreamReadChunkIsDataLossAndNoChunkCarriesWrongBytes.
    /// </summary>
    [Fact]
    public async Task A_file_truncated_underneath_mid_stream_ends_with_region_file_changed_and_no_wrong_bytes()
    {
        const int chunk = 4 << 20;
        await using var server = await PmemTestServer.StartAsync(s => s["PmemService:MaxReadChunkSize"] = chunk.ToString(System.Globalization.CultureInfo.InvariantCulture));
        const int size = 64 << 20;
        const int rounds = 12;
        var emptyChunks = 0;
        var random = new Random(10);
        for (var round = 0; round < rounds; round++)
        {
            var name = UniqueName("ztrunc");
            await CreateAsync(server.Uds, name, size);
            var path = Path.Combine(server.PoolPath, name);
            var data = Pattern(size, round);
            using (var file = File.OpenHandle(path, FileMode.Open, FileAccess.Write))
            {
                RandomAccess.Write(file, data, 0); // the same page cache the service preads from
            }

            using var call = server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = chunk });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var delay = random.Next(0, 800);
            var truncate = Task.Run(() =>
            {
                var until = System.Diagnostics.Stopwatch.GetTimestamp() + (delay * System.Diagnostics.Stopwatch.Frequency / 1_000_000);
                while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
                {
                }

                using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
                f.SetLength(round % 2 == 0 ? 0 : size / 2); // truncate -s 0, or to the middle
            });
            // Received first, checked after the status: a client that keeps up keeps the server busy reading.
            var messages = new List<StreamReadRegionResponse>();
            await AssertError(async () =>
            {
                do
                {
                    messages.Add(call.ResponseStream.Current);
                }
                while (await call.ResponseStream.MoveNext(CancellationToken.None));
            }, StatusCode.DataLoss, "REGION_FILE_CHANGED");
            await truncate;
            var received = 0L;
            foreach (var m in messages)
            {
                Assert.Equal((ulong)received, m.Offset);
                if (m.Data.IsEmpty)
                {
                    // A chunk failed in the serializer: the error status came right after it.
                    Assert.Same(messages[^1], m);
                    emptyChunks++;
                    continue;
                }

                Assert.True(data.AsSpan((int)m.Offset, m.Data.Length).SequenceEqual(m.Data.Span), $"wrong bytes in the chunk at {m.Offset}");
                received += m.Data.Length;
            }

            _output.WriteLine($"round {round}: truncated after {delay} µs, {messages.Count} messages, {received >> 20} MiB of data");
            await AssertError(async () => await server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name }), StatusCode.DataLoss, "REGION_FILE_CHANGED");
            File.Delete(path);
        }

        _output.WriteLine($"chunks failed inside the serializer (empty data before the status): {emptyChunks} in {rounds} rounds");
        Assert.Empty(server.Logs.WithEventName("UnhandledError"));
    }
}
