using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>Every SDK method against a real server on a Unix socket (and TCP where it matters).</summary>
public sealed class ClientSdkTests : IClassFixture<ServerFixture>, IDisposable
{
    private readonly PmemServer _server;
    private readonly PmemClient _client;

    public ClientSdkTests(ServerFixture fixture)
    {
        _server = fixture.Server;
        _client = _server.CreateClient();
    }

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task Map_get_list_unmap_delete_round_trip()
    {
        var name = TestData.Name("life");
        var created = await _client.MapRegionAsync(name, 1 << 20, Granularity.Page, createIfMissing: true);
        Assert.True(created.Created);
        Assert.True(created.Mapped);
        Assert.Equal(1UL << 20, created.Size);
        Assert.Equal(1U, created.MapReferences);
        Assert.Equal(Granularity.Page, created.EffectiveGranularity);

        // A second map of the same region takes another reference and does not create.
        var again = await _client.MapRegionAsync(name, 0);
        Assert.False(again.Created);
        Assert.Equal(2U, again.MapReferences);

        var info = await _client.GetRegionAsync(name);
        Assert.Equal(name, info.Name);
        Assert.Equal(2U, info.MapReferences);

        var listed = new List<RegionInfo>();
        await foreach (var region in _client.ListRegionsAsync())
        {
            listed.Add(region);
        }

        Assert.Contains(listed, r => r.Name == name && r.Mapped);

        Assert.Equal(1, await _client.UnmapRegionAsync(name));
        Assert.Equal(0, await _client.UnmapRegionAsync(name));
        Assert.False((await _client.GetRegionAsync(name)).Mapped);

        await _client.DeleteRegionAsync(name);
        var gone = await Assert.ThrowsAsync<PmemException>(() => _client.GetRegionAsync(name));
        Assert.Equal(PmemErrorKind.RegionNotFound, gone.Kind);
    }

    [Fact]
    public async Task ListRegions_walks_every_page_in_name_order()
    {
        var prefix = TestData.Name("page");
        var names = Enumerable.Range(0, 7).Select(i => $"{prefix}-{i}").ToList();
        foreach (var name in names)
        {
            await _client.MapRegionAsync(name, 4096, createIfMissing: true);
        }

        try
        {
            var listed = new List<string>();
            await foreach (var region in _client.ListRegionsAsync(pageSize: 2))
            {
                listed.Add(region.Name);
            }

            Assert.Equal(names, listed.Where(n => n.StartsWith(prefix + "-", StringComparison.Ordinal)).ToList());
            Assert.Equal(listed.Order(StringComparer.Ordinal).ToList(), listed);
        }
        finally
        {
            foreach (var name in names)
            {
                await _client.DeleteRegionAsync(name, force: true);
            }
        }
    }

