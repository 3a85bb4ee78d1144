using Grpc.Core;
using PmemService.Contracts.V1;
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
}
