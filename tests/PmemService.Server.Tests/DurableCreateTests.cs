using Grpc.Core;
using PmemService.Contracts.V1;
using PmemTests.Shared;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>Region creation through Pmem2Files: fully allocated files on the temp directory's disk
/// filesystem (the shared servers use tmpfs), and an allocation failure that leaves nothing behind.</summary>
public sealed class DurableCreateTests
{
    [Fact]
    public async Task A_region_created_in_a_pool_on_a_disk_filesystem_is_fully_allocated_and_reopens_after_restart()
    {
        var pool = Directory.CreateTempSubdirectory("pmemsvc-pool-").FullName;
        var root = PmemTestServer.NewRoot();
        try
        {
            await using var server = await PmemTestServer.StartAsync(s => s["PmemService:PoolPath"] = pool, root);
            var name = UniqueName("durable");
            var info = await CreateAsync(server.Uds, name, 3 << 20);
            Assert.True(info.Created);

            var path = Path.Combine(pool, name);
            Assert.Equal(3L << 20, new FileInfo(path).Length);
            Assert.True(AllocatedBytes(path) >= 3L << 20, "region file must be fully allocated, not sparse");
            Assert.Empty(Directory.EnumerateFiles(pool, ".creating-*"));

            await server.StopAsync();
            await server.StartAgainAsync();
            var again = await server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 0 });
            Assert.False(again.Region.Created);
            Assert.Equal(3UL << 20, again.Region.Size);
        }
        finally
        {
            // Disposing the server removes its root; the pool outside it is ours to remove.
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }

            Directory.Delete(pool, recursive: true);
        }
    }

    [Fact]
    public async Task ENOSPC_from_fallocate_is_pool_space_exhausted_with_the_system_message()
    {
        // 1 PiB on the tmpfs pool: Pmem2Files.Allocate fails with ENOSPC (-28).
        const long huge = 1L << 50;
        await using var server = await PmemTestServer.StartAsync(s =>
        {
            s["PmemService:MaxRegionSize"] = huge.ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["PmemService:MaxMappedBytes"] = huge.ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
        var (exception, _, info) = await AssertError(async () => await server.Uds.MapRegionAsync(new MapRegionRequest { Name = "huge", Size = huge, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "POOL_SPACE_EXHAUSTED");
        Assert.Contains("fallocate: No space left on device", exception.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("huge", info.Metadata["region"]);
        Assert.Empty(Directory.EnumerateFiles(server.PoolPath, ".creating-*"));
        Assert.False(File.Exists(Path.Combine(server.PoolPath, "huge")));
    }

    [Fact]
    public async Task ZeroFillOnCreate_leaves_no_unwritten_extent_and_the_default_does()
    {
        // fallocate alone leaves unwritten extents (filefrag -v flags them), so the first persist of each page
        // also writes extent metadata; with ZeroFillOnCreate every extent is written before the rename.
        // The default is the control: the same check must see unwritten extents there.
        var pool = Directory.CreateTempSubdirectory("pmemsvc-zerofill-").FullName;
        try
        {
            const int Size = 8 << 20;
            string plainPath;
            await using (var plain = await PmemTestServer.StartAsync(s => s["PmemService:PoolPath"] = Path.Combine(pool, "plain")))
            {
                Assert.True((await CreateAsync(plain.Uds, "plain", Size)).Created);
                plainPath = Path.Combine(pool, "plain", "plain");
                Assert.Contains("unwritten", FileProbes.Filefrag(plainPath), StringComparison.Ordinal);
            }

            await using var filled = await PmemTestServer.StartAsync(s =>
            {
                s["PmemService:PoolPath"] = Path.Combine(pool, "filled");
                s["PmemService:ZeroFillOnCreate"] = "true";
            });
            Assert.True((await CreateAsync(filled.Uds, "filled", Size)).Created);
            var path = Path.Combine(pool, "filled", "filled");
            var extents = FileProbes.Filefrag(path);
            Assert.DoesNotContain("unwritten", extents, StringComparison.Ordinal);
            Assert.Equal((long)Size, new FileInfo(path).Length);
            Assert.True(AllocatedBytes(path) >= Size, "still fully allocated");
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(pool, "filled"), ".creating-*"));

            // Zeros, and an ordinary region otherwise: a persisted write reads back.
            var read = await filled.Uds.ReadRegionAsync(new ReadRegionRequest { Name = "filled", Offset = Size - 4096, Length = 4096 });
            Assert.All(read.Data.ToByteArray(), b => Assert.Equal(0, b));
            var data = Google.Protobuf.ByteString.CopyFrom(Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray());
            Assert.True((await filled.Uds.WriteRegionAsync(new WriteRegionRequest { Name = "filled", Offset = 4096, Data = data })).Persisted);
            Assert.Equal(data, (await filled.Uds.ReadRegionAsync(new ReadRegionRequest { Name = "filled", Offset = 4096, Length = 4096 })).Data);
        }
        finally
        {
            Directory.Delete(pool, recursive: true);
        }
    }

    [Fact]
    public async Task A_zero_filling_creation_cut_short_by_the_deadline_leaves_nothing_behind()
    {
        var pool = Directory.CreateTempSubdirectory("pmemsvc-zerofill-").FullName;
        try
        {
            const long Size = 4L << 30; // seconds of pwrite here; the deadline ends it long before
            await using var server = await PmemTestServer.StartAsync(s =>
            {
                s["PmemService:PoolPath"] = pool;
                s["PmemService:ZeroFillOnCreate"] = "true";
                s["PmemService:MaxRegionSize"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
                s["PmemService:MaxMappedBytes"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
            });
            var e = await Assert.ThrowsAsync<RpcException>(async () => await server.Uds.MapRegionAsync(
                new MapRegionRequest { Name = "big", Size = Size, CreateIfMissing = true }, deadline: DateTime.UtcNow.AddMilliseconds(300)));
            Assert.Contains(e.StatusCode, new[] { StatusCode.DeadlineExceeded, StatusCode.Cancelled });

            // The server stops between two writes, deletes the temporary file and releases the budget, all under
            // the region's gate: a second MapRegion of the name waits for that gate, so its NOT_FOUND comes after.
            var after = await Assert.ThrowsAsync<RpcException>(async () => await server.Uds.MapRegionAsync(
                new MapRegionRequest { Name = "big", Size = 0 }, deadline: DateTime.UtcNow.AddSeconds(60)));
            Assert.Equal(StatusCode.NotFound, after.StatusCode);
            Assert.Empty(Directory.EnumerateFiles(pool, ".creating-*"));
            Assert.False(File.Exists(Path.Combine(pool, "big")));
            var missing = await Assert.ThrowsAsync<RpcException>(async () => await server.Uds.GetRegionAsync(new GetRegionRequest { Name = "big" }));
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);

            // Nothing stays charged to the budget: a small region can still be created and mapped.
            Assert.True((await CreateAsync(server.Uds, "small", 1 << 20)).Created);
        }
        finally
        {
            Directory.Delete(pool, recursive: true);
        }
    }
}