    [Fact]
    public async Task Write_read_persist_round_trip()
    {
        var name = TestData.Name("rw");
        await _client.MapRegionAsync(name, 64 << 10, createIfMissing: true);
        var data = TestData.Bytes(5000, 1);

        var written = await _client.WriteAsync(name, 1234, data);
        Assert.Equal(new WriteResult(5000, true), written);

        var deferred = await _client.WriteAsync(name, 40000, data.AsMemory(0, 100), deferPersist: true);
        Assert.Equal(new WriteResult(100, false), deferred);
        Assert.Equal(100, await _client.PersistAsync(name, 40000, 100));
        Assert.Equal(64 << 10, await _client.PersistAsync(name));

        var read = await _client.ReadAsync(name, 1234, 5000);
        Assert.Equal(data, read.ToArray());
        var around = await _client.ReadAsync(name, 1230, 8);
        Assert.Equal(new byte[] { 0, 0, 0, 0, data[0], data[1], data[2], data[3] }, around.ToArray());
        Assert.Equal(data.AsSpan(0, 100).ToArray(), (await _client.ReadAsync(name, 40000, 100)).ToArray());

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Errors_are_typed_with_reason_and_metadata()
    {
        var missing = await Assert.ThrowsAsync<PmemException>(() => _client.GetRegionAsync("no-such-region"));
        Assert.Equal(PmemErrorKind.RegionNotFound, missing.Kind);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Equal("REGION_NOT_FOUND", missing.Reason);
        Assert.Equal("no-such-region", missing.Metadata["region"]);
        Assert.Contains("no-such-region", missing.Message, StringComparison.Ordinal);
        Assert.IsType<RpcException>(missing.InnerException);

        var badName = await Assert.ThrowsAsync<PmemException>(() => _client.MapRegionAsync("bad/name", 4096, createIfMissing: true));
        Assert.Equal(PmemErrorKind.InvalidArgument, badName.Kind);
        Assert.Equal("INVALID_REGION_NAME", badName.Reason);

        var name = TestData.Name("err");
        await _client.MapRegionAsync(name, 8192, createIfMissing: true);
        try
        {
            var range = await Assert.ThrowsAsync<PmemException>(() => _client.ReadAsync(name, 8000, 500));
            Assert.Equal(PmemErrorKind.OutOfRange, range.Kind);
            Assert.Equal("RANGE_OUT_OF_BOUNDS", range.Reason);

            var size = await Assert.ThrowsAsync<PmemException>(() => _client.MapRegionAsync(name, 4096));
            Assert.Equal(PmemErrorKind.FailedPrecondition, size.Kind);
            Assert.Equal("REGION_SIZE_MISMATCH", size.Reason);

            var inUse = await Assert.ThrowsAsync<PmemException>(() => _client.DeleteRegionAsync(name));
            Assert.Equal(PmemErrorKind.FailedPrecondition, inUse.Kind);
            Assert.Equal("REGION_IN_USE", inUse.Reason);

            await _client.UnmapRegionAsync(name);
            var notMapped = await Assert.ThrowsAsync<PmemException>(() => _client.WriteAsync(name, 0, new byte[] { 1 }));
            Assert.Equal("REGION_NOT_MAPPED", notMapped.Reason);
            Assert.Equal("REGION_NOT_MAPPED: Region '" + name + "' is not mapped; call MapRegion first.", notMapped.ToString());

            var tooBig = await Assert.ThrowsAsync<PmemException>(() => _client.MapRegionAsync(TestData.Name("huge"), 2L << 30, createIfMissing: true));
            Assert.Equal(PmemErrorKind.ResourceExhausted, tooBig.Kind);
            Assert.Equal("REGION_SIZE_LIMIT", tooBig.Reason);
        }
        finally
        {
            await _client.DeleteRegionAsync(name, force: true);
        }
    }

    [Fact]
    public async Task Deadline_and_cancellation_surface_distinctly()
    {
        using var hurried = _server.CreateClient(new PmemClientOptions { DefaultDeadline = TimeSpan.FromTicks(1) });
        var late = await Assert.ThrowsAsync<PmemException>(() => hurried.GetRegionAsync("anything"));
        Assert.Equal(PmemErrorKind.DeadlineExceeded, late.Kind);

        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _client.GetRegionAsync("anything", cts.Token));
    }

    [Fact]
    public async Task Unreachable_server_is_unavailable()
    {
        using var nowhere = new PmemClient("unix://" + Path.Combine(_server.Root, "absent.sock"),
            new PmemClientOptions { MaxRetryAttempts = 2, InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(20) });
        var error = await Assert.ThrowsAsync<PmemException>(() => nowhere.GetRegionAsync("x"));
        Assert.Equal(PmemErrorKind.Unavailable, error.Kind);
        Assert.Null(error.Reason);
    }

    [Fact]
    public async Task Health_reports_serving_and_unknown_services()
    {
        Assert.Equal(PmemHealthStatus.Serving, await _client.CheckHealthAsync());
        Assert.Equal(PmemHealthStatus.Serving, await _client.CheckHealthAsync("readiness"));
        Assert.Equal(PmemHealthStatus.ServiceUnknown, await _client.CheckHealthAsync("no-such-service"));
    }

