using System.IO.Hashing;
using Google.Protobuf;
using Grpc.Core;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;
using static PmemTests.Shared.ClientStreams;

namespace PmemService.Server.Tests;

/// <summary>Every RPC and its error paths against one shared real server (UDS and TCP clients).</summary>
public sealed class RegionRpcTests : IClassFixture<SharedServerFixture>
{
    private readonly PmemTestServer _server;

    public RegionRpcTests(SharedServerFixture fixture) => _server = fixture.Server;

    [Fact]
    public async Task MapRegion_creates_a_fully_allocated_region_at_page_granularity()
    {
        var name = UniqueName("create");
        var info = await CreateAsync(_server.Uds, name, 4 << 20);

        Assert.Equal(name, info.Name);
        Assert.Equal(4UL << 20, info.Size);
        Assert.True(info.Created);
        Assert.True(info.Mapped);
        Assert.Equal(1U, info.MapReferences);
        // No DAX on this machine: PAGE (msync) and no MAP_SYNC.
        Assert.Equal(Granularity.Page, info.EffectiveGranularity);
        Assert.Equal(Granularity.Page, info.RequestedGranularity);
        Assert.False(info.MapSync);

        var path = Path.Combine(_server.PoolPath, name);
        Assert.Equal(4L << 20, new FileInfo(path).Length);
        Assert.True(AllocatedBytes(path) >= 4L << 20, "region file must be fully allocated, not sparse");
        Assert.Empty(Directory.EnumerateFiles(_server.PoolPath, ".creating-*"));
    }

