using Grpc.Core;
using PmemService.Contracts.V1;
using PmemTests.Shared;

namespace PmemService.FaultTests;

/// <summary>
/// PmemService:ZeroFillOnCreate under a real write error: the real service on its own faultfs mount, the
/// zeros' writes failing with EIO. The create must fail with the kernel's error, leave no region and no
/// temporary file behind (on the mount and in the backing directory), and succeed once the disk is back.
/// </summary>
public sealed class ZeroFillFaultTests
{
    [FuseFact]
    public async Task Eio_while_zero_filling_fails_the_create_and_leaves_nothing_behind()
    {
        using var fs = FaultFs.Mount();
        var socketDir = TestSupport.NewTempDir("/tmp", "pmemzerofill");
        try
        {
            await using var service = new ServiceProcess(Path.Combine(fs.MountPoint, "pool"), Path.Combine(socketDir, "pmem.sock"),
                environment: new Dictionary<string, string> { ["PmemService__ZeroFillOnCreate"] = "true" });
            await service.StartAsync(TimeSpan.FromSeconds(60));
            var client = service.Client;
            var backingPool = Path.Combine(fs.Backing, "pool");
            const ulong Size = 1 << 20;

            fs.Fail("write", "EIO");
            try
            {
                var (error, _) = await TestSupport.AssertError(async () =>
                    await client.MapRegionAsync(new MapRegionRequest { Name = "zeroed", Size = Size, CreateIfMissing = true }),
                    StatusCode.DataLoss, "IO_ERROR");
                Assert.Contains("pwrite: Input/output error", error.Status.Detail, StringComparison.Ordinal);
                Assert.True(fs.FailedCount("write") > 0, "the zeros' writes reached faultfs");
            }
            finally
            {
                fs.Clear();
            }

            var left = Directory.EnumerateFileSystemEntries(backingPool).Select(Path.GetFileName).ToList();
            Assert.DoesNotContain(left, f => f!.Contains("zeroed", StringComparison.Ordinal) || f.StartsWith(".creating", StringComparison.Ordinal));
            await TestSupport.AssertError(async () => await client.GetRegionAsync(new GetRegionRequest { Name = "zeroed" }), StatusCode.NotFound, "REGION_NOT_FOUND");

            // The disk is back: the same create succeeds, and what reached the backing file is zeros.
            Assert.True((await client.MapRegionAsync(new MapRegionRequest { Name = "zeroed", Size = Size, CreateIfMissing = true })).Region.Created);
            Assert.All(await File.ReadAllBytesAsync(Path.Combine(backingPool, "zeroed")), b => Assert.Equal(0, b));
            await client.UnmapRegionAsync(new UnmapRegionRequest { Name = "zeroed" });
        }
        finally
        {
            Directory.Delete(socketDir, recursive: true);
        }
    }
}
