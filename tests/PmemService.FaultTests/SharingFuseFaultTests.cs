using System.Buffers.Binary;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using PmemService.Contracts.V1;
using PmemTests.Shared;

namespace PmemService.FaultTests;

/// <summary>
/// Issue 14's sharing primitives under real kernel write-back errors (faultfs, pool on the FUSE mount,
/// PAGE granularity: every persist is an msync): the persistent atomics (AtomicWrite / CompareAndSwap /
/// FetchAdd) and the resumable-upload records (StreamWriteRegion with an upload id, GetUpload,
/// <c>user.pmem.uploads</c>). Each test uses its own region and clears the faults it set.
/// </summary>
public sealed class SharingFuseFaultTests(FuseServiceFixture fixture) : IClassFixture<FuseServiceFixture>
{
    private const ulong RegionSize = 4 << 20;
    private const int Chunk = 64 << 10;
    private const int Checkpoint = FuseServiceFixture.UploadCheckpointBytes;

    private PmemService.Contracts.V1.PmemService.PmemServiceClient Client => fixture.Service.Client;

    /// <summary>
    /// The CPU atomic succeeds, the msync of its page gets EIO: DATA_LOSS IO_ERROR, no watch event, and the
    /// mapping refuses every later atomic, write and persist (never retried into success) until it is
    /// re-established; readiness stays SERVING (one mapping failed, the pool is fine).
    /// </summary>
    [FuseFact]
    public async Task EioOnAnAtomicsPersistIsDataLossStickyAndPublishesNoWatchEvent()
    {
        var name = await CreateRegionAsync("atomic-eio");
        const ulong Counter = 8192;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        using var watch = Client.WatchRegion(new WatchRegionRequest { Name = name }, cancellationToken: cts.Token);
        await watch.ResponseHeadersAsync; // the subscription exists: no later event is missed

        // Baseline: one acknowledged FetchAdd, persisted and watched.
        Assert.Equal(5, (await Client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = Counter, Delta = 5 })).Value);
        Assert.Equal(5, StoredInt64(name, Counter));
        var baseline = await NextEventAsync(watch, cts.Token);
        Assert.Equal((WatchEventKind.FetchAdd, Counter, 8UL), (baseline.Kind, baseline.Offset, baseline.Length));
        Assert.Equal(baseline.Sequence, (await Client.GetRegionAsync(new GetRegionRequest { Name = name })).Region.WatchSequence);

        var failedBefore = fixture.Fs.FailedCount("write");
        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        try
        {
            var (_, info) = await TestSupport.AssertError(async () => await Client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = Counter, Delta = 1 }),
                StatusCode.DataLoss, "IO_ERROR");
            Assert.Equal(name, info.Metadata["region"]);
            Assert.Equal("errno 5", info.Metadata["pmem2_error"]);
            Assert.True(fixture.Fs.FailedCount("write") > failedBefore, "the atomic's write-back reached faultfs and failed there");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        // Storage is healthy again; the kernel would answer a new msync with 0 (the page is clean). The
        // service must not: every atomic, write and persist of this mapping fails, again and again.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            await TestSupport.AssertError(async () => await Client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = Counter, Delta = 1 }),
                StatusCode.DataLoss, "IO_ERROR");
            await TestSupport.AssertError(async () => await Client.CompareAndSwapAsync(new CompareAndSwapRequest { Name = name, Offset = Counter, Expected = 6, Desired = 100 }),
                StatusCode.DataLoss, "IO_ERROR");
            await TestSupport.AssertError(async () => await Client.AtomicWriteAsync(new AtomicWriteRequest { Name = name, Offset = Counter + 8, Value = 42 }),
                StatusCode.DataLoss, "IO_ERROR");
        }

        var data = TestSupport.Pattern(4096, 41);
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20, Data = ByteString.CopyFrom(data) }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 1 << 20, Data = ByteString.CopyFrom(data), FlushType = FlushType.Visibility }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = Counter, Length = 8 }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name }),
            StatusCode.DataLoss, "IO_ERROR");

        // The refused calls changed nothing (they are refused before the CPU atomic); the failed add is not on storage.
        var inMapping = (await Client.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = Counter, Length = 16 })).Data.ToByteArray();
        Assert.InRange(BinaryPrimitives.ReadInt64LittleEndian(inMapping), 5, 6); // 6: the failed add's store is visible in the page cache, never acknowledged
        Assert.Equal(0, BinaryPrimitives.ReadInt64LittleEndian(inMapping.AsSpan(8)));
        Assert.Equal(0, StoredInt64(name, Counter + 8));
        Assert.Equal(5, StoredInt64(name, Counter));

        // No event for the failed atomic or any refused call; the region and the pool still answer.
        var region = (await Client.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.True(region.Mapped);
        Assert.Equal(baseline.Sequence, region.WatchSequence);
        var readiness = await new Health.HealthClient(fixture.Service.Channel).CheckAsync(new HealthCheckRequest { Service = "readiness" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, readiness.Status);
        Assert.Contains("\"PersistFailed\"", fixture.Service.Output, StringComparison.Ordinal);

        // Re-established (the last Unmap reports the failure, the map is new): the next atomic is acknowledged,
        // and it is the very next event the watcher gets: nothing was published in between.
        await TestSupport.AssertError(async () => await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name }),
            StatusCode.DataLoss, "IO_ERROR");
        await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize });
        var after = await Client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = Counter, Delta = 10 });
        Assert.Equal(5, after.Previous); // the new mapping reads what storage has: the failed add is gone
        Assert.Equal(15, StoredInt64(name, Counter));
        var next = await NextEventAsync(watch, cts.Token);
        Assert.Equal((baseline.Sequence + 1, WatchEventKind.FetchAdd, Counter), (next.Sequence, next.Kind, next.Offset));
        await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
    }

    /// <summary>
    /// An upload continues (an earlier stream of the same id was acknowledged); the stream's first checkpoint
    /// is persisted and recorded, then its next checkpoint's msync gets EIO: DATA_LOSS IO_ERROR at the first
    /// checkpoint's offset, and GetUpload reports exactly that offset (never the copied-but-lost bytes), also
    /// after a retry of the stream (refused: the mapping's failure is sticky).
    /// </summary>
    [FuseFact]
    public async Task EioAtAnUploadCheckpointKeepsTheRecordAtTheLastPersistedCheckpoint()
    {
        var name = await CreateRegionAsync("upload-ckpt");
        var content = TestSupport.Pattern(1 << 20, 42);
        const string Id = "ckpt-upload";
        const ulong First = 128 << 10;
        var acknowledged = await UploadAsync(name, Id, 0, content.AsMemory(0, (int)First));
        Assert.Equal((0UL, First), (acknowledged.Upload.StartOffset, acknowledged.Upload.PersistedOffset));

        const ulong Checkpointed = First + Checkpoint;
        using var call = Client.StreamWriteRegion();
        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = First, UploadId = Id } });
        for (var at = (int)First; at < (int)Checkpointed; at += Chunk)
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(content, at, Chunk) });
        }

        // Bounded wait for the checkpoint's record (persist, then record).
        UploadInfo? record = null;
        for (var i = 0; i < 400 && record?.PersistedOffset != Checkpointed; i++)
        {
            record = await GetUploadAsync(name, Id);
            if (record.PersistedOffset != Checkpointed)
            {
                await Task.Delay(25);
            }
        }

        Assert.Equal((0UL, Checkpointed), (record!.StartOffset, record.PersistedOffset));

        var failedBefore = fixture.Fs.FailedCount("write");
        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        RpcException error;
        Google.Rpc.ErrorInfo info;
        try
        {
            (error, info) = await TestSupport.AssertError(async () =>
            {
                await ClientStreams.SendAsync(call, async () =>
                {
                    for (var at = (int)Checkpointed; at < (int)Checkpointed + Checkpoint; at += Chunk)
                    {
                        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(content, at, Chunk) });
                    }

                    await call.RequestStream.CompleteAsync();
                });
                await call;
            }, StatusCode.DataLoss, "IO_ERROR");
            Assert.True(fixture.Fs.FailedCount("write") > failedBefore, "the checkpoint's write-back reached faultfs and failed there");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        // The answer and the record both stop at the last checkpoint that persisted.
        Assert.Equal(Checkpointed.ToString(CultureInfo.InvariantCulture), error.Trailers.GetValue("pmem-persisted-offset"));
        Assert.Equal(Checkpointed.ToString(CultureInfo.InvariantCulture), info.Metadata["persisted_offset"]);
        Assert.Equal(((ulong)Checkpoint).ToString(CultureInfo.InvariantCulture), info.Metadata["bytes_persisted"]);
        Assert.Equal((0UL, Checkpointed), Offsets(await GetUploadAsync(name, Id)));
        Assert.Equal(content.AsSpan(0, (int)Checkpointed).ToArray(), Stored(name, 0, (int)Checkpointed));
        Assert.NotEqual(content.AsSpan((int)Checkpointed, Chunk).ToArray(), Stored(name, (long)Checkpointed, Chunk));

        // Storage is back: resuming the upload on this mapping is refused before a byte is copied or recorded.
        var (_, again) = await TestSupport.AssertError(async () => await UploadAsync(name, Id, Checkpointed, content.AsMemory((int)Checkpointed, Chunk)),
            StatusCode.DataLoss, "IO_ERROR");
        Assert.Equal(Checkpointed.ToString(CultureInfo.InvariantCulture), again.Metadata["persisted_offset"]);
        Assert.Equal((0UL, Checkpointed), Offsets(await GetUploadAsync(name, Id)));
        await UnmapIgnoringStatusAsync(name);
    }

    /// <summary>
    /// An upload stream that never reaches a checkpoint: its only persist is the final one, which gets EIO.
    /// DATA_LOSS IO_ERROR at the stream's start, and the record stays the one of the earlier acknowledged
    /// stream of the same id.
    /// </summary>
    [FuseFact]
    public async Task EioOnTheFinalPersistOfAnUploadStreamLeavesTheEarlierRecord()
    {
        var name = await CreateRegionAsync("upload-final");
        var content = TestSupport.Pattern(256 << 10, 43);
        const string Id = "final-upload";
        const ulong First = 64 << 10;
        await UploadAsync(name, Id, 0, content.AsMemory(0, (int)First));

        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        try
        {
            var (error, info) = await TestSupport.AssertError(async () => await UploadAsync(name, Id, First, content.AsMemory((int)First, 2 * Chunk)),
                StatusCode.DataLoss, "IO_ERROR");
            Assert.Equal(First.ToString(CultureInfo.InvariantCulture), error.Trailers.GetValue("pmem-persisted-offset"));
            Assert.Equal("0", info.Metadata["bytes_persisted"]);
        }
        finally
        {
            fixture.Fs.Clear();
        }

        Assert.Equal((0UL, First), Offsets(await GetUploadAsync(name, Id)));
        Assert.Equal(content.AsSpan(0, (int)First).ToArray(), Stored(name, 0, (int)First));
        Assert.NotEqual(content.AsSpan((int)First, Chunk).ToArray(), Stored(name, (long)First, Chunk));
        await UnmapIgnoringStatusAsync(name);
    }

    /// <summary>
    /// The record itself cannot be written (faultfs fails the region file's setxattr with EIO): a stream
    /// whose first record fails answers non-OK before copying a byte, one whose final record fails answers
    /// non-OK although its bytes persisted; GetUpload keeps the last record that was written (behind the
    /// bytes, never ahead). A metadata failure is not a lost write-back: the mapping keeps persisting.
    /// </summary>
    [FuseFact]
    public async Task AFailedUploadRecordWriteIsNeverAnsweredOk()
    {
        var name = await CreateRegionAsync("upload-xattr");
        var content = TestSupport.Pattern(512 << 10, 44);
        const string Id = "xattr-upload";
        const ulong First = 64 << 10;
        var first = await UploadAsync(name, Id, 0, content.AsMemory(0, (int)First));
        Assert.Equal((0UL, First), Offsets(first.Upload));

        // 1. The record at the stream's start fails: nothing is copied.
        var failedBefore = fixture.Fs.FailedCount("setxattr");
        fixture.Fs.Fail("setxattr", "EIO", glob: $"pool/{name}");
        try
        {
            await TestSupport.AssertError(async () => await UploadAsync(name, Id, First, content.AsMemory((int)First, Chunk)),
                StatusCode.DataLoss, "IO_ERROR");
            Assert.True(fixture.Fs.FailedCount("setxattr") > failedBefore, "the record's setxattr reached faultfs and failed there");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        Assert.Equal((0UL, First), Offsets(await GetUploadAsync(name, Id)));
        Assert.Equal(new byte[Chunk], Stored(name, (long)First, Chunk));

        // 2. The record at the stream's start is written, the final one fails: the bytes persisted, the
        // answer is not OK and the record stays behind them.
        var updated = (await GetUploadAsync(name, Id)).UpdatedUnixMs;
        await Task.Delay(20); // the start record gets a later updated_unix_ms
        using var call = Client.StreamWriteRegion();
        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = First, UploadId = Id } });
        UploadInfo? started = null;
        for (var i = 0; i < 400 && (started is null || started.UpdatedUnixMs == updated); i++)
        {
            started = await GetUploadAsync(name, Id);
            if (started.UpdatedUnixMs == updated)
            {
                await Task.Delay(25);
            }
        }

        Assert.NotEqual(updated, started!.UpdatedUnixMs);
        Assert.Equal((0UL, First), Offsets(started));
        fixture.Fs.Fail("setxattr", "EIO", glob: $"pool/{name}");
        try
        {
            var (error, _) = await TestSupport.AssertError(async () =>
            {
                await ClientStreams.SendAsync(call, async () =>
                {
                    await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(content, (int)First, Chunk) });
                    await call.RequestStream.CompleteAsync();
                });
                await call;
            }, StatusCode.DataLoss, "IO_ERROR");
            Assert.Equal((First + Chunk).ToString(CultureInfo.InvariantCulture), error.Trailers.GetValue("pmem-persisted-offset"));
        }
        finally
        {
            fixture.Fs.Clear();
        }

        Assert.Equal((0UL, First), Offsets(await GetUploadAsync(name, Id)));
        Assert.Equal(content.AsSpan(0, (int)First + Chunk).ToArray(), Stored(name, 0, (int)First + Chunk));

        // The mapping is not failed: the upload resumes from its record and completes.
        var resumed = await UploadAsync(name, Id, First, content.AsMemory((int)First, 2 * Chunk));
        Assert.Equal((0UL, First + (2 * Chunk)), Offsets(resumed.Upload));
        Assert.Equal(content.AsSpan(0, (int)First + (2 * Chunk)).ToArray(), Stored(name, 0, (int)First + (2 * Chunk)));
        await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
    }

    /// <summary>
    /// The record is fsynced on the mapped descriptor. When that fsync is the one the kernel tells about a
    /// failed write-back of the mapping (here: bytes of a VISIBILITY write), the error is reported to that
    /// descriptor once: the mapping must take it as its own persist failure, or a later PersistRegion's
    /// msync returns 0 and answers OK for bytes that never reached storage.
    /// </summary>
    [FuseFact]
    public async Task AnUploadRecordsFsyncThatSeesAFailedWriteBackFailsTheMapping()
    {
        var name = await CreateRegionAsync("upload-fsync");
        var visible = TestSupport.Pattern(8192, 45);
        const ulong VisibleAt = 1 << 20;
        var written = await Client.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = VisibleAt, Data = ByteString.CopyFrom(visible), FlushType = FlushType.Visibility });
        Assert.False(written.Persisted);

        var failedBefore = fixture.Fs.FailedCount("write");
        fixture.Fs.Fail("write", "EIO", glob: $"pool/{name}");
        try
        {
            // The stream's first record (fsetxattr + fsync of the mapped descriptor) writes the dirty page back.
            var (_, info) = await TestSupport.AssertError(async () => await UploadAsync(name, "fsync-upload", 0, TestSupport.Pattern(4096, 46)),
                StatusCode.DataLoss, "IO_ERROR");
            Assert.Equal("0", info.Metadata["persisted_offset"]);
            Assert.True(fixture.Fs.FailedCount("write") > failedBefore, "the write-back reached faultfs and failed there");
        }
        finally
        {
            fixture.Fs.Clear();
        }

        // Storage is healthy again: persisting the VISIBILITY bytes must not answer OK (they are lost).
        await TestSupport.AssertError(async () => await Client.PersistRegionAsync(new PersistRegionRequest { Name = name, Offset = VisibleAt, Length = (ulong)visible.Length }),
            StatusCode.DataLoss, "IO_ERROR");
        await TestSupport.AssertError(async () => await Client.FetchAddAsync(new FetchAddRequest { Name = name, Offset = 0, Delta = 1 }),
            StatusCode.DataLoss, "IO_ERROR");
        Assert.NotEqual(visible, Stored(name, (long)VisibleAt, visible.Length));

        // The record, if the start record's attribute landed, claims nothing beyond the stream's start.
        try
        {
            Assert.Equal((0UL, 0UL), Offsets(await GetUploadAsync(name, "fsync-upload")));
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
        }

        await UnmapIgnoringStatusAsync(name);
    }

    private async Task<string> CreateRegionAsync(string prefix)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..24];
        await Client.MapRegionAsync(new MapRegionRequest { Name = name, Size = RegionSize, CreateIfMissing = true });
        return name;
    }

    private async Task UnmapIgnoringStatusAsync(string name)
    {
        try
        {
            await Client.UnmapRegionAsync(new UnmapRegionRequest { Name = name });
        }
        catch (RpcException)
        {
        }
    }

    /// <summary>One StreamWriteRegion of <paramref name="data"/> at <paramref name="offset"/> with an upload id, in 64 KiB chunks.</summary>
    private async Task<StreamWriteRegionResponse> UploadAsync(string name, string id, ulong offset, ReadOnlyMemory<byte> data)
    {
        using var call = Client.StreamWriteRegion();
        await ClientStreams.SendAsync(call, async () =>
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = offset, UploadId = id, TotalLength = (ulong)data.Length } });
            for (var at = 0; at < data.Length; at += Chunk)
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(data.Span.Slice(at, Math.Min(Chunk, data.Length - at))) });
            }

            await call.RequestStream.CompleteAsync();
        });
        return await call;
    }

    private async Task<UploadInfo> GetUploadAsync(string name, string id) =>
        (await Client.GetUploadAsync(new GetUploadRequest { Name = name, UploadId = id })).Upload;

    private static (ulong Start, ulong Persisted) Offsets(UploadInfo record) => (record.StartOffset, record.PersistedOffset);

    private static async Task<WatchRegionResponse> NextEventAsync(AsyncServerStreamingCall<WatchRegionResponse> watch, CancellationToken token)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        Assert.True(await watch.ResponseStream.MoveNext(timeout.Token), "the watch ended");
        return watch.ResponseStream.Current;
    }

    /// <summary>What reached storage: the backing file under the FUSE mount.</summary>
    private byte[] Stored(string name, long offset, int length) => fixture.Stored(name, offset, length);

    private long StoredInt64(string name, ulong offset) => BinaryPrimitives.ReadInt64LittleEndian(Stored(name, (long)offset, 8));
}