    [Fact]
    public async Task MapRegion_again_takes_a_reference_and_UnmapRegion_drops_it()
    {
        var name = UniqueName("refs");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var second = (await _server.Tcp.MapRegionAsync(new MapRegionRequest { Name = name, Size = 1 << 20 })).Region;
        Assert.False(second.Created);
        Assert.Equal(2U, second.MapReferences);
        var third = (await _server.Tcp.MapRegionAsync(new MapRegionRequest { Name = name, CreateIfMissing = true })).Region;
        Assert.Equal(3U, third.MapReferences);

        Assert.Equal(2U, (await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name })).RemainingReferences);
        Assert.Equal(1U, (await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name })).RemainingReferences);
        Assert.Equal(0U, (await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name })).RemainingReferences);

        var info = (await _server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.False(info.Mapped);
        Assert.Equal(0U, info.MapReferences);
        Assert.Equal(1UL << 20, info.Size);

        await AssertError(async () => await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name }),
            StatusCode.FailedPrecondition, "REGION_NOT_MAPPED");
    }

    [Fact]
    public async Task MapRegion_errors()
    {
        var name = UniqueName("maperr");
        await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096 }),
            StatusCode.NotFound, "REGION_NOT_FOUND");

        var (_, status, _) = await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, CreateIfMissing = true }),
            StatusCode.InvalidArgument, "INVALID_REGION_SIZE");
        AssertFieldViolation(status, "size");

        (_, status, var info) = await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 1UL << 40, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "REGION_SIZE_LIMIT");
        Assert.Equal((512L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), info.Metadata["limit"]);

        await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true, RequiredGranularity = (Granularity)42 }),
            StatusCode.InvalidArgument, "INVALID_GRANULARITY");

        // No MAP_SYNC here: CACHE_LINE cannot be given, and nothing is left behind.
        (_, status, info) = await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true, RequiredGranularity = Granularity.CacheLine }),
            StatusCode.FailedPrecondition, "GRANULARITY_NOT_SUPPORTED");
        Assert.Equal("PAGE", info.Metadata["effective_granularity"]);
        AssertFieldViolation(status, "required_granularity");
        Assert.False(File.Exists(Path.Combine(_server.PoolPath, name)));

        await CreateAsync(_server.Uds, name, 8192);
        (_, _, info) = await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 16384 }),
            StatusCode.FailedPrecondition, "REGION_SIZE_MISMATCH");
        Assert.Equal("8192", info.Metadata["region_size"]);
        // An existing PAGE mapping cannot satisfy CACHE_LINE either.
        await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, RequiredGranularity = Granularity.CacheLine }),
            StatusCode.FailedPrecondition, "GRANULARITY_NOT_SUPPORTED");
    }

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData(".hidden")]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("/etc/passwd")]
    [InlineData("..\\up")]
    [InlineData("sp ace")]
    [InlineData("nul\0byte")]
    [InlineData("ünicode")]
    public async Task Invalid_and_path_traversal_names_are_rejected_by_every_rpc(string name)
    {
        var client = _server.Uds;
        var calls = new Func<Task>[]
        {
            async () => await client.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true }),
            async () => await client.GetRegionAsync(new GetRegionRequest { Name = name }),
            async () => await client.UnmapRegionAsync(new UnmapRegionRequest { Name = name }),
            async () => await client.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }),
            async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(1) }),
            async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 1 }),
            async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name }),
        };
        foreach (var call in calls)
        {
            var (_, status, _) = await AssertError(call, StatusCode.InvalidArgument, "INVALID_REGION_NAME");
            AssertFieldViolation(status, "name");
        }

        Assert.False(File.Exists(Path.Combine(_server.Root, "escape")));
    }

    [Fact]
    public async Task Name_length_limit_is_128()
    {
        var ok = new string('a', 100) + Guid.NewGuid().ToString("N")[..28];
        Assert.Equal(128, ok.Length);
        Assert.True((await CreateAsync(_server.Uds, ok, 4096)).Created);
        await AssertError(async () => await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = ok + "b", Size = 4096, CreateIfMissing = true }),
            StatusCode.InvalidArgument, "INVALID_REGION_NAME");
    }

    [Fact]
    public async Task Write_read_persist_roundtrip_and_defer_persist()
    {
        var name = UniqueName("rw");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var data = Pattern(100_000, 1);

        var write = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 4000, Data = ByteString.CopyFrom(data) });
        Assert.Equal((ulong)data.Length, write.BytesWritten);
        Assert.True(write.Persisted);

        var read = await _server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 4000, Length = (ulong)data.Length });
        Assert.Equal(data, read.Data.ToByteArray());

        var deferred = await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 200_000, Data = ByteString.CopyFrom(data), DeferPersist = true });
        Assert.False(deferred.Persisted);
        var persisted = await _server.Uds.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 200_000, Length = (ulong)data.Length });
        Assert.Equal((ulong)data.Length, persisted.BytesPersisted);
        Assert.Equal(1UL << 20, (await _server.Uds.PersistRegionAsync(new PersistRegionRequest { Name = name })).BytesPersisted);
        Assert.Equal((1UL << 20) - 1000, (await _server.Uds.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 1000 })).BytesPersisted);

        read = await _server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 200_000, Length = (ulong)data.Length });
        Assert.Equal(data, read.Data.ToByteArray());

        // Zero-length operations at the very end are valid.
        Assert.Equal(0UL, (await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20 })).BytesWritten);
        Assert.True((await _server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 1 << 20 })).Data.IsEmpty);

        // The bytes reached the file itself (MAP_SHARED), not only the mapping.
        using var file = File.OpenHandle(Path.Combine(_server.PoolPath, name));
        var fromFile = new byte[data.Length];
        RandomAccess.Read(file, fromFile, 4000);
        Assert.Equal(data, fromFile);
    }

    [Fact]
    public async Task Range_errors_are_rejected_before_any_byte_is_copied()
    {
        var name = UniqueName("range");
        await CreateAsync(_server.Uds, name, 65536);
        var client = _server.Uds;
        var ten = ByteString.CopyFrom(new byte[10]);

        var (_, status, info) = await AssertError(async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 65530, Data = ten }),
            StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        Assert.Equal("65536", info.Metadata["region_size"]);
        AssertFieldViolation(status, "data");
        await AssertError(async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = ulong.MaxValue - 3, Data = ten }),
            StatusCode.OutOfRange, "RANGE_OVERFLOW");
        await AssertError(async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = ulong.MaxValue, Length = 2 }),
            StatusCode.OutOfRange, "RANGE_OVERFLOW");
        await AssertError(async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 70000, Length = 1 }),
            StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        await AssertError(async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 1, Length = ulong.MaxValue }),
            StatusCode.OutOfRange, "RANGE_OVERFLOW");
        await AssertError(async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 65537 }),
            StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        await AssertError(async () => await client.StreamReadRegion(new StreamReadRegionRequest { Name = name, Offset = 65537 }).ResponseStream.MoveNext(),
            StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");

        (_, status, info) = await AssertError(async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 8 << 20 }),
            StatusCode.InvalidArgument, "READ_TOO_LARGE");
        AssertFieldViolation(status, "length");

        // Nothing was written by the failed calls.
        var read = await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 65520, Length = 16 });
        Assert.All(read.Data.ToByteArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Data_rpcs_need_a_mapped_region()
    {
        var name = UniqueName("unmapped");
        await CreateAsync(_server.Uds, name, 8192);
        await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        var client = _server.Tcp;
        await AssertError(async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(1) }), StatusCode.FailedPrecondition, "REGION_NOT_MAPPED");
        await AssertError(async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 1 }), StatusCode.FailedPrecondition, "REGION_NOT_MAPPED");
        await AssertError(async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name }), StatusCode.FailedPrecondition, "REGION_NOT_MAPPED");
        await AssertError(async () => await client.StreamReadRegion(new StreamReadRegionRequest { Name = name }).ResponseStream.MoveNext(), StatusCode.FailedPrecondition, "REGION_NOT_MAPPED");

        var missing = UniqueName("missing");
        await AssertError(async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = missing, Data = ByteString.CopyFrom(1) }), StatusCode.NotFound, "REGION_NOT_FOUND");
        await AssertError(async () => await client.GetRegionAsync(new GetRegionRequest { Name = missing }), StatusCode.NotFound, "REGION_NOT_FOUND");
        await AssertError(async () => await client.UnmapRegionAsync(new UnmapRegionRequest { Name = missing }), StatusCode.NotFound, "REGION_NOT_FOUND");
    }

    [Fact]
    public async Task DeleteRegion_is_refused_while_mapped_unless_forced()
    {
        var name = UniqueName("del");
        await CreateAsync(_server.Uds, name, 8192);
        var (_, _, info) = await AssertError(async () => await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name }),
            StatusCode.FailedPrecondition, "REGION_IN_USE");
        Assert.Equal("1", info.Metadata["map_references"]);

        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
        Assert.False(File.Exists(Path.Combine(_server.PoolPath, name)));
        await AssertError(async () => await _server.Uds.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");
        await AssertError(async () => await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(1) }), StatusCode.NotFound, "REGION_NOT_FOUND");
        await AssertError(async () => await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");

        // Unmapped regions delete without force, and the name can be created again at another size.
        var other = UniqueName("del2");
        await CreateAsync(_server.Uds, other, 8192);
        await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = other });
        await _server.Uds.DeleteRegionAsync(new DeleteRegionRequest { Name = other });
        Assert.True((await CreateAsync(_server.Uds, other, 16384)).Created);
    }

    [Fact]
    public async Task Concurrent_map_and_delete_of_one_name_stay_consistent()
    {
        var name = UniqueName("race");
        var tasks = Enumerable.Range(0, 120).Select(async i =>
        {
            try
            {
                if (i % 3 != 0)
                {
                    await _server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 8192, CreateIfMissing = true });
                }
                else
                {
                    await _server.Tcp.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true });
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        });
        await Task.WhenAll(tasks);

        // Whatever the interleaving, the final state is coherent: either gone, or a full region whose info agrees.
        try
        {
            var info = (await _server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
            Assert.Equal(8192UL, info.Size);
            Assert.Equal(info.MapReferences > 0, info.Mapped);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
            Assert.False(File.Exists(Path.Combine(_server.PoolPath, name)));
        }

        Assert.Empty(Directory.EnumerateFiles(_server.PoolPath, ".creating-*"));
    }

    [Fact]
    public async Task ListRegions_pages_in_name_order()
    {
        var prefix = "list" + Guid.NewGuid().ToString("N")[..8];
        var names = Enumerable.Range(0, 5).Select(i => $"{prefix}-{i}").ToList();
        foreach (var name in names)
        {
            await CreateAsync(_server.Uds, name, 4096);
        }

        await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = names[4] });
        var seen = new List<RegionInfo>();
        var token = string.Empty;
        var pages = 0;
        do
        {
            var page = await _server.Tcp.ListRegionsAsync(new ListRegionsRequest { PageSize = 2, PageToken = token });
            Assert.True(page.Regions.Count <= 2);
            seen.AddRange(page.Regions);
            token = page.NextPageToken;
            Assert.True(++pages < 10_000);
        }
        while (token.Length > 0);

        var all = seen.Select(r => r.Name).ToList();
        Assert.Equal(all.OrderBy(n => n, StringComparer.Ordinal), all);
        Assert.Equal(all.Distinct().Count(), all.Count);
        var mine = seen.Where(r => r.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        Assert.Equal(names, mine.Select(r => r.Name));
        Assert.All(mine.Take(4), r => Assert.True(r.Mapped));
        Assert.False(mine[4].Mapped);
        Assert.DoesNotContain(all, n => n.StartsWith('.'));

        await AssertError(async () => await _server.Tcp.ListRegionsAsync(new ListRegionsRequest { PageToken = "not-a-token" }), StatusCode.InvalidArgument, "INVALID_PAGE_TOKEN");
        await AssertError(async () => await _server.Tcp.ListRegionsAsync(new ListRegionsRequest { PageSize = -1 }), StatusCode.InvalidArgument, "INVALID_PAGE_SIZE");
    }

    [Fact]
    public async Task Two_clients_share_one_mapping()
    {
        var name = UniqueName("shared");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var mapped = (await _server.Tcp.MapRegionAsync(new MapRegionRequest { Name = name, Size = 1 << 20 })).Region;
        Assert.Equal(2U, mapped.MapReferences);

        for (var i = 0; i < 20; i++)
        {
            var data = Pattern(4096, i);
            await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = (ulong)(i * 4096), Data = ByteString.CopyFrom(data) });
            var seen = await _server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = (ulong)(i * 4096), Length = 4096 });
            Assert.Equal(data, seen.Data.ToByteArray());
        }

        // The writer leaves; the reader still sees everything.
        await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        var last = await _server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 19 * 4096, Length = 4096 });
        Assert.Equal(Pattern(4096, 19), last.Data.ToByteArray());
    }

    [Fact]
    public async Task Concurrent_writers_to_disjoint_ranges()
    {
        var name = UniqueName("disjoint");
        const int writers = 8, chunks = 16, chunk = 16384;
        await CreateAsync(_server.Uds, name, writers * chunks * chunk);
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async w =>
        {
            var client = w % 2 == 0 ? _server.Uds : _server.Tcp;
            for (var c = 0; c < chunks; c++)
            {
                var offset = (ulong)(((w * chunks) + c) * chunk);
                await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = offset, Data = ByteString.CopyFrom(Pattern(chunk, (w * 1000) + c)) });
            }
        }));

        var all = (await _server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = writers * chunks * chunk })).Data.Memory;
        for (var w = 0; w < writers; w++)
        {
            for (var c = 0; c < chunks; c++)
            {
                var offset = ((w * chunks) + c) * chunk;
                Assert.True(all.Span.Slice(offset, chunk).SequenceEqual(Pattern(chunk, (w * 1000) + c)), $"writer {w} chunk {c}");
            }
        }
    }

    [Fact]
    public async Task StreamReadRegion_returns_the_range_in_chunks()
    {
        var name = UniqueName("sread");
        const int size = (1 << 20) + 123;
        await CreateAsync(_server.Uds, name, size);
        var data = Pattern(size, 7);
        await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(data) });

        // Whole region (length 0) with a small chunk: the pooled buffer is reused for every chunk,
        // so any chunk serialized after its buffer was refilled would show up here as corruption.
        using var call = _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 4096 });
        var received = new MemoryStream();
        var expectedOffset = 0UL;
        var messages = 0;
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            var message = call.ResponseStream.Current;
            Assert.Equal(expectedOffset, message.Offset);
            Assert.True(message.Data.Length <= 4096);
            message.Data.WriteTo(received);
            expectedOffset += (ulong)message.Data.Length;
            messages++;
        }

        Assert.Equal(data, received.ToArray());
        Assert.Equal((size + 4095) / 4096, messages);

        // A sub-range with the default chunk.
        using var part = _server.Tcp.StreamReadRegion(new StreamReadRegionRequest { Name = name, Offset = 1000, Length = 200_000 });
        var partReceived = new MemoryStream();
        while (await part.ResponseStream.MoveNext(CancellationToken.None))
        {
            part.ResponseStream.Current.Data.WriteTo(partReceived);
        }

        Assert.Equal(data.AsSpan(1000, 200_000).ToArray(), partReceived.ToArray());

        var (_, status, _) = await AssertError(async () => await _server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 64 << 20 }).ResponseStream.MoveNext(),
            StatusCode.InvalidArgument, "CHUNK_SIZE_TOO_LARGE");
        AssertFieldViolation(status, "chunk_size");
    }

    [Fact]
    public async Task StreamWriteRegion_persists_and_reports_offset_and_crc()
    {
        var name = UniqueName("swrite");
        await CreateAsync(_server.Uds, name, 1 << 20);
        var chunks = Enumerable.Range(0, 10).Select(i => Pattern(10_000 + i, i)).ToList();
        var total = (ulong)chunks.Sum(c => c.Length);

        using var call = _server.Uds.StreamWriteRegion();
        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 5000, TotalLength = total } });
        foreach (var chunk in chunks)
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(chunk) });
        }

        await call.RequestStream.CompleteAsync();
        var response = await call;

        var all = chunks.SelectMany(c => c).ToArray();
        Assert.Equal(total, response.BytesPersisted);
        Assert.Equal(5000 + total, response.PersistedOffset);
        Assert.Equal(Crc64.HashToUInt64(all), response.Crc64);
        var read = await _server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 5000, Length = total });
        Assert.Equal(all, read.Data.ToByteArray());
    }

    [Fact]
    public async Task StreamWriteRegion_protocol_and_range_errors()
    {
        var name = UniqueName("swerr");
        await CreateAsync(_server.Uds, name, 65536);
        var client = _server.Uds;

        // No header.
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(1, 2) });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.InvalidArgument, "MISSING_STREAM_HEADER");

        // Empty stream.
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await call.RequestStream.CompleteAsync();
            await call;
        }, StatusCode.InvalidArgument, "MISSING_STREAM_HEADER");

        // total_length beyond the region: rejected before the first byte is copied.
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 60000, TotalLength = 10000 } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(1000, 1)) });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 100, TotalLength = ulong.MaxValue - 50 } });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.OutOfRange, "RANGE_OVERFLOW");
        var untouched = await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 60000, Length = 1000 });
        Assert.All(untouched.Data.ToByteArray(), b => Assert.Equal(0, b));

        // Without total_length, a chunk running past the end fails; what came before is persistent and reported.
        var (exception, _, info) = await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 60000 } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(4000, 2)) });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(4000, 3)) });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");
        Assert.Equal("64000", info.Metadata["persisted_offset"]);
        Assert.Equal("4000", info.Metadata["bytes_persisted"]);
        Assert.Equal("64000", exception.Trailers.GetValue("pmem-persisted-offset"));
        var written = await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 60000, Length = 4000 });
        Assert.Equal(Pattern(4000, 2), written.Data.ToByteArray());

        // A second header.
        (_, _, info) = await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(100, 4)) });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.InvalidArgument, "UNEXPECTED_STREAM_MESSAGE");
        Assert.Equal("100", info.Metadata["persisted_offset"]);

        // Fewer bytes than total_length.
        (_, _, info) = await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 1000, TotalLength = 500 } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(200, 5)) });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.InvalidArgument, "STREAM_LENGTH_MISMATCH");
        Assert.Equal("1200", info.Metadata["persisted_offset"]);

        // More bytes than total_length.
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 1000, TotalLength = 100 } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(200, 5)) });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.OutOfRange, "RANGE_OUT_OF_BOUNDS");

        // Unmapped region.
        var other = UniqueName("swnm");
        await AssertError(async () =>
        {
            using var call = client.StreamWriteRegion();
            await SendAsync(call, async () =>
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = other } });
                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.NotFound, "REGION_NOT_FOUND");
    }
}
