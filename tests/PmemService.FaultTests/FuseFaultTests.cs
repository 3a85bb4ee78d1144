using Google.Protobuf;
using Grpc.Core;
using PmemService.Contracts.V1;
using PmemTests.Shared;

namespace PmemService.FaultTests;

/// <summary>
/// One faultfs mount and one real service process (pool on the mount) for the class. Each test uses
/// its own region and clears the faults it set.
/// </summary>
public sealed class FuseServiceFixture : IAsyncLifetime
{
    /// <summary>PmemService:UploadCheckpointBytes of the service (default 64 MiB): small, so an upload stream
    /// persists and records its progress every 256 KiB (SharingFuseFaultTests).</summary>
    public const int UploadCheckpointBytes = 256 << 10;

    public FaultFs Fs { get; private set; } = null!;

    public ServiceProcess Service { get; private set; } = null!;

    public string SocketDir { get; private set; } = null!;

    public string BackingPool => Path.Combine(Fs.Backing, "pool");

    /// <summary>What reached storage: bytes of the region's backing file under the FUSE mount.</summary>
    public byte[] Stored(string name, long offset, int length)
    {
        using var f = File.OpenRead(Path.Combine(BackingPool, name));
        var buffer = new byte[length];
        f.Position = offset;
        f.ReadExactly(buffer);
        return buffer;
    }

