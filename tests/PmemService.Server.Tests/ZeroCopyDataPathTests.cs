using System.Buffers;
using System.IO.Hashing;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using PmemService.Contracts.V1;
using PmemService.Server.Internal.DataPath;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>
/// The zero-copy marshallers of WriteRegion and StreamWriteRegion against a real server, with hand-built
/// protobuf bodies (any field order, duplicates, unknown fields, malformed bytes) sent through a raw
/// byte[] method, and with payloads large enough to span many request-buffer segments.
/// </summary>
public sealed class ZeroCopyDataPathTests : IClassFixture<SharedServerFixture>
{
    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(static b => b, static b => b);
    private static readonly Method<byte[], byte[]> RawWrite = new(MethodType.Unary, "pmem.v1.PmemService", "WriteRegion", Raw, Raw);
    private static readonly Method<byte[], byte[]> RawGet = new(MethodType.Unary, "pmem.v1.PmemService", "GetRegion", Raw, Raw);
    private static readonly Method<byte[], byte[]> RawStream = new(MethodType.ClientStreaming, "pmem.v1.PmemService", "StreamWriteRegion", Raw, Raw);

    private readonly PmemTestServer _server;

    public ZeroCopyDataPathTests(SharedServerFixture fixture) => _server = fixture.Server;

