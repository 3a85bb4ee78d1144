using System.Text.RegularExpressions;
using PmemService.Contracts.V1;
using Xunit.Abstractions;

namespace PmemService.FaultTests;

/// <summary>
/// Issue 12 item 4, durability of ownership, checked from outside the process: the real service exe runs
/// under strace, a client creates a region, and the trace must show the owner attribute set on the
/// temporary file, that file fsynced, then the rename to the region's name, then the pool directory
/// fsynced — the durable create's own order, so a region never exists on disk without its owner. The
/// content attribute a later SetRegionContent writes is the negative control: it comes after the rename,
/// and the same check flags it (so the check can fail).
/// </summary>
public sealed partial class AccessDurabilityStraceTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"^\d+\s+\S+\s+(?<call>\w+)\((?<args>.*)$")]
    private static partial Regex Line();

    [StraceFact]
    public async Task The_owner_is_stored_and_synced_before_the_region_is_renamed_into_place()
    {
        var root = TestSupport.NewTempDir("/tmp", "pmemacl");
        var trace = Path.Combine(root, "trace.txt");
        const string Region = "owned";
        try
        {
            await using (var service = new ServiceProcess(Path.Combine(root, "pool"), Path.Combine(root, "pmem.sock"),
                wrapper: [StraceOrderingTests.Strace, "-f", "-tt", "-y", "-e", "trace=fsetxattr,fsync,renameat2", "-e", "signal=none", "-s", "256", "-o", trace]))
            {
                await service.StartAsync(TimeSpan.FromSeconds(180));
                var created = await service.Client.MapRegionAsync(new MapRegionRequest { Name = Region, Size = 1 << 20, CreateIfMissing = true });
                Assert.True(created.Region.Created);
                Assert.StartsWith("uid:", created.Region.Owner, StringComparison.Ordinal);
                await service.Client.SetRegionContentAsync(new SetRegionContentRequest { Name = Region, ContentLength = 1, ContentCrc64 = "0x1" });
                Assert.Equal(0, await service.StopAsync(TimeSpan.FromSeconds(60)));
            }

            var calls = File.ReadLines(trace).Select((text, index) => (Index: index, Match: Line().Match(text)))
                .Where(l => l.Match.Success).Select(l => (l.Index, Call: l.Match.Groups["call"].Value, Args: l.Match.Groups["args"].Value)).ToList();
            var temp = $"/.creating-{Region}-";
            var acl = calls.FirstOrDefault(c => c.Call == "fsetxattr" && c.Args.Contains(temp, StringComparison.Ordinal) && c.Args.Contains("\"user.pmem.acl\"", StringComparison.Ordinal));
            var rename = calls.FirstOrDefault(c => c.Call == "renameat2" && c.Args.Contains($"\".creating-{Region}-", StringComparison.Ordinal) && c.Args.Contains($"\"{Region}\"", StringComparison.Ordinal));
            Assert.True(acl.Call is not null, $"no fsetxattr of user.pmem.acl on the temporary file in {trace}");
            Assert.True(rename.Call is not null, $"no renameat2 of the temporary file to '{Region}' in {trace}");
            var fileSync = calls.FirstOrDefault(c => c.Call == "fsync" && c.Index > acl.Index && c.Args.Contains(temp, StringComparison.Ordinal));
            Assert.True(fileSync.Call is not null && fileSync.Index < rename.Index, "the temporary file is fsynced after the attribute and before the rename");
            var poolPath = Path.Combine(root, "pool");
            var directorySync = calls.FirstOrDefault(c => c.Call == "fsync" && c.Index > rename.Index && c.Args.StartsWith($"{DescriptorPrefix(c.Args)}<{poolPath}>)", StringComparison.Ordinal));
            Assert.True(directorySync.Call is not null, "the pool directory is fsynced after the rename");
            output.WriteLine($"fsetxattr acl line {acl.Index}, fsync file {fileSync.Index}, rename {rename.Index}, fsync pool {directorySync.Index}");

            // Negative control: the content attribute is set on the region after it was renamed into place.
            var content = calls.FirstOrDefault(c => c.Call == "fsetxattr" && c.Args.Contains("\"user.pmem.content\"", StringComparison.Ordinal));
            Assert.True(content.Call is not null, "SetRegionContent's fsetxattr is in the trace");
            Assert.False(content.Index < rename.Index && content.Args.Contains(temp, StringComparison.Ordinal), "the check tells an attribute set after the rename apart");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static string DescriptorPrefix(string args)
    {
        var end = args.IndexOf('<', StringComparison.Ordinal);
        return end < 0 ? args : args[..end];
    }
}