    public async Task InitializeAsync()
    {
        if (FaultFs.SkipReason is not null)
        {
            return;
        }

        Fs = FaultFs.Mount();
        SocketDir = TestSupport.NewTempDir("/tmp", "pmemfault");
        Service = new ServiceProcess(Path.Combine(Fs.MountPoint, "pool"), Path.Combine(SocketDir, "pmem.sock"),
            environment: new Dictionary<string, string> { ["PmemService__UploadCheckpointBytes"] = UploadCheckpointBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        await Service.StartAsync(TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        if (Service is not null)
        {
            await Service.DisposeAsync();
        }

        Fs?.Dispose();
        if (SocketDir is not null)
        {
            Directory.Delete(SocketDir, recursive: true);
        }
    }
}

/// <summary>
/// Real kernel errors under the real service: faultfs fails the write-back WRITE (so msync returns EIO)
/// or fallocate (ENOSPC); no code seam. Issue 9 items 1 and 2 and the ENOSPC path.
/// </summary>
public sealed class FuseFaultTests(FuseServiceFixture fixture) : IClassFixture<FuseServiceFixture>
{
    private const ulong RegionSize = 4 << 20;

    private PmemService.Contracts.V1.PmemService.PmemServiceClient Client => fixture.Service.Client;

    private async Task<string> CreateRegionAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..24];
        await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize, CreateIfMissing = true });
        return name;
    }

    private byte[] Stored(string name, long offset, int length) => fixture.Stored(name, offset, length);

    [FuseFact]
    public async Task EioDuringStreamWriteIsDataLossAtTheLastPersistedOffsetAndSticky()
    {
        var name = await CreateRegionAsync("stream-eio");
        var head = TestSupport.Pattern(4096, 1);
        Assert.True((await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(head) })).Persisted);

        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        const ulong start = 8192;
        var body = TestSupport.Pattern(256 << 10, 2);
        var (error, info) = await TestSupport.AssertError(async () =>
        {
            using var call = Client.StreamWriteRegion();
            await ClientStreams.SendAsync(call, async () => // the server answers DATA_LOSS while chunks are still being sent
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = start, TotalLength = (ulong)body.Length } });
                for (var i = 0; i < body.Length; i += 64 << 10)
                {
                    await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(body, i, 64 << 10) });
                }

                await call.RequestStream.CompleteAsync();
            });
            await call;
        }, StatusCode.DataLoss, "IO_ERROR");
        Assert.True(fixture.Fs.FailedCount("write") > 0, "the write-back reached faultfs and failed there");

        // Nothing of the stream was persisted: the offset is the header's, in the trailer and in ErrorInfo.
        Assert.Equal(start.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Trailers.GetValue("pmem-persisted-offset"));
        Assert.Equal("8192", info.Metadata["persisted_offset"]);
        Assert.Equal("0", info.Metadata["bytes_persisted"]);

        // The storage recovers; the kernel would now answer msync with 0 (the pages are clean). The
        // service must not: nothing about this mapping is acknowledged as persistent any more.
        fixture.Fs.Clear();
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = start, Length = (ulong)body.Length }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = start, Data = ByteString.CopyFrom(body, 0, 4096) }),
            StatusCode.DataLoss, "IO_ERROR");
        var (again, againInfo) = await TestSupport.AssertError(async () =>
        {
            using var call = Client.StreamWriteRegion();
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = start } });
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(body, 0, 4096) });
            await call.RequestStream.CompleteAsync();
            await call;
        }, StatusCode.DataLoss, "IO_ERROR");
        Assert.Equal("8192", againInfo.Metadata["persisted_offset"]);

        // The bytes acknowledged before the fault are on storage; the stream's are not.
        Assert.Equal(head, Stored(name, 0, 4096));
        Assert.NotEqual(body.AsSpan(0, 4096).ToArray(), Stored(name, (long)start, 4096));

        // Re-established (last reference unmapped, mapped again): a new mapping persists normally. The
        // status of that Unmap is the subject of LastUnmapReportsAFailedPersist.
        try
        {
            await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        }
        catch (RpcException)
        {
        }

        await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize });
        var retry = TestSupport.Pattern(4096, 3);
        Assert.True((await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = start, Data = ByteString.CopyFrom(retry) })).Persisted);
        Assert.Equal(retry, Stored(name, (long)start, 4096));
        await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
    }

    /// <summary>
    /// EIO from the pread of a StreamReadRegion chunk. The handler's checks before a chunk (deleted, file
    /// changed, known bad blocks) read no data, so the pread that fails is the one in the response
    /// serializer, after the message header is already in the response pipe: the call must still end
    /// with DATA_LOSS IO_ERROR (not INTERNAL "incomplete message"), and no chunk may carry wrong bytes;
    /// the failed chunk arrives with empty data before the status. Pages not in the page cache (never
    /// touched since the region was created) are read through FUSE, where faultfs fails them.
    /// </summary>
    [FuseFact]
    public async Task EioOnAStreamReadChunkIsDataLossAndNoChunkCarriesWrongBytes()
    {
        var name = await CreateRegionAsync("read-eio");
        var head = TestSupport.Pattern(64 << 10, 7);
        Assert.True((await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(head) })).Persisted);

        fixture.Fs.Fail("read", "EIO", glob: $"pool/{name}");
        var chunks = new List<StreamReadRegionResponse>();
        try
        {
            await TestSupport.AssertError(async () =>
            {
                using var call = Client.StreamReadRegion(new StreamReadRegionRequest { Name = name, ChunkSize = 64 << 10 });
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    chunks.Add(call.ResponseStream.Current);
                }
            }, StatusCode.DataLoss, "IO_ERROR");
            Assert.True(fixture.Fs.FailedCount("read") > 0, "the pread reached faultfs and failed there");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        // The cached head arrives intact; the first uncached chunk failed inside the serializer: its
        // message (right offset, empty data) is the last one before the status.
        Assert.True(chunks.Count >= 2, $"{chunks.Count} chunks");
        Assert.Equal(0UL, chunks[0].Offset);
        Assert.Equal(head, chunks[0].Data.ToByteArray());
        var expected = 0UL;
        foreach (var chunk in chunks.SkipLast(1))
        {
            Assert.Equal(expected, chunk.Offset);
            Assert.Equal(64 << 10, chunk.Data.Length);
            Assert.True(chunk.Offset == 0 || chunk.Data.Span.IndexOfAnyExcept((byte)0) < 0, "a chunk after the head carries something other than the region's zeros");
            expected += 64 << 10;
        }

        Assert.Equal(expected, chunks[^1].Offset);
        Assert.True(chunks[^1].Data.IsEmpty);
        Assert.DoesNotContain("incomplete", fixture.Service.Output, StringComparison.OrdinalIgnoreCase);

        // With the faults cleared the same range reads normally.
        using var again = Client.StreamReadRegion(new StreamReadRegionRequest { Name = name, Length = 128 << 10 });
        var back = new List<byte>();
        while (await again.ResponseStream.MoveNext(CancellationToken.None))
        {
            back.AddRange(again.ResponseStream.Current.Data);
        }

        Assert.Equal(head, back.Take(head.Length));
        Assert.All(back.Skip(head.Length), b => Assert.Equal(0, b));
        await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
    }

    [FuseFact]
    public async Task EioDuringWriteRegionIsDataLossAndNoLaterCallAnswersOk()
    {
        var name = await CreateRegionAsync("unary-eio");
        var data = TestSupport.Pattern(16 << 10, 4);
        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 65536, Data = ByteString.CopyFrom(data) }),
            StatusCode.DataLoss, "IO_ERROR");
        fixture.Fs.Clear();

        // Same range again, a persist of it, and a write elsewhere: none may answer OK.
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 65536, Data = ByteString.CopyFrom(data) }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 65536, Length = (ulong)data.Length }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20, Data = ByteString.CopyFrom(data) }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20, Data = ByteString.CopyFrom(data), DeferPersist = true }),
            StatusCode.DataLoss, "IO_ERROR");
        Assert.NotEqual(data, Stored(name, 65536, data.Length));
        Assert.Contains("\"PersistFailed\"", fixture.Service.Output, StringComparison.Ordinal);

        try
        {
            await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        }
        catch (RpcException)
        {
        }
    }

    /// <summary>
    /// Issue 9 item 2: the last UnmapRegion persists the mapping and reports a failed persist as a
    /// status (DATA_LOSS IO_ERROR), where ee415a2 logged the failure and answered OK.
    /// </summary>
    [FuseFact]
    public async Task LastUnmapReportsAFailedPersist()
    {
        var name = await CreateRegionAsync("unmap-eio");
        var data = TestSupport.Pattern(64 << 10, 5);
        var written = await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(data), DeferPersist = true });
        Assert.False(written.Persisted);

        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        try
        {
            await TestSupport.AssertError(async () => await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name }),
                StatusCode.DataLoss, "IO_ERROR");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        Assert.NotEqual(data, Stored(name, 0, data.Length));
    }

    /// <summary>ENOSPC at write-back (a thin or full backing store) loses data like EIO: DATA_LOSS, not
    /// RESOURCE_EXHAUSTED, and sticky; the errno is kept in the ErrorInfo.</summary>
    [FuseFact]
    public async Task EnospcOnPersistIsDataLossNotResourceExhausted()
    {
        var name = await CreateRegionAsync("persist-enospc");
        var data = TestSupport.Pattern(8192, 6);
        await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(data), DeferPersist = true });
        fixture.Fs.Fail("write", "ENOSPC", glob: $"pool/{name}");
        try
        {
            var (_, info) = await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 0, Length = 8192 }),
                StatusCode.DataLoss, "IO_ERROR");
            Assert.Equal("errno 28", info.Metadata["pmem2_error"]);
        }
        finally
        {
            fixture.Fs.Clear();
        }

        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = 0, Length = 8192 }),
            StatusCode.DataLoss, "IO_ERROR");
        try
        {
            await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        }
        catch (RpcException)
        {
        }
    }

    [FuseFact]
    public async Task EnospcOnCreateIsPoolSpaceExhaustedAndLeavesNoFile()
    {
        var name = $"enospc-{Guid.NewGuid():N}"[..24];
        fixture.Fs.Fail("fallocate", "ENOSPC");
        try
        {
            await TestSupport.AssertError(async () => await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize, CreateIfMissing = true }),
                StatusCode.ResourceExhausted, "POOL_SPACE_EXHAUSTED");
            Assert.True(fixture.Fs.FailedCount("fallocate") > 0);
        }
        finally
        {
            fixture.Fs.Clear();
        }

        // No region and no temporary left behind, on the mount or in the backing directory.
        var left = Directory.EnumerateFileSystemEntries(fixture.BackingPool).Select(Path.GetFileName).ToList();
        Assert.DoesNotContain(left, f => f!.Contains(name, StringComparison.Ordinal) || f.StartsWith(".creating", StringComparison.Ordinal));
        await TestSupport.AssertError(async () => await Client.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.NotFound, "REGION_NOT_FOUND");

        // Space is back: the same create succeeds.
        var created = await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize, CreateIfMissing = true });
        Assert.True(created.Region.Created);
        await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
    }
}
