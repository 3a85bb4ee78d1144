using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using PmemService.Contracts.V1;
using Client = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Benchmarks;

/// <summary>
/// <c>PmemService:ZeroFillOnCreate</c> measured: two PAGE services on the disk (ext4), one as shipped
/// (fallocate: unwritten extents), one zero-filling new regions. Each rep creates a fresh region on both
/// (the order flips per rep), then writes every page of it once in a random order (first touch: with
/// unwritten extents each persist also converts the extent), then once more in another order (rewrites:
/// the control, the same on both). Persisted 4 KiB WriteRegion calls, one at a time, UDS.
/// </summary>
internal static class FirstTouch
{
    public static async Task<int> RunAsync(string[] args)
    {
        var reps = ModeArgs.Int(args, 1, 5);
        var pages = ModeArgs.Int(args, 2, 2048);
        var diskRoot = Path.Combine("/var/tmp", "pmemfirst-" + Guid.NewGuid().ToString("N")[..8]);
        var runRoot = Path.Combine("/dev/shm", "pmemfirst-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var noEnv = new Dictionary<string, string>();
            await using var plainServer = await ChildServer.StartAsync("service-page", "service", Path.Combine(runRoot, "plain"), Path.Combine(diskRoot, "plain"), noEnv);
            await using var filledServer = await ChildServer.StartAsync("service-page-zerofill", "service", Path.Combine(runRoot, "filled"), Path.Combine(diskRoot, "filled"),
                new Dictionary<string, string> { ["PmemService__ZeroFillOnCreate"] = "true" });
            var targets = new[] { ("fallocate (as shipped)", new Target(plainServer)), ("ZeroFillOnCreate", new Target(filledServer)) };
            var results = targets.ToDictionary(t => t.Item1, _ => new List<(double CreateMs, double[] First, double[] Again)>());
            var loadBefore = Stats.LoadAverage();
            for (var rep = 0; rep < reps; rep++)
            {
                foreach (var (name, target) in rep % 2 == 0 ? targets : targets.Reverse())
                {
                    results[name].Add(await MeasureAsync(target, $"first{rep}", pages, rep));
                }
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"first-touch: {reps} reps, a fresh {pages * 4 / 1024} MiB region per rep and service, every 4 KiB page written once (random order) then again; PAGE on {diskRoot} (ext4); persisted WriteRegion, c1, UDS; load {loadBefore:0.0}-{Stats.LoadAverage():0.0}"));
            Console.WriteLine("| region creation | create ms (median) | first write of a page: p50 / p99 µs | rewrite: p50 / p99 µs | first / rewrite p50 (median, spread) |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            foreach (var (name, _) in targets)
            {
                var r = results[name];
                var ratios = r.Select(x => Stats.Percentile(x.First, 0.5) / Stats.Percentile(x.Again, 0.5)).ToList();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {Stats.Median(r.Select(x => x.CreateMs)):0} | {Stats.Median(r.Select(x => Stats.Percentile(x.First, 0.5))):0} / {Stats.Median(r.Select(x => Stats.Percentile(x.First, 0.99))):0} | {Stats.Median(r.Select(x => Stats.Percentile(x.Again, 0.5))):0} / {Stats.Median(r.Select(x => Stats.Percentile(x.Again, 0.99))):0} | **{Stats.Median(ratios):0.00}** ({Stats.Spread(ratios, "0.00")}) |"));
            }

            var plain = results[targets[0].Item1];
            var filled = results[targets[1].Item1];
            var firstRatios = plain.Zip(filled, (p, f) => Stats.Percentile(f.First, 0.5) / Stats.Percentile(p.First, 0.5)).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ZeroFillOnCreate / fallocate, first-write p50 per rep: **{Stats.Median(firstRatios):0.00}** ({Stats.Spread(firstRatios, "0.00")})"));
        }
        finally
        {
            foreach (var dir in new[] { diskRoot, runRoot })
            {
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }

        return 0;
    }

    private static async Task<(double CreateMs, double[] First, double[] Again)> MeasureAsync(Target target, string region, int pages, int seed)
    {
        var client = target.Uds;
        var started = Stopwatch.GetTimestamp();
        var info = (await client.MapRegionAsync(new MapRegionRequest { Name = region, Size = (ulong)pages * 4096, CreateIfMissing = true })).Region;
        var createMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (!info.Created || info.EffectiveGranularity != Granularity.Page)
        {
            throw new InvalidOperationException($"{region}: created {info.Created}, granularity {info.EffectiveGranularity}");
        }

        var data = ByteString.CopyFrom(Enumerable.Repeat((byte)0x5A, 4096).ToArray());
        var first = await WritePagesAsync(client, region, pages, new Random(seed), data);
        var again = await WritePagesAsync(client, region, pages, new Random(seed + 1000), data);
        await client.UnmapRegionAsync(new UnmapRegionRequest { Name = region });
        await client.DeleteRegionAsync(new DeleteRegionRequest { Name = region });
        return (createMs, first, again);
    }

    /// <summary>Each page once, in a random order; the latency of each persisted write.</summary>
    private static async Task<double[]> WritePagesAsync(Client client, string region, int pages, Random random, ByteString data)
    {
        var order = Enumerable.Range(0, pages).ToArray();
        random.Shuffle(order);
        var latencies = new double[pages];
        for (var i = 0; i < pages; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await client.WriteRegionAsync(new WriteRegionRequest { Name = region, Offset = (ulong)order[i] * 4096, Data = data });
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        return latencies;
    }
}