    private static byte[] Encode(Action<CodedOutputStream> write)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        write(output);
        output.Flush();
        return stream.ToArray();
    }

    private static void Bytes(CodedOutputStream o, int field, ReadOnlySpan<byte> value)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(value));
    }

    private static void Str(CodedOutputStream o, int field, string value)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteString(value);
    }

    private static void Varint(CodedOutputStream o, int field, ulong value)
    {
        o.WriteTag(field, WireFormat.WireType.Varint);
        o.WriteUInt64(value);
    }

    private static async Task<WriteRegionResponse> RawWriteAsync(GrpcChannel channel, byte[] body) =>
        WriteRegionResponse.Parser.ParseFrom(await channel.CreateCallInvoker().AsyncUnaryCall(RawWrite, null, new CallOptions(), body));

    private async Task<byte[]> ReadAsync(string name, ulong offset, int length) =>
        (await _server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = offset, Length = (ulong)length })).Data.ToByteArray();

    [Fact]
    public async Task WriteRegion_with_the_data_field_before_name_and_offset_lands_at_the_offset()
    {
        var name = UniqueName("order");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var data = Pattern(100_000, 1);
        var body = Encode(o =>
        {
            Bytes(o, 3, data);
            Varint(o, 4, 0);
            Varint(o, 2, 12_345);
            Str(o, 1, name);
        });

        foreach (var channel in new[] { _server.UdsChannel, _server.TcpChannel })
        {
            var response = await RawWriteAsync(channel, body);
            Assert.Equal((ulong)data.Length, response.BytesWritten);
            Assert.True(response.Persisted);
            Assert.Equal(data, await ReadAsync(name, 12_345, data.Length));
        }
    }

    [Fact]
    public async Task WriteRegion_last_occurrence_wins_and_unknown_fields_are_skipped()
    {
        var name = UniqueName("dups");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var first = Pattern(5000, 2);
        var last = Pattern(7000, 3);
        var body = Encode(o =>
        {
            Str(o, 1, "not-this-one");
            Varint(o, 2, 1);
            Bytes(o, 3, first);
            Varint(o, 99, 42);                                     // unknown varint
            o.WriteTag(100, WireFormat.WireType.Fixed64); o.WriteFixed64(7);
            o.WriteTag(101, WireFormat.WireType.Fixed32); o.WriteFixed32(7);
            Bytes(o, 102, Pattern(300, 4));                        // unknown bytes
            o.WriteTag(103, WireFormat.WireType.StartGroup);       // unknown group with a nested field
            Varint(o, 1, 5);
            o.WriteTag(103, WireFormat.WireType.EndGroup);
            Str(o, 1, name);
            Varint(o, 2, 4096);
            Bytes(o, 3, last);
        });

        var response = await RawWriteAsync(_server.UdsChannel, body);
        Assert.Equal((ulong)last.Length, response.BytesWritten);
        Assert.Equal(last, await ReadAsync(name, 4096, last.Length));
        Assert.All(await ReadAsync(name, 0, 4096), b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(65_537)]
    [InlineData(4 << 20)]
    public async Task WriteRegion_payloads_spanning_request_segments_arrive_intact(int length)
    {
        var name = UniqueName("span");
        await CreateAsync(_server.Uds, name, 8 << 20);
        var data = Pattern(length, length);
        var response = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 3, Data = ByteString.CopyFrom(data) });
        Assert.Equal((ulong)length, response.BytesWritten);
        var back = await _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, Offset = 3, Length = (ulong)length }).ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal(data, back.SelectMany(c => c.Data.ToByteArray()).ToArray());
    }

    [Fact]
    public async Task WriteRegion_with_empty_data_answers_zero_bytes_and_defer_persist_is_reported()
    {
        var name = UniqueName("empty");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var empty = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20 });
        Assert.Equal(0UL, empty.BytesWritten);
        Assert.True(empty.Persisted);

        var data = Pattern(9000, 5);
        var deferred = await _server.Tcp.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 10, Data = ByteString.CopyFrom(data), DeferPersist = true });
        Assert.False(deferred.Persisted);
        await _server.Uds.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 10, Length = 9000 });
        Assert.Equal(data, await ReadAsync(name, 10, data.Length));
    }

    public static TheoryData<string, byte[]> MalformedBodies()
    {
        var random = Pattern(4096, 6);
        random[0] = 0x00; // tag 0 up front, whatever follows
        return new TheoryData<string, byte[]>
        {
            { "random bytes", random },
            { "truncated length", [0x1A, 0xFF, 0xFF, 0x03, 1, 2, 3] },
            { "length past the end", [0x0A, 0x05, (byte)'a'] },
            { "overlong varint", [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
            { "invalid wire type", [0x0F, 0x00] },
            { "unterminated group", [0x0B, 0x08, 0x01] },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task Malformed_WriteRegion_bodies_are_INVALID_ARGUMENT_and_touch_nothing(string what, byte[] body)
    {
        var name = UniqueName("bad");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var (_, _, info) = await AssertError(() => RawWriteAsync(_server.UdsChannel, body), StatusCode.InvalidArgument, "MALFORMED_MESSAGE");
        Assert.Equal("WriteRegionRequest", info.Metadata["message_type"]);
        Assert.All(await ReadAsync(name, 0, 8192), b => Assert.Equal(0, b));
        _ = what;
    }

    [Fact]
    public async Task Malformed_bodies_of_other_methods_are_INVALID_ARGUMENT_not_UNKNOWN()
    {
        var (_, _, info) = await AssertError(
            () => _server.TcpChannel.CreateCallInvoker().AsyncUnaryCall(RawGet, null, new CallOptions(), [0x0A, 0x7F, 0x01]).ResponseAsync,
            StatusCode.InvalidArgument, "MALFORMED_MESSAGE");
        Assert.Equal("GetRegionRequest", info.Metadata["message_type"]);
    }

    [Fact]
    public async Task Writes_are_validated_before_the_first_byte_is_copied()
    {
        var name = UniqueName("bounds");
        await CreateAsync(_server.Uds, name, 1 << 20);
        await AssertError(async () => await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = (1 << 20) - 100, Data = ByteString.CopyFrom(Pattern(200, 7)) }),
            StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        await AssertError(async () => await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = ulong.MaxValue - 10, Data = ByteString.CopyFrom(Pattern(200, 7)) }),
            StatusCode.OutOfRange, "RANGE_OVERFLOW");
        await AssertError(async () => await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = new string('a', 5000), Data = ByteString.CopyFrom(Pattern(20, 7)) }),
            StatusCode.InvalidArgument, "INVALID_REGION_NAME");
        await AssertError(async () => await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = UniqueName("missing"), Data = ByteString.CopyFrom(Pattern(20, 7)) }),
            StatusCode.NotFound, "REGION_NOT_FOUND");
        Assert.All(await ReadAsync(name, (1 << 20) - 4096, 4096), b => Assert.Equal(0, b));
    }

    private static byte[] Header(string name, ulong offset, ulong total) =>
        new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = offset, TotalLength = total } }.ToByteArray();

    private static byte[] Chunk(byte[] data) => Encode(o => Bytes(o, 2, data));

    [Fact]
    public async Task StreamWriteRegion_chunks_of_every_shape_arrive_with_the_right_crc()
    {
        var name = UniqueName("chunks");
        await CreateAsync(_server.Uds, name, 8 << 20);
        var sizes = new[] { 0, 1, 63, 4096, 4097, 65_536, 1 << 20, 0, 3 * 1024 * 1024 + 5 };
        var expected = new List<byte>();
        using var call = _server.TcpChannel.CreateCallInvoker().AsyncClientStreamingCall(RawStream, null, new CallOptions());
        await call.RequestStream.WriteAsync(Header(name, 100, 0));
        var seed = 10;
        foreach (var size in sizes)
        {
            var data = Pattern(size, seed++);
            expected.AddRange(data);
            // Odd chunks carry an unknown field and a stale data field first: the last data field wins.
            var body = seed % 2 == 0
                ? Chunk(data)
                : Encode(o =>
                {
                    Varint(o, 77, 1);
                    Bytes(o, 2, [9, 9, 9]);
                    Bytes(o, 2, data);
                });
            await call.RequestStream.WriteAsync(body);
        }

        await call.RequestStream.CompleteAsync();
        var response = StreamWriteRegionResponse.Parser.ParseFrom(await call.ResponseAsync);
        Assert.Equal((ulong)expected.Count, response.BytesPersisted);
        Assert.Equal(100UL + (ulong)expected.Count, response.PersistedOffset);
        Assert.Equal(Crc64.HashToUInt64(expected.ToArray()), response.Crc64);
        var back = await _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, Offset = 100, Length = (ulong)expected.Count }).ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal(expected.ToArray(), back.SelectMany(c => c.Data.ToByteArray()).ToArray());
    }

    [Fact]
    public async Task StreamWriteRegion_malformed_chunk_is_INVALID_ARGUMENT_with_the_persisted_offset()
    {
        var name = UniqueName("badchunk");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var good = Pattern(70_000, 20);
        using var call = _server.UdsChannel.CreateCallInvoker().AsyncClientStreamingCall(RawStream, null, new CallOptions());
        await call.RequestStream.WriteAsync(Header(name, 0, 0));
        await call.RequestStream.WriteAsync(Chunk(good));
        await call.RequestStream.WriteAsync([0x12, 0xFF, 0x7F, 1, 2]); // data field whose length runs past the message
        var (exception, _, info) = await AssertError(() => call.ResponseAsync, StatusCode.InvalidArgument, "MALFORMED_MESSAGE");
        Assert.Equal("70000", info.Metadata["persisted_offset"]);
        Assert.Equal("70000", exception.Trailers.GetValue("pmem-persisted-offset"));
        Assert.Equal(good, await ReadAsync(name, 0, good.Length));
    }

    [Fact]
    public async Task StreamWriteRegion_data_before_the_header_is_refused_and_never_copied()
    {
        var name = UniqueName("nohdr");
        await CreateAsync(_server.Uds, name, 1 << 20);
        using var call = _server.UdsChannel.CreateCallInvoker().AsyncClientStreamingCall(RawStream, null, new CallOptions());
        await call.RequestStream.WriteAsync(Chunk(Pattern(5000, 21)));
        await AssertError(() => call.ResponseAsync, StatusCode.InvalidArgument, "MISSING_STREAM_HEADER");
        Assert.All(await ReadAsync(name, 0, 5000), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task StreamWriteRegion_oversized_chunks_are_refused_before_their_first_byte()
    {
        var name = UniqueName("oversize");
        await CreateAsync(_server.Uds, name, 1 << 20);

        // Past header.total_length: OUT_OF_RANGE, the previous chunk persisted, nothing of this one copied.
        using (var call = _server.UdsChannel.CreateCallInvoker().AsyncClientStreamingCall(RawStream, null, new CallOptions()))
        {
            await call.RequestStream.WriteAsync(Header(name, 0, 10_000));
            await call.RequestStream.WriteAsync(Chunk(Pattern(6000, 22)));
            await call.RequestStream.WriteAsync(Chunk(Pattern(6000, 23)));
            var (_, _, info) = await AssertError(() => call.ResponseAsync, StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
            Assert.Equal("6000", info.Metadata["persisted_offset"]);
            Assert.All(await ReadAsync(name, 6000, 6000), b => Assert.Equal(0, b));
        }

        // Above the server's message limit (4 MiB + 64 KiB): grpc-dotnet refuses it before deserialization.
        using (var call = _server.UdsChannel.CreateCallInvoker().AsyncClientStreamingCall(RawStream, null, new CallOptions()))
        {
            await call.RequestStream.WriteAsync(Header(name, 0, 0));
            try
            {
                await call.RequestStream.WriteAsync(Chunk(new byte[(4 << 20) + (128 << 10)]));
            }
            catch (RpcException)
            {
                // The server may reset the stream while the client is still sending.
            }

            var (_, _, info) = await AssertError(() => call.ResponseAsync, StatusCode.ResourceExhausted, "MESSAGE_TOO_LARGE");
            Assert.Equal("0", info.Metadata["persisted_offset"]);
        }
    }

    [Fact]
    public async Task Concurrent_page_writes_share_msyncs_and_all_land()
    {
        var name = UniqueName("group");
        var info = await CreateAsync(_server.Uds, name, 4 << 20);
        Assert.Equal(Granularity.Page, info.EffectiveGranularity);
        const int Writers = 8;
        const int PerWriter = 40;
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                var offset = (ulong)((w * PerWriter + i) * 4096);
                var response = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = offset, Data = ByteString.CopyFrom(Pattern(4096, w * 1000 + i)) });
                Assert.True(response.Persisted);
            }
        })));

        for (var w = 0; w < Writers; w++)
        {
            for (var i = 0; i < PerWriter; i += 13)
            {
                Assert.Equal(Pattern(4096, w * 1000 + i), await ReadAsync(name, (ulong)((w * PerWriter + i) * 4096), 4096));
            }
        }
    }

    [Fact]
    public async Task Unix_socket_only_data_plane_copies_nothing_for_a_tcp_caller()
    {
        await using var server = await PmemTestServer.StartAsync(s => s["PmemService:AllowDataPlaneOverTcp"] = "false");
        var name = UniqueName("udsonly");
        await CreateAsync(server.Uds, name, 1 << 20);
        var data = Pattern(8192, 40);
        await AssertError(async () => await server.Tcp.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(data) }),
            StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        using (var call = server.Tcp.StreamWriteRegion())
        {
            try
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(data) });
                await call.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // Refused while still sending.
            }

            await AssertError(() => call.ResponseAsync, StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        }

        var back = (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 0, Length = 8192 })).Data.ToByteArray();
        Assert.All(back, b => Assert.Equal(0, b));
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(data) });
        Assert.Equal(data, (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 0, Length = 8192 })).Data.ToByteArray());
    }

    [Fact]
    public async Task A_persisted_page_write_is_answered_only_after_an_msync_and_a_deferred_one_without()
    {
        var name = UniqueName("durable");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var regions = (PmemService.Server.Internal.RegionManager)_server.Services.GetService(typeof(PmemService.Server.Internal.RegionManager))!;
        using var lease = regions.Acquire(name);
        Assert.Equal(Pmem2.Pmem2Granularity.Page, lease.Map.StoreGranularity);
        var commit = GroupCommit.For(lease.Map);

        var before = commit.Rounds;
        var response = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 8192, Data = ByteString.CopyFrom(Pattern(3000, 50)) });
        Assert.True(response.Persisted);
        Assert.True(commit.Rounds > before, "an OK persisted WriteRegion at PAGE must have run an msync first");

        before = commit.Rounds;
        var deferred = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(Pattern(3000, 51)), DeferPersist = true });
        Assert.False(deferred.Persisted);
        Assert.Equal(before, commit.Rounds);
    }

    [Fact]
    public void Scanner_reads_fields_split_at_every_byte_boundary()
    {
        var data = Pattern(300, 30);
        var body = Encode(o =>
        {
            Varint(o, 2, ulong.MaxValue);
            Bytes(o, 3, data);
            Str(o, 1, "region-x");
            Varint(o, 4, 1);
        });

        var sequence = OneBytePerSegment(body);
        Assert.True(ProtoScanner.TryScanWriteRegion(sequence, out var fields, out var error), error);
        Assert.Equal("region-x", fields.Name);
        Assert.Equal(ulong.MaxValue, fields.Offset);
        Assert.True(fields.DeferPersist);
        Assert.Equal(data, sequence.Slice(fields.DataStart, fields.DataLength).ToArray());

        for (var cut = 0; cut < body.Length; cut++)
        {
            // Every strict prefix that ends inside a field is malformed, never an exception.
            _ = ProtoScanner.TryScanWriteRegion(OneBytePerSegment(body[..cut]), out _, out _);
        }

        Assert.False(ProtoScanner.TryScanWriteRegion(OneBytePerSegment(body[..(body.Length - 1)]), out _, out var truncated));
        Assert.NotNull(truncated);
    }

    private static ReadOnlySequence<byte> OneBytePerSegment(byte[] bytes)
    {
        if (bytes.Length == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(bytes.AsMemory(0, 1), 0);
        var last = first;
        for (var i = 1; i < bytes.Length; i++)
        {
            last = last.Append(bytes.AsMemory(i, 1));
        }

        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
