using Grpc.Core;
using PmemService.Server;
using PmemService.Server.Internal;
using PmemService.Server.Internal.Sharing;

namespace PmemService.Server.Tests;

/// <summary>Resumable upload records (issue 14) on a real file's extended attribute: continuation, bounds, expiry.</summary>
public sealed class UploadRecordTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pmem-uploads-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class Clock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch.AddDays(20_000);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Records_continue_replace_bound_and_expire()
    {
        var path = Path.Combine(_dir, "r");
        File.WriteAllBytes(path, new byte[4096]);
        var clock = new Clock();
        var uploads = new RegionUploads(maxRecords: 3, ttl: TimeSpan.FromHours(1), clock);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);

        Assert.Null(uploads.Get("r", path, "a"));
        uploads.Record("r", file, "a", 100, 100);
        uploads.Record("r", file, "a", 100, 600);
        var resumed = uploads.Record("r", file, "a", 600, 900); // a stream continuing at the recorded offset extends it
        Assert.Equal((100UL, 900UL), (resumed.StartOffset, resumed.PersistedOffset));
        uploads.Record("r", file, "a", 100, 300);                // a shorter rewrite never moves it back
        Assert.Equal(900UL, uploads.Get("r", path, "a")!.PersistedOffset);
        uploads.Record("r", file, "a", 2000, 2100);              // elsewhere: a new upload under the same id
        Assert.Equal((2000UL, 2100UL), (uploads.Get("r", path, "a")!.StartOffset, uploads.Get("r", path, "a")!.PersistedOffset));

        // Bounded: the least recently updated record goes.
        foreach (var id in new[] { "b", "c", "d" })
        {
            clock.Now = clock.Now.AddSeconds(1);
            uploads.Record("r", file, id, 0, 10);
        }

        Assert.Null(uploads.Get("r", path, "a"));
        Assert.NotNull(uploads.Get("r", path, "d"));

        // Expiry: an hour without an update.
        clock.Now = clock.Now.AddMinutes(61);
        Assert.Null(uploads.Get("r", path, "d"));

        Assert.Equal(PmemErrorReasons.InvalidUploadId, Assert.Throws<PmemServiceException>(() => RegionUploads.ValidateId("a b")).Reason);
        Assert.Equal(StatusCode.InvalidArgument, Assert.Throws<PmemServiceException>(() => RegionUploads.ValidateId(new string('x', 65))).Code);
        Assert.Equal("ok-1.2_3", RegionUploads.ValidateId("ok-1.2_3"));
    }
}
