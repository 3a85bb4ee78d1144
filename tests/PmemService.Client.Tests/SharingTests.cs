using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>Issue 14 sharing primitives against a real server on a Unix socket: atomics, flush types, watches, resumable uploads.</summary>
public sealed class SharingTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private static async Task<long> ReadInt64Async(PmemClient client, string name, long offset) =>
        BinaryPrimitives.ReadInt64LittleEndian((await client.ReadAsync(name, offset, 8)).Span);

    [Fact]
    public async Task Concurrent_CompareAndSwap_and_FetchAdd_callers_end_at_the_exact_count_which_survives_a_restart()
    {
        await using var server = await PmemServer.StartAsync();
        var name = TestData.Name("ctr");
        using (var admin = server.CreateClient())
        {
            await admin.MapRegionAsync(name, 1 << 16, createIfMissing: true);
        }

        const int Workers = 6;
        const int PerWorker = 40;
        const long Offset = 4096 + 64;
        var casRetries = 0;
        var clients = Enumerable.Range(0, Workers).Select(_ => server.CreateClient()).ToList();
        try
        {
            var tasks = clients.Select((client, i) => Task.Run(async () =>
            {
                for (var n = 0; n < PerWorker; n++)
                {
                    if (i % 2 == 0)
                    {
                        // Lock-free increment: read-modify-CAS until it swaps (bounded).
                        var expected = await ReadInt64Async(client, name, Offset);
                        for (var attempt = 0; ; attempt++)
                        {
                            Assert.True(attempt < 10_000, "CAS loop did not converge");
                            var r = await client.CompareAndSwapAsync(name, Offset, expected, expected + 1);
                            if (r.Swapped)
                            {
                                Assert.Equal(expected, r.Previous);
                                break;
                            }

                            Interlocked.Increment(ref casRetries);
                            expected = r.Previous;
                        }
                    }
                    else
                    {
                        await client.FetchAddAsync(name, Offset, 1);
                    }
                }
            })).ToList();
            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(120));
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        using (var client = server.CreateClient())
        {
            Assert.Equal(Workers * PerWorker, await ReadInt64Async(client, name, Offset));
            Assert.Equal(Workers * PerWorker, await client.FetchAddAsync(name, Offset, 0));
        }

        // The value is in the region file: a server restart (new process state, same pool) reads it back.
        await server.StopAsync();
        await server.StartAsync();
        using (var client = server.CreateClient())
        {
            await client.MapRegionAsync(name);
            Assert.Equal(Workers * PerWorker, await ReadInt64Async(client, name, Offset));
            var swap = await client.CompareAndSwapAsync(name, Offset, Workers * PerWorker, -5);
            Assert.True(swap.Swapped);
            Assert.Equal(-5, await ReadInt64Async(client, name, Offset));
        }

        var onDisk = new byte[8];
        using (var file = File.OpenHandle(Path.Combine(server.PoolPath, name)))
        {
            RandomAccess.Read(file, onDisk, Offset);
        }

        Assert.Equal(-5, BinaryPrimitives.ReadInt64LittleEndian(onDisk));
    }

    [Fact]
    public async Task Atomics_refuse_misaligned_and_out_of_range_offsets_with_stable_reasons()
    {
        await using var server = await PmemServer.StartAsync();
        using var client = server.CreateClient();
        var name = TestData.Name("atom");
        await client.MapRegionAsync(name, 8192, createIfMissing: true);

        var misaligned = await Assert.ThrowsAsync<PmemException>(() => client.CompareAndSwapAsync(name, 12, 0, 1));
        Assert.Equal(StatusCode.InvalidArgument, misaligned.StatusCode);
        Assert.Equal("ATOMIC_MISALIGNED", misaligned.Reason);
        Assert.Equal("ATOMIC_MISALIGNED", (await Assert.ThrowsAsync<PmemException>(() => client.FetchAddAsync(name, 1, 1))).Reason);
        Assert.Equal("ATOMIC_MISALIGNED", (await Assert.ThrowsAsync<PmemException>(() => client.AtomicWriteAsync(name, 4, 1))).Reason);

        var outside = await Assert.ThrowsAsync<PmemException>(() => client.FetchAddAsync(name, 8192, 1));
        Assert.Equal(StatusCode.OutOfRange, outside.StatusCode);
        Assert.Equal("RANGE_OUT_OF_BOUNDS", outside.Reason);
        Assert.Equal("RANGE_OUT_OF_BOUNDS", (await Assert.ThrowsAsync<PmemException>(() => client.AtomicWriteAsync(name, 1 << 20, 1))).Reason);
        var overflow = await Assert.ThrowsAsync<RpcException>(async () => await client.GrpcClient.FetchAddAsync(new FetchAddRequest { Name = name, Offset = ulong.MaxValue - 7, Delta = 1 }));
        Assert.Equal(StatusCode.OutOfRange, overflow.StatusCode);
        Assert.Equal("RANGE_OVERFLOW", PmemException.FromRpcException(overflow).Reason);

        // The last aligned slot works; nothing outside was touched.
        await client.AtomicWriteAsync(name, 8184, 0x0102030405060708);
        Assert.Equal(0x0102030405060708, await ReadInt64Async(client, name, 8184));
        Assert.Equal(0x0102030405060708, await client.FetchAddAsync(name, 8184, -8));
        Assert.Equal(0x0102030405060700, await ReadInt64Async(client, name, 8184));
        Assert.Equal("REGION_NOT_FOUND", (await Assert.ThrowsAsync<PmemException>(() => client.FetchAddAsync("nope-" + name, 0, 1))).Reason);
    }

    [Fact]
    public async Task A_watcher_sees_every_persisted_write_of_another_client_in_order_without_gaps()
    {
        await using var server = await PmemServer.StartAsync();
        using var writer = server.CreateClient();
        using var watcher = server.CreateClient();
        var name = TestData.Name("watch");
        await writer.MapRegionAsync(name, 1 << 20, createIfMissing: true);
        await writer.WriteAsync(name, 0, new byte[16]); // an event before the watch starts: not delivered

        var start = await watcher.GetRegionAsync(name);
        Assert.Equal(1UL, start.WatchSequence);
        using var cts = new CancellationTokenSource(Bound);
        const int Writes = 40;
        var received = new List<WatchRegionResponse>();
        var reading = Task.Run(async () =>
        {
            await foreach (var e in watcher.WatchAsync(name, start.WatchSequence, start.WatchEpoch, cancellationToken: cts.Token))
            {
                received.Add(e);
                if (received.Count == Writes + 3)
                {
                    break;
                }
            }
        });

        for (var i = 0; i < Writes; i++)
        {
            await writer.WriteAsync(name, 4096 + (i * 100), TestData.Bytes(100, i));
        }

        await writer.CompareAndSwapAsync(name, 0, 0, 7);
        await writer.UploadAsync(new MemoryStream(TestData.Bytes(70_000, 9)), name, 200_000);
        await writer.PersistAsync(name, 8192, 512);
        await reading.WaitAsync(Bound);

        Assert.Equal(Enumerable.Range(2, Writes + 3).Select(i => (ulong)i), received.Select(e => e.Sequence));
        Assert.All(received, e => Assert.Equal(start.WatchEpoch, e.Epoch));
        Assert.All(received, e => Assert.Equal(FlushType.Persistent, e.FlushType));
        for (var i = 0; i < Writes; i++)
        {
            Assert.Equal(WatchEventKind.Write, received[i].Kind);
            Assert.Equal((ulong)(4096 + (i * 100)), received[i].Offset);
            Assert.Equal(100UL, received[i].Length);
        }

        Assert.Equal((WatchEventKind.CompareAndSwap, 0UL, 8UL), (received[Writes].Kind, received[Writes].Offset, received[Writes].Length));
        Assert.Equal((WatchEventKind.StreamWrite, 200_000UL, 70_000UL), (received[Writes + 1].Kind, received[Writes + 1].Offset, received[Writes + 1].Length));
        Assert.Equal((WatchEventKind.Persist, 8192UL, 512UL), (received[Writes + 2].Kind, received[Writes + 2].Offset, received[Writes + 2].Length));
        Assert.Equal((ulong)(Writes + 4), (await watcher.GetRegionAsync(name)).WatchSequence);
    }

    [Fact]
    public async Task A_watcher_reconnecting_with_after_sequence_gets_what_it_missed_and_overflow_is_reported()
    {
        await using var server = await PmemServer.StartAsync(new Dictionary<string, string?>
        {
            ["PmemService:WatchHistoryLength"] = "16",
            ["PmemService:WatchBufferLength"] = "8",
        });
        using var client = server.CreateClient();
        var name = TestData.Name("resume");
        await client.MapRegionAsync(name, 1 << 16, createIfMissing: true);
        var epoch = (await client.GetRegionAsync(name)).WatchEpoch;

        for (var i = 0; i < 3; i++)
        {
            await client.FetchAddAsync(name, 0, 1);
        }

        // A watcher saw events 1..3 and went away; 5 more happen; it comes back after 3.
        var first = await Take(client.WatchAsync(name, 0, epoch, fromHistory: true), 3);
        Assert.Equal([1UL, 2UL, 3UL], first.Select(e => e.Sequence));
        for (var i = 0; i < 5; i++)
        {
            await client.AtomicWriteAsync(name, 8 * (i + 1), i);
        }

        var missed = await Take(client.WatchAsync(name, 3, epoch), 5);
        Assert.Equal([4UL, 5UL, 6UL, 7UL, 8UL], missed.Select(e => e.Sequence));
        Assert.All(missed, e => Assert.Equal(WatchEventKind.AtomicWrite, e.Kind));
        Assert.Equal(Enumerable.Range(1, 5).Select(i => (ulong)(8 * i)), missed.Select(e => e.Offset));

        // 20 more: events 4..12 fell out of the 16-event history; resuming after 8 is a reported gap, not silence.
        for (var i = 0; i < 20; i++)
        {
            await client.FetchAddAsync(name, 0, 1);
        }

        var gap = await Assert.ThrowsAsync<PmemException>(() => Take(client.WatchAsync(name, 8, epoch), 1));
        Assert.Equal(StatusCode.DataLoss, gap.StatusCode);
        Assert.Equal("WATCH_HISTORY_OVERFLOW", gap.Reason);
        Assert.Equal("13", gap.Metadata["oldest_sequence"]);
        Assert.Equal("28", gap.Metadata["latest_sequence"]);

        // Still in the history: fine. Another epoch (a restarted server): reported. Ahead: OUT_OF_RANGE.
        Assert.Equal(13UL, (await Take(client.WatchAsync(name, 12, epoch), 1))[0].Sequence);
        Assert.Equal("WATCH_HISTORY_OVERFLOW", (await Assert.ThrowsAsync<PmemException>(() => Take(client.WatchAsync(name, 20, "0123456789abcdef"), 1))).Reason);
        Assert.Equal("WATCH_SEQUENCE_AHEAD", (await Assert.ThrowsAsync<PmemException>(() => Take(client.WatchAsync(name, 99, epoch), 1))).Reason);

        // Deleting the region ends its watchers.
        var watching = Take(client.WatchAsync(name), 1);
        await Task.Delay(200);
        await client.DeleteRegionAsync(name, force: true);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<PmemException>(() => watching.WaitAsync(Bound))).StatusCode);
    }

    [Fact]
    public async Task Direct_lane_persists_through_the_SDK_reach_watchers_and_atomics_agree_with_the_direct_mapping()
    {
        await using var server = await PmemServer.StartAsync();
        using var client = server.CreateClient();
        var name = TestData.Name("dlane");
        await client.MapRegionAsync(name, 1 << 16, createIfMissing: true);
        var start = await client.GetRegionAsync(name);
        using var direct = await client.OpenDirectAsync(name, DirectAccess.ReadWrite);

        direct.Memcpy(100, TestData.Bytes(50, 1));                 // persisted: reported
        Assert.Equal(Pmem2.Pmem2Granularity.Page, direct.Granularity);
        direct.Memcpy(200, TestData.Bytes(20, 3), Pmem2.Pmem2MemFlags.NoDrain); // at PAGE the flush is the msync: persisted, reported
        direct.Memcpy(300, TestData.Bytes(50, 2), Pmem2.Pmem2MemFlags.NoFlush); // not persisted: not reported
        direct.Persist(300, 50);                                   // now it is
        Assert.Equal(0, direct.FetchAdd64(1024, 5));               // a direct atomic ...
        var r = await client.CompareAndSwapAsync(name, 1024, 5, 9); // ... and a service atomic on the same 8 bytes
        Assert.True(r.Swapped);
        Assert.Equal(9, direct.AtomicLoad64(1024));

        var events = await Take(client.WatchAsync(name, start.WatchSequence, start.WatchEpoch), 5);
        // The direct client's reports travel on the side channel and keep their own order; the
        // CompareAndSwap travels over gRPC and may be sequenced before the last of them.
        Assert.Equal(
            [(WatchEventKind.DirectPersist, 100UL, 50UL), (WatchEventKind.DirectPersist, 200UL, 20UL), (WatchEventKind.DirectPersist, 300UL, 50UL), (WatchEventKind.DirectPersist, 1024UL, 8UL)],
            events.Where(e => e.Kind == WatchEventKind.DirectPersist).Select(e => (e.Kind, e.Offset, e.Length)));
        Assert.Equal((WatchEventKind.CompareAndSwap, 1024UL, 8UL), Assert.Single(events, e => e.Kind != WatchEventKind.DirectPersist) is var cas ? (cas.Kind, cas.Offset, cas.Length) : default);
        Assert.Equal(Enumerable.Range((int)start.WatchSequence + 1, 5).Select(i => (ulong)i), events.Select(e => e.Sequence));
    }

    [Fact]
    public async Task Visibility_writes_are_visible_to_a_second_client_at_once_and_marked_not_persisted()
    {
        await using var server = await PmemServer.StartAsync();
        using var a = server.CreateClient();
        using var b = server.CreateClient();
        var name = TestData.Name("vis");
        await a.MapRegionAsync(name, 1 << 16, createIfMissing: true);
        var epoch = (await a.GetRegionAsync(name)).WatchEpoch;

        var data = TestData.Bytes(300, 4);
        var result = await a.WriteAsync(name, 1000, data, FlushType.Visibility);
        Assert.Equal(FlushType.Visibility, result.FlushType);
        Assert.False(result.Persisted);
        Assert.True((await b.ReadAsync(name, 1000, 300)).Span.SequenceEqual(data)); // no persist in between

        // The deprecated defer_persist is the visibility case; persistent is the default and says so.
        var deferred = await a.GrpcClient.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = Google.Protobuf.ByteString.CopyFrom(1, 2), DeferPersist = true });
        Assert.Equal((false, FlushType.Visibility), (deferred.Persisted, deferred.FlushType));
        var persistent = await a.WriteAsync(name, 2000, data, FlushType.Unspecified);
        Assert.Equal((true, FlushType.Persistent), (persistent.Persisted, persistent.FlushType));
        var conflict = await Assert.ThrowsAsync<RpcException>(async () => await a.GrpcClient.WriteRegionAsync(
            new WriteRegionRequest { Name = name, Offset = 0, Data = Google.Protobuf.ByteString.CopyFrom(0xEE), DeferPersist = true, FlushType = FlushType.Persistent }));
        Assert.Equal(StatusCode.InvalidArgument, conflict.StatusCode);
        Assert.Equal("INVALID_FLUSH_TYPE", PmemException.FromRpcException(conflict).Reason);
        Assert.Equal(1, (await b.ReadAsync(name, 0, 1)).Span[0]); // the refused write copied nothing

        var visible = await a.PersistAsync(name, 1000, 300, FlushType.Visibility);
        Assert.Equal(FlushType.Visibility, visible.FlushType);
        var durable = await a.PersistAsync(name, 1000, 300, FlushType.Persistent);
        Assert.Equal((300L, FlushType.Persistent), (durable.Bytes, durable.FlushType));

        var events = await Take(b.WatchAsync(name, 0, epoch, fromHistory: true), 5);
        Assert.Equal(
            [(WatchEventKind.Write, FlushType.Visibility), (WatchEventKind.Write, FlushType.Visibility), (WatchEventKind.Write, FlushType.Persistent),
             (WatchEventKind.Persist, FlushType.Visibility), (WatchEventKind.Persist, FlushType.Persistent)],
            events.Select(e => (e.Kind, e.FlushType)));
    }

    [Fact]
    public async Task An_upload_whose_client_process_is_SIGKILLed_resumes_from_GetUpload_and_ends_byte_identical()
    {
        await using var server = await PmemServer.StartAsync(new Dictionary<string, string?>
        {
            ["PmemService:UploadCheckpointBytes"] = (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var client = server.CreateClient();
        var name = TestData.Name("resum");
        const int Size = (256 << 20) + 4321;
        var input = Path.Combine(server.Root, name + ".in");
        var content = TestData.Bytes(Size, 11);
        var contentCrc = TestData.Crc64(content);
        await File.WriteAllBytesAsync(input, content);
        await client.MapRegionAsync(name, 320 << 20, createIfMissing: true);
        const string Id = "job-42";
        Assert.Null(await client.GetUploadAsync(name, Id));

        // A real pmemctl process uploads with an id; it is SIGKILLed once the server has recorded progress.
        var args = new[] { "--address", server.UnixAddress, "--output", "json", "upload", input, name, "--upload-id", Id, "--resume", "--chunk-size", "64KiB" };
        UploadInfo? before = null;
        using (var first = ChildProcess.Start(CliBehaviourTests.PmemCtlDll(), args))
        {
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(90) && !first.HasExited)
            {
                before = await client.GetUploadAsync(name, Id);
                if (before is { PersistedOffset: >= 1 << 20 })
                {
                    break;
                }

                await Task.Delay(5);
            }

            Assert.False(first.HasExited, $"the upload finished before it could be killed; stdout {first.Stdout} stderr {first.Stderr}");
            Process.GetProcessById(first.Id).Kill(); // SIGKILL: no graceful stop, no trailer
            await first.WaitAsync(Bound);
        }

        Assert.NotNull(before);
        // The server notices the reset, persists what it copied and records it; the record only moves forward.
        UploadInfo after = before;
        for (var i = 0; i < 50; i++)
        {
            after = (await client.GetUploadAsync(name, Id))!;
            await Task.Delay(100);
            if ((await client.GetUploadAsync(name, Id))!.PersistedOffset == after.PersistedOffset && i > 3)
            {
                break;
            }
        }

        Assert.True(after.PersistedOffset >= before.PersistedOffset);
        Assert.True(after.PersistedOffset < (ulong)Size, $"recorded {after.PersistedOffset}: nothing left to resume");
        Assert.Equal(0UL, after.StartOffset);

        // The recorded prefix really is the file's.
        var prefix = new byte[Math.Min(1 << 20, (int)after.PersistedOffset)];
        using (var region = File.OpenHandle(Path.Combine(server.PoolPath, name)))
        {
            RandomAccess.Read(region, prefix, (long)after.PersistedOffset - prefix.Length);
        }

        Assert.True(prefix.AsSpan().SequenceEqual(content.AsSpan((int)after.PersistedOffset - prefix.Length, prefix.Length)));

        var (code, second) = await ChildProcess.RunAsync(CliBehaviourTests.PmemCtlDll(), args, timeout: TimeSpan.FromSeconds(180));
        using (second)
        {
            Assert.True(code == 0, second.Stderr);
            using var json = JsonDocument.Parse(second.Stdout[second.Stdout.IndexOf('{', StringComparison.Ordinal)..]);
            Assert.Equal((long)after.PersistedOffset, json.RootElement.GetProperty("resumedAt").GetInt64());
            Assert.Equal(Size, json.RootElement.GetProperty("length").GetInt64());
            Assert.Equal(PmemClient.FormatCrc64(contentCrc), json.RootElement.GetProperty("crc64").GetString());
        }

        var done = (await client.GetUploadAsync(name, Id))!;
        Assert.Equal((ulong)Size, done.PersistedOffset);

        // Byte-identical: CRC-64 of a download (checked by 'get' against the recorded content) and cmp.
        var output = Path.Combine(server.Root, name + ".out");
        var (getCode, get) = await ChildProcess.RunAsync(CliBehaviourTests.PmemCtlDll(), ["--address", server.UnixAddress, "get", name, output]);
        using (get)
        {
            Assert.True(getCode == 0, get.Stderr);
        }

        Assert.Equal(contentCrc, TestData.Crc64(File.ReadAllBytes(output)));
        var (cmpCode, cmp) = await ChildProcess.RunAsync("cmp", [input, output]);
        using (cmp)
        {
            Assert.True(cmpCode == 0, cmp.Stdout + cmp.Stderr);
        }

        // Records go with the region.
        await client.DeleteRegionAsync(name, force: true);
        await client.MapRegionAsync(name, 1 << 20, createIfMissing: true);
        Assert.Null(await client.GetUploadAsync(name, Id));
        Assert.Equal("INVALID_UPLOAD_ID", (await Assert.ThrowsAsync<PmemException>(() => client.GetUploadAsync(name, "bad id"))).Reason);
    }

    [Fact]
    public async Task Pmemctl_cas_fetch_add_atomic_write_and_watch_with_json_output()
    {
        await using var server = await PmemServer.StartAsync();
        using var client = server.CreateClient();
        var name = TestData.Name("cli");
        await client.MapRegionAsync(name, 1 << 16, createIfMissing: true);
        Task<CliRun> Run(params string[] args) => CliRun.RunAsync(["--address", server.UnixAddress, "--output", "json", .. args]);

        var cas = await Run("cas", $"{name}@8", "0", "5");
        cas.AssertOk();
        using (var json = JsonDocument.Parse(cas.Out))
        {
            Assert.True(json.RootElement.GetProperty("swapped").GetBoolean());
            Assert.Equal(0, json.RootElement.GetProperty("previous").GetInt64());
        }

        var again = await Run("cas", $"{name}@8", "0", "6");
        Assert.Equal(PmemCtl.ExitCodes.Conflict, again.Code);
        using (var json = JsonDocument.Parse(again.Out))
        {
            Assert.False(json.RootElement.GetProperty("swapped").GetBoolean());
            Assert.Equal(5, json.RootElement.GetProperty("previous").GetInt64());
        }

        var add = await Run("fetch-add", $"{name}@8", "-2");
        add.AssertOk();
        using (var json = JsonDocument.Parse(add.Out))
        {
            Assert.Equal((5, 3), (json.RootElement.GetProperty("previous").GetInt64(), json.RootElement.GetProperty("value").GetInt64()));
        }

        (await Run("atomic-write", $"{name}@16", "0x10")).AssertOk();
        Assert.Equal(16, await ReadInt64Async(client, name, 16));
        var misaligned = await Run("cas", $"{name}@3", "0", "1");
        Assert.Equal(PmemCtl.ExitCodes.InvalidArgument, misaligned.Code);
        Assert.Contains("ATOMIC_MISALIGNED", misaligned.Err, StringComparison.Ordinal);

        var visible = await Run("write", $"{name}@256", "--hex", "0102", "--visibility");
        visible.AssertOk();
        using (var json = JsonDocument.Parse(visible.Out))
        {
            Assert.False(json.RootElement.GetProperty("persisted").GetBoolean());
            Assert.Equal("Visibility", json.RootElement.GetProperty("flushType").GetString());
        }

        var watch = await Run("watch", name, "--from-history", "-n", "3");
        watch.AssertOk();
        var lines = watch.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        var events = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([1UL, 2UL, 3UL], events.Select(e => e.GetProperty("sequence").GetUInt64()));
        Assert.Equal(["CompareAndSwap", "CompareAndSwap", "FetchAdd"], events.Select(e => e.GetProperty("kind").GetString()));
    }

    private static async Task<List<WatchRegionResponse>> Take(IAsyncEnumerable<WatchRegionResponse> events, int count)
    {
        using var cts = new CancellationTokenSource(Bound);
        var list = new List<WatchRegionResponse>();
        await foreach (var e in events.WithCancellation(cts.Token))
        {
            list.Add(e);
            if (list.Count == count)
            {
                break;
            }
        }

        return list;
    }
}
