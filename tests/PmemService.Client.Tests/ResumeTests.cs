using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>
/// An upload interrupted by a server restart resumes from the persisted offset the server reported
/// (pmem-persisted-offset), re-seeking the source; the result is byte-identical with a matching CRC-64.
/// </summary>
public sealed class ResumeTests
{
    [Fact]
    public async Task Upload_resumes_from_the_persisted_offset_after_a_server_restart()
    {
        const int size = 24 << 20;
        const int stopAfter = 9 << 20;
        await using var server = await PmemServer.StartAsync();
        var name = TestData.Name("resume");
        var data = TestData.Bytes(size, 11);

        using (var owner = server.CreateClient())
        {
            await owner.MapRegionAsync(name, size, Granularity.Page, createIfMissing: true);
        }

        using var client = server.CreateClient(new PmemClientOptions
        {
            ChunkSize = 256 << 10,
            MaxTransferResumes = 40,
            // Not too eager: the first retry should land after the old server has finished stopping.
            InitialBackoff = TimeSpan.FromMilliseconds(300),
            MaxBackoff = TimeSpan.FromMilliseconds(600),
        });

        // The source pauses once it has handed out stopAfter bytes, until the server has been stopped.
        var source = new GatedStream(data, stopAfter);
        var upload = client.UploadAsync(source, name, 0);

        await source.ReachedGate.WaitAsync(TimeSpan.FromSeconds(30));
        await server.StopAsync();   // the in-flight stream ends with UNAVAILABLE + its persisted offset
        source.OpenGate();
        await Task.Delay(300);      // the client now retries against a dead socket
        await server.StartAsync();  // same pool, same socket; mappings are gone until the owner maps again
        using (var owner = server.CreateClient())
        {
            await owner.MapRegionAsync(name, size, Granularity.Page);
        }

        var result = await upload.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(size, result.Length);
        Assert.Equal(TestData.Crc64(data), result.Crc64);
        Assert.True(result.Attempts >= 2, $"attempts {result.Attempts}");
        // Every resume started from what the server said was persistent (or, without that, from the
        // start of the failed attempt); the restart's SHUTTING_DOWN carried the persisted offset.
        Assert.Equal(result.ResumedFrom.Count, result.Interruptions.Count);
        var first = result.Interruptions[0];
        Assert.True(first.Kind is PmemErrorKind.Unavailable or PmemErrorKind.Cancelled, first.ToString());
        if (first.PersistedOffset is { } persisted)
        {
            // What the server had received and persisted (HTTP/2 buffers may hold more of what was sent).
            Assert.InRange(persisted, 0, stopAfter);
            Assert.Equal(persisted, result.ResumedFrom[0]);
            Assert.Contains(persisted, source.Seeks);
        }
        else
        {
            // The connection closed before the trailers left: the attempt restarted from its start.
            Assert.Equal(0, result.ResumedFrom[0]);
        }

        var back = new MemoryStream();
        var download = await client.DownloadAsync(name, back);
        Assert.Equal(result.Crc64, download.Crc64);
        Assert.True(data.AsSpan().SequenceEqual(back.GetBuffer().AsSpan(0, (int)back.Length)));
    }

    [Fact]
    public async Task Unseekable_sources_are_not_resumed()
    {
        await using var server = await PmemServer.StartAsync();
        var name = TestData.Name("noresume");
        using var client = server.CreateClient(new PmemClientOptions { ChunkSize = 64 << 10 });
        await client.MapRegionAsync(name, 4 << 20, createIfMissing: true);
        var data = TestData.Bytes(4 << 20, 12);
        var source = new GatedStream(data, 1 << 20, seekable: false);

        var upload = client.UploadAsync(source, name, 0);
        await source.ReachedGate.WaitAsync(TimeSpan.FromSeconds(30));
        await server.StopAsync();
        source.OpenGate();

        var error = await Assert.ThrowsAsync<PmemException>(() => upload.WaitAsync(TimeSpan.FromSeconds(30)));
        // SHUTTING_DOWN normally; CANCELLED when Kestrel resets the stream first; no status details
        // when the connection closes before the trailers leave. Never resumed: one attempt only.
        Assert.True(error.Kind is PmemErrorKind.Unavailable or PmemErrorKind.Cancelled or PmemErrorKind.Internal, error.ToString());
        Assert.Equal([], source.Seeks);
        if (error.PersistedOffset is { } persisted)
        {
            // What the server had received and persisted, at most what was sent before the gate.
            Assert.InRange(persisted, 0, 1 << 20);
        }
    }

    /// <summary>Serves a byte array; blocks a read that crosses <c>gate</c> until <see cref="OpenGate"/>.</summary>
    private sealed class GatedStream(byte[] data, int gate, bool seekable = true) : Stream
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly SemaphoreSlim _reached = new(0);
        private int _position;
        private bool _gateUsed;

        public SemaphoreSlim ReachedGate => _reached;

        public List<long> Seeks { get; } = [];

        public void OpenGate() => _open.TrySetResult();

        public override bool CanRead => true;
        public override bool CanSeek => seekable;
        public override bool CanWrite => false;
        public override long Length => seekable ? data.Length : throw new NotSupportedException();

        public override long Position
        {
            get => seekable ? _position : throw new NotSupportedException();
            set => Seek(value, SeekOrigin.Begin);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_gateUsed && _position >= gate)
            {
                _gateUsed = true;
                _reached.Release();
                await _open.Task.WaitAsync(cancellationToken);
            }

            var n = Math.Min(buffer.Length, data.Length - _position);
            data.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override int Read(byte[] buffer, int offset, int count) =>
            ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override long Seek(long offset, SeekOrigin origin)
        {
            if (!seekable)
            {
                throw new NotSupportedException();
            }

            _position = (int)(origin == SeekOrigin.Begin ? offset : origin == SeekOrigin.Current ? _position + offset : data.Length + offset);
            Seeks.Add(_position);
            return _position;
        }

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
