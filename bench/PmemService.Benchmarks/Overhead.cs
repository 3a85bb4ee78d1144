using System.Globalization;
using PmemService.Contracts.V1;

namespace PmemService.Benchmarks;

/// <summary>Issue 10 item 4: per-call cost of request logging, metrics and tracing on a 4 KiB WriteRegion.</summary>
internal static class Overhead
{
    public static async Task<int> RunAsync(string[] args)
    {
        var reps = ModeArgs.Int(args, 1, 7);
        var duration = TimeSpan.FromMilliseconds(ModeArgs.Int(args, 2, 1500));
        var root = Path.Combine("/dev/shm", "pmemoverhead-" + Guid.NewGuid().ToString("N")[..8]);
        await using var shippedServer = await ChildServer.StartAsync("shipped", "service", Path.Combine(root, "shipped"), null, ChildServer.CacheLine());
        await using var bareServer = await ChildServer.StartAsync("bare", "service-bare", Path.Combine(root, "bare"), null, ChildServer.CacheLine());
        var shipped = new Target(shippedServer);
        var bare = new Target(bareServer);
        foreach (var t in new[] { shipped, bare })
        {
            await t.MapBenchRegionAsync();
        }

        Console.WriteLine($"overhead: {reps} interleaved reps of {duration.TotalMilliseconds} ms, WriteRegion 4 KiB UDS CACHE_LINE; load {Stats.LoadAverage():0.0}");
        Console.WriteLine("| concurrency | as shipped calls/s | no request logging calls/s | shipped / bare (median, spread) | p50 µs shipped / bare | load |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var concurrency in new[] { 1, 8 })
        {
            var row = new Row("overhead", RowKind.Unary, "UDS", "CACHE_LINE", 4096, concurrency);
            await Load.RunAsync(shipped, row, 0, TimeSpan.FromMilliseconds(300), false);
            await Load.RunAsync(bare, row, 0, TimeSpan.FromMilliseconds(300), false);
            var a = new List<Sample>();
            var b = new List<Sample>();
            for (var rep = 0; rep < reps; rep++)
            {
                if (rep % 2 == 0)
                {
                    a.Add(await Load.RunAsync(shipped, row, 0, duration, false));
                    b.Add(await Load.RunAsync(bare, row, 0, duration, false));
                }
                else
                {
                    b.Add(await Load.RunAsync(bare, row, 0, duration, false));
                    a.Add(await Load.RunAsync(shipped, row, 0, duration, false));
                }
            }

            var ratios = a.Zip(b, (x, y) => x.CallsPerSecond / y.CallsPerSecond).ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {concurrency} | {Stats.Median(a.Select(s => s.CallsPerSecond)):0} | {Stats.Median(b.Select(s => s.CallsPerSecond)):0} | **{Stats.Median(ratios):0.000}** ({Stats.Spread(ratios, "0.000")}) | {Stats.Median(a.Select(s => s.P(0.5))):0} / {Stats.Median(b.Select(s => s.P(0.5))):0} | {Stats.LoadAverage():0.0} |"));
        }

        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
        }

        return 0;
    }
}