    [Fact]
    public async Task Tcp_address_works_too()
    {
        using var tcp = _server.CreateClient(tcp: true);
        Assert.False(tcp.Endpoint.IsUnixSocket);
        var name = TestData.Name("tcp");
        await tcp.MapRegionAsync(name, 4096, createIfMissing: true);
        await tcp.WriteAsync(name, 10, "over tcp"u8.ToArray());
        Assert.Equal("over tcp"u8.ToArray(), (await _client.ReadAsync(name, 10, 8)).ToArray());
        await tcp.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Upload_and_download_20_MiB_through_4_MiB_messages()
    {
        const int size = 20 << 20;
        var name = TestData.Name("big");
        await _client.MapRegionAsync(name, size + 4096, createIfMissing: true);
        var data = TestData.Bytes(size, 2);
        var path = Path.Combine(_server.Root, name + ".in");
        await File.WriteAllBytesAsync(path, data);

        var reports = new List<long>();
        var upload = await _client.UploadAsync(path, name, 4096, new SyncProgress(reports.Add));
        Assert.Equal(size, upload.Length);
        Assert.Equal(4096, upload.Offset);
        Assert.Equal(1, upload.Attempts);
        Assert.Empty(upload.ResumedFrom);
        Assert.Equal(TestData.Crc64(data), upload.Crc64);
        Assert.Equal(size, reports[^1]);
        Assert.Equal(reports.Order().ToList(), reports);
        Assert.True(reports.Count >= 20);

        var downloaded = new MemoryStream();
        var downloadReports = new List<long>();
        var download = await _client.DownloadAsync(name, downloaded, 4096, size, new SyncProgress(downloadReports.Add));
        Assert.Equal(size, download.Length);
        Assert.Equal(upload.Crc64, download.Crc64);
        Assert.True(data.AsSpan().SequenceEqual(downloaded.GetBuffer().AsSpan(0, (int)downloaded.Length)));
        Assert.Equal(size, downloadReports[^1]);

        // The whole region to a file (length 0 = to the end): 4 KiB of zeros, then the data.
        var outPath = Path.Combine(_server.Root, name + ".out");
        var whole = await _client.DownloadAsync(name, outPath);
        Assert.Equal(size + 4096, whole.Length);
        var back = await File.ReadAllBytesAsync(outPath);
        Assert.True(back.AsSpan(0, 4096).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(4096).SequenceEqual(data));

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Upload_from_unseekable_stream_with_odd_chunking()
    {
        var name = TestData.Name("pipe");
        await _client.MapRegionAsync(name, 1 << 20, createIfMissing: true);
        using var small = _server.CreateClient(new PmemClientOptions { ChunkSize = 10_000, ReadChunkSize = 7_777 });
        var data = TestData.Bytes(345_678, 3);

        var upload = await small.UploadAsync(new UnseekableStream(data), name, 1000);
        Assert.Equal(data.Length, upload.Length);
        Assert.Equal(TestData.Crc64(data), upload.Crc64);

        var back = new MemoryStream();
        var download = await small.DownloadAsync(name, back, 1000, data.Length);
        Assert.Equal(upload.Crc64, download.Crc64);
        Assert.Equal(data, back.ToArray());

        // Empty upload: a header and nothing else.
        var empty = await small.UploadAsync(new MemoryStream(), name, 0);
        Assert.Equal(0, empty.Length);
        Assert.Equal(0UL, empty.Crc64);

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Upload_past_the_end_of_the_region_is_out_of_range_before_any_write()
    {
        var name = TestData.Name("over");
        await _client.MapRegionAsync(name, 64 << 10, createIfMissing: true);
        var data = TestData.Bytes(64 << 10, 4);
        var error = await Assert.ThrowsAsync<PmemException>(() => _client.UploadAsync(new MemoryStream(data), name, 1));
        Assert.Equal(PmemErrorKind.OutOfRange, error.Kind);
        Assert.Equal("RANGE_OUT_OF_BOUNDS", error.Reason);
        // total_length is validated first: nothing was written.
        Assert.True((await _client.ReadAsync(name, 0, 64 << 10)).Span.IndexOfAnyExcept((byte)0) < 0);

        var missing = await Assert.ThrowsAsync<PmemException>(() => _client.UploadAsync(new MemoryStream(data), "no-such-region"));
        Assert.Equal(PmemErrorKind.RegionNotFound, missing.Kind);

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Download_rejects_ranges_outside_the_region()
    {
        var name = TestData.Name("dlr");
        await _client.MapRegionAsync(name, 4096, createIfMissing: true);
        var error = await Assert.ThrowsAsync<PmemException>(() => _client.DownloadAsync(name, Stream.Null, 4000, 200));
        Assert.Equal(PmemErrorKind.OutOfRange, error.Kind);
        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Corruption_in_transit_is_caught_by_the_crc64_check()
    {
        var name = TestData.Name("crc");
        await _client.MapRegionAsync(name, 1 << 20, createIfMissing: true);
        var handler = new CorruptingHandler(flipAt: 300_000) { InnerHandler = new SocketsHttpHandler() };
        using var corrupt = new PmemClient(_server.TcpAddress, new PmemClientOptions { HttpHandler = handler });
        var data = TestData.Bytes(1 << 20, 5);

        var error = await Assert.ThrowsAsync<PmemChecksumMismatchException>(() => corrupt.UploadAsync(new MemoryStream(data), name));
        Assert.Equal(PmemErrorKind.ChecksumMismatch, error.Kind);
        Assert.Equal("CHECKSUM_MISMATCH", error.Reason);
        Assert.Equal(TestData.Crc64(data), error.ExpectedCrc64);
        Assert.NotEqual(error.ExpectedCrc64, error.ActualCrc64);
        Assert.True(handler.Flipped);

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Idempotent_calls_are_retried_and_writes_are_not()
    {
        var name = TestData.Name("retry");
        await _client.MapRegionAsync(name, 4096, createIfMissing: true);
        var handler = new FailingHandler { InnerHandler = new SocketsHttpHandler() };
        using var flaky = new PmemClient(_server.TcpAddress, new PmemClientOptions
        {
            HttpHandler = handler,
            InitialBackoff = TimeSpan.FromMilliseconds(5),
            MaxBackoff = TimeSpan.FromMilliseconds(10),
        });

        handler.FailNext = 2;
        var info = await flaky.GetRegionAsync(name);
        Assert.Equal(name, info.Name);
        Assert.Equal(3, handler.Requests);

        handler.Requests = 0;
        handler.FailNext = 1;
        var write = await Assert.ThrowsAsync<PmemException>(() => flaky.WriteAsync(name, 0, new byte[] { 7 }));
        Assert.Equal(PmemErrorKind.Unavailable, write.Kind);
        Assert.Equal(1, handler.Requests);
        Assert.Equal(0, (await _client.ReadAsync(name, 0, 1)).Span[0]);

        await _client.DeleteRegionAsync(name, force: true);
    }

    [Theory]
    [InlineData("unix:///run/pmem/pmem.sock", "/run/pmem/pmem.sock", null)]
    [InlineData("unix:/tmp/a.sock", "/tmp/a.sock", null)]
    [InlineData("/tmp/b.sock", "/tmp/b.sock", null)]
    [InlineData("http://127.0.0.1:5001", null, "http://127.0.0.1:5001/")]
    [InlineData("http://localhost:5001/ignored/path", null, "http://localhost:5001/")]
    [InlineData("127.0.0.1:6000", null, "http://127.0.0.1:6000/")]
    public void Endpoint_parses_unix_and_http_forms(string address, string? socket, string? http)
    {
        var endpoint = PmemEndpoint.Parse(address);
        Assert.Equal(socket, endpoint.SocketPath);
        Assert.Equal(http, endpoint.HttpAddress?.ToString());
    }

    [Fact]
    public void Endpoint_resolves_relative_socket_paths_and_rejects_garbage()
    {
        Assert.Equal(Path.GetFullPath("data/pmem.sock"), PmemEndpoint.Parse("unix:data/pmem.sock").SocketPath);
        Assert.Equal("unix://" + Path.GetFullPath("data/pmem.sock"), PmemEndpoint.Parse("unix:data/pmem.sock").ToString());
        Assert.Throws<FormatException>(() => PmemEndpoint.Parse(""));
        Assert.Throws<FormatException>(() => PmemEndpoint.Parse("ftp://x:1"));
        Assert.Throws<FormatException>(() => PmemEndpoint.Parse("unix://relative.sock"));
        Assert.Throws<FormatException>(() => PmemEndpoint.Parse("justaname"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PmemClient("http://127.0.0.1:1", new PmemClientOptions { ChunkSize = 0 }));
    }
}

/// <summary>Reports synchronously (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress(Action<long> report) : IProgress<long>
{
    public void Report(long value) => report(value);
}

/// <summary>A read-only, non-seekable view of a byte array that returns short reads.</summary>
internal sealed class UnseekableStream(byte[] data) : Stream
{
    private int _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = Math.Min(Math.Min(count, 3_333), data.Length - _position);
        data.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
        _position += n;
        return n;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Flips one bit of the request body of StreamWriteRegion calls at a given body offset.</summary>
internal sealed class CorruptingHandler(long flipAt) : DelegatingHandler
{
    public bool Flipped { get; private set; }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri!.AbsolutePath.EndsWith("/StreamWriteRegion", StringComparison.Ordinal) && request.Content is { } content)
        {
            request.Content = new CorruptingContent(content, flipAt, () => Flipped = true);
        }

        return await base.SendAsync(request, cancellationToken);
    }

    private sealed class CorruptingContent : HttpContent
    {
        private readonly HttpContent inner;
        private readonly long flipAt;
        private readonly Action flipped;

        public CorruptingContent(HttpContent inner, long flipAt, Action flipped)
        {
            this.inner = inner;
            this.flipAt = flipAt;
            this.flipped = flipped;
            foreach (var header in inner.Headers)
            {
                Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) =>
            await inner.CopyToAsync(new FlipStream(stream, flipAt, flipped));

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    private sealed class FlipStream(Stream inner, long flipAt, Action flipped) : Stream
    {
        private long _position;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (flipAt >= _position && flipAt < _position + buffer.Length)
            {
                var copy = buffer.ToArray();
                copy[flipAt - _position] ^= 0x01;
                flipped();
                buffer = copy;
            }

            _position += buffer.Length;
            await inner.WriteAsync(buffer, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>Fails the next N requests as if the connection could not be made (gRPC: UNAVAILABLE).</summary>
internal sealed class FailingHandler : DelegatingHandler
{
    public int FailNext { get; set; }

    public int Requests { get; set; }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Requests++;
        if (FailNext > 0)
        {
            FailNext--;
            throw new HttpRequestException(HttpRequestError.ConnectionError, "injected connection failure",
                new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionRefused));
        }

        return base.SendAsync(request, cancellationToken);
    }
}
