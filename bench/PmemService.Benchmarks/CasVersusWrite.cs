using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using PmemService.Contracts.V1;

namespace PmemService.Benchmarks;

/// <summary>
/// Issue 14's goal, measured call by call: "a CompareAndSwap round trip at most 1.1x the WriteRegion 4 KiB
/// latency at CACHE_LINE". The row-by-row benchmark runs the CAS row and the write row a minute apart, and on
/// a shared 2-CPU machine the load moves more than the difference between them (CAS/write p50 0.41-1.46 over
/// four runs). Here every worker alternates the two calls on one channel to one service (write, CAS, write,
/// CAS, ...; which comes first flips each rep), so both see the same load at the same moment, and the
/// ratio of their p50s is taken per rep; the table gives the median and spread of those ratios.
/// </summary>
internal static class CasVersusWrite
{
    public static async Task<int> RunAsync(string[] args)
    {
        var reps = ModeArgs.Int(args, 1, 7);
        var duration = TimeSpan.FromMilliseconds(ModeArgs.Int(args, 2, 1500));
        var root = Path.Combine("/dev/shm", "pmemcas-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            await using var server = await ChildServer.StartAsync("service-cl", "service", Path.Combine(root, "cl"), null, ChildServer.CacheLine());
            var target = new Target(server);
            await target.MapBenchRegionAsync();

            Console.WriteLine($"cas-vs-write: {reps} reps of {duration.TotalMilliseconds} ms, each worker alternating WriteRegion 4 KiB and CompareAndSwap, UDS, CACHE_LINE; {Environment.ProcessorCount} CPUs");
            Console.WriteLine("| concurrency | WriteRegion 4 KiB p50 / p99 µs | CompareAndSwap p50 / p99 µs | CAS / write p50 (median, spread) | calls per rep | load |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
            foreach (var concurrency in new[] { 1, 8 })
            {
                await MeasureAsync(target, concurrency, TimeSpan.FromMilliseconds(300), casFirst: false); // warm-up
                var writes = new List<double[]>();
                var cases = new List<double[]>();
                var loadBefore = Stats.LoadAverage();
                for (var rep = 0; rep < reps; rep++)
                {
                    var (w, c) = await MeasureAsync(target, concurrency, duration, casFirst: rep % 2 == 1);
                    writes.Add(w);
                    cases.Add(c);
                }

                var ratios = writes.Zip(cases, (w, c) => Stats.Percentile(c, 0.5) / Stats.Percentile(w, 0.5)).ToList();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {concurrency} | {Stats.Median(writes.Select(w => Stats.Percentile(w, 0.5))):0} / {Stats.Median(writes.Select(w => Stats.Percentile(w, 0.99))):0} | {Stats.Median(cases.Select(c => Stats.Percentile(c, 0.5))):0} / {Stats.Median(cases.Select(c => Stats.Percentile(c, 0.99))):0} | **{Stats.Median(ratios):0.00}** ({Stats.Spread(ratios, "0.00")}) | {Stats.Median(writes.Select(w => (double)w.Length)):0} + {Stats.Median(cases.Select(c => (double)c.Length)):0} | {loadBefore:0.0}-{Stats.LoadAverage():0.0} |"));
            }
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

        return 0;
    }

    /// <summary>Every worker alternates a 4 KiB write (random 4 KiB slot in the first 32 MiB) and a CAS on its own cache line, until the deadline.</summary>
    private static async Task<(double[] Writes, double[] Cas)> MeasureAsync(Target target, int concurrency, TimeSpan duration, bool casFirst)
    {
        var client = target.Uds;
        var data = ByteString.CopyFrom(new byte[4096]);
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var writes = new List<double>[concurrency];
        var cas = new List<double>[concurrency];
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var myWrites = writes[w] = new List<double>(4096);
            var myCas = cas[w] = new List<double>(4096);
            var random = new Random(w);
            // CAS slots live past the 32 MiB the writes touch, one cache line per worker: every CAS swaps.
            var casOffset = (64UL << 20) + (ulong)(w * 64);
            var expected = (await client.FetchAddAsync(new FetchAddRequest { Name = Load.Region, Offset = casOffset, Delta = 0 })).Previous;
            var doCas = casFirst;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var start = Stopwatch.GetTimestamp();
                if (doCas)
                {
                    var r = await client.CompareAndSwapAsync(new CompareAndSwapRequest { Name = Load.Region, Offset = casOffset, Expected = expected, Desired = expected + 1 });
                    myCas.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                    expected = r.Swapped ? expected + 1 : r.Previous;
                }
                else
                {
                    var offset = (ulong)random.Next((32 << 20) / 4096) * 4096;
                    await client.WriteRegionAsync(new WriteRegionRequest { Name = Load.Region, Offset = offset, Data = data });
                    myWrites.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                }

                doCas = !doCas;
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return (writes.SelectMany(l => l).ToArray(), cas.SelectMany(l => l).ToArray());
    }
}
