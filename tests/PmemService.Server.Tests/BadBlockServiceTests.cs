using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>
/// The service and NVDIMM bad blocks (issue 15 item 2), on a real server whose pool is on ext4 (/tmp)
/// and whose sysfs root (PmemService:SysfsRoot) is a fake tree presenting the pool's block device as
/// an fsdax namespace; the bad sector is placed inside the region file's real FIEMAP extent.
/// </summary>
public sealed partial class BadBlockServiceTests
{
    [Fact]
    public async Task BadRangesAreReportedRefusedOnReadAndClearedByAWrite()
    {
        // The pool must be on a filesystem with FIEMAP (ext4 here; tmpfs has none): the temp directory or /var/tmp.
        var baseDir = new[] { Path.GetTempPath(), "/var/tmp" }.FirstOrDefault(d => Run("stat", "-f", "-c", "%T", d).Trim() is "ext2/ext3" or "xfs" or "btrfs")
            ?? throw new InvalidOperationException("bad-block service test needs a temp directory on ext4, xfs or btrfs (FIEMAP)");
        var root = Path.Combine(baseDir, "pmemsvc-bb-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(root);
        var sysfs = Path.Combine(root, "sys");
        try
        {
            await using var server = await PmemTestServer.StartAsync(s => s["PmemService:SysfsRoot"] = sysfs, root);
            var name = UniqueName("bb");
            await server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, Size = 1 << 20, CreateIfMissing = true, RequiredGranularity = Granularity.Page });
            var pattern = Enumerable.Repeat((byte)0xAB, 64 * 1024).ToArray();
            await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 0, Data = ByteString.CopyFrom(pattern) });
            Assert.Empty((await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region.BadRanges);

            // One bad sector inside block 2 (file offset 8192 + 512) and one inside block 5 (20480 + 512).
            var file = Path.Combine(server.PoolPath, name);
            var extents = Filefrag(file);
            ulong Sector(ulong fileOffset)
            {
                var (logical, physical, _) = extents.First(e => e.Logical <= fileOffset && fileOffset < e.Logical + e.Length);
                return (physical + fileOffset - logical) / 512;
            }

            var sectors = new[] { Sector(8192 + 512), Sector(20480 + 512) }.Order();
            var badblocks = FakeFsdaxNamespace(sysfs, file, string.Concat(sectors.Select(x => $"{x} 1\n")));
            await Task.Delay(1100); // the service re-reads a region's list at most once a second

            var info = (await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
            Assert.Equal([(8192UL, 4096UL), (20480UL, 4096UL)], info.BadRanges.Select(r => (r.Offset, r.Length)).Order());

            // Reads beside the range succeed (through pread, the mcsafe path); reads touching it are DATA_LOSS.
            var ok = await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 0, Length = 8192 });
            Assert.True(ok.Data.Span.SequenceEqual(pattern.AsSpan(0, 8192)));
            var (_, _, error) = await AssertError(async () => await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 8000, Length = 500 }),
                StatusCode.DataLoss, PmemErrorReasons.BadBlock);
            Assert.Equal("8192", error.Metadata["bad_offset"]);
            Assert.Equal("4096", error.Metadata["bad_length"]);
            await AssertError(async () =>
            {
                using var stream = server.Uds.StreamReadRegion(new StreamReadRegionRequest { Name = name, Length = 64 * 1024, ChunkSize = 4096 });
                while (await stream.ResponseStream.MoveNext())
                {
                }
            }, StatusCode.DataLoss, PmemErrorReasons.BadBlock);

            // Readiness lists the region (Degraded: still serving).
            var health = await server.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Tags.Contains("readiness"));
            var entry = health.Entries["bad_blocks"];
            Assert.Equal(HealthStatus.Degraded, entry.Status);
            var listed = (string)entry.Data[name];
            Assert.Contains("[8192, 12288)", listed, StringComparison.Ordinal);
            Assert.Contains("[20480, 24576)", listed, StringComparison.Ordinal);

            // A write over the range clears it first: the block is deallocated and allocated again, so
            // the rest of the block reads as zeros; the neighbours keep their bytes.
            await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 8192, Data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xCD, 100).ToArray()) });
            using (var call = server.Uds.StreamWriteRegion())
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = 20480 } });
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Enumerable.Repeat((byte)0xEF, 100).ToArray()) });
                await call.RequestStream.CompleteAsync();
                Assert.Equal(100UL, (await call).BytesPersisted);
            }

            var bytes = File.ReadAllBytes(file);
            Assert.False(bytes.AsSpan(0, 8192).ContainsAnyExcept((byte)0xAB));
            Assert.False(bytes.AsSpan(8192, 100).ContainsAnyExcept((byte)0xCD));
            Assert.False(bytes.AsSpan(8292, 12288 - 8292).ContainsAnyExcept((byte)0));
            Assert.False(bytes.AsSpan(12288, 20480 - 12288).ContainsAnyExcept((byte)0xAB));
            Assert.False(bytes.AsSpan(20480, 100).ContainsAnyExcept((byte)0xEF));
            Assert.False(bytes.AsSpan(20580, 24576 - 20580).ContainsAnyExcept((byte)0));
            Assert.False(bytes.AsSpan(24576, (64 * 1024) - 24576).ContainsAnyExcept((byte)0xAB));

            // Once the platform no longer lists it (here: the fake list is emptied), reads work again.
            File.WriteAllText(badblocks, string.Empty);
            Assert.Empty((await server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region.BadRanges);
            var after = await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 8192, Length = 100 });
            Assert.False(after.Data.Span.ContainsAnyExcept((byte)0xCD));
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>sys/dev/block/MAJ:MIN of the file's filesystem → .../ndbus0/region0/pfn0.1/block/pmem0
    /// with the given badblocks text; returns the badblocks file.</summary>
    private static string FakeFsdaxNamespace(string sysfs, string file, string badblocks)
    {
        var block = Directory.CreateDirectory(Path.Combine(sysfs, "devices", "platform", "e820_pmem", "ndbus0", "region0", "pfn0.1", "block", "pmem0")).FullName;
        var list = Path.Combine(block, "badblocks");
        File.WriteAllText(list, badblocks);
        Directory.CreateDirectory(Path.Combine(sysfs, "dev", "block"));
        File.CreateSymbolicLink(Path.Combine(sysfs, "dev", "block", Run("stat", "-c", "%Hd:%Ld", file).Trim()), block);
        return list;
    }

    private static List<(ulong Logical, ulong Physical, ulong Length)> Filefrag(string path) =>
        ExtentLine().Matches(Run("filefrag", "-v", "-b1", path)).Select(m => (
            ulong.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            ulong.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture),
            ulong.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToList();

    private static string Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000), $"{exe} did not finish");
        Assert.Equal(0, p.ExitCode);
        return output;
    }

    [GeneratedRegex(@"^\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+)\.\.\s*\d+:\s+(\d+):", RegexOptions.Multiline)]
    private static partial Regex ExtentLine();
}
