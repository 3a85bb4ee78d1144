using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Pmem2;
using PmemService.Client;
using PmemService.Contracts.V1;

// Direct access lane benchmark (issue 11). One process hosts the real service (Kestrel on a Unix
// socket under /dev/shm) and is its client. Interleaved repetitions; medians, min-max spread and the
// load average are printed as a Markdown table. Usage:
//   dotnet bench/DirectLane.Bench/bin/Release/net10.0/DirectLane.Bench.dll [--size-mib 1024] [--reps 3] [--chart docs/images/direct-lane.png]
// Bulk writes copy SIZE in 1 MiB pieces:
//   CACHE_LINE (PMEM2_FORCE_GRANULARITY=CACHE_LINE set by the bench for those maps): StreamWriteRegion
//   (the baseline), the direct lane (non-temporal pieces, one drain), and Pmem2 memcpy into a
//   mapping this process made itself (same flags);
//   PAGE: StreamWriteRegion vs the direct lane (plain pieces, one msync at the end).
// Each direct / in-process row runs twice: on the mapping as opened (a page fault per 4 KiB page on
// the first store) and prefaulted first (DirectRegion.Prefault / Pmem2Map.Populate; its own time is a row too).
// PMEM2_FORCE_GRANULARITY is read from libc's environment (like libpmem2's secure_getenv), which .NET's
// Environment.SetEnvironmentVariable does not change: each granularity runs in a child process of this
// bench started with the variable in its environment (set for CACHE_LINE, removed for PAGE), and the
// child checks that the maps really have that granularity.
var only = StringArg("--granularity");
if (only is null)
{
    // --chart PNG: the children append their medians to a results file; one bar chart of both afterwards.
    var chartPath = StringArg("--chart");
    var resultsFile = chartPath is null ? null : Path.GetTempFileName();
    var dll = System.Reflection.Assembly.GetEntryAssembly()!.Location;
    foreach (var g in new[] { "CACHE_LINE", "PAGE" })
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.ArgumentList.Add("--granularity");
        start.ArgumentList.Add(g);
        if (resultsFile is not null)
        {
            start.ArgumentList.Add("--results");
            start.ArgumentList.Add(resultsFile);
        }
        start.Environment.Remove("PMEM2_FORCE_GRANULARITY");
        if (g == "CACHE_LINE")
        {
            start.Environment["PMEM2_FORCE_GRANULARITY"] = "CACHE_LINE";
        }

        using var child = Process.Start(start)!;
        await child.WaitForExitAsync();
        if (child.ExitCode != 0)
        {
            return child.ExitCode;
        }

        Console.WriteLine();
    }

    if (chartPath is not null && resultsFile is not null)
    {
        DirectLaneChart.Write(chartPath, File.ReadAllLines(resultsFile), File.ReadAllText("/proc/loadavg").Split(' ')[0]);
        File.Delete(resultsFile);
        Console.WriteLine($"chart: {chartPath}");
    }

    return 0;
}

var sizeMiB = Arg("--size-mib", 1024);
var reps = Arg("--reps", 3);
var casOps = Arg("--cas", 100_000);
var opens = Arg("--opens", 300);
var piece = 1 << 20;
var size = (long)sizeMiB << 20;

var root = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), "pmem-dl-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(root);
var socket = Path.Combine(root, "pmem.sock");
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production", ContentRootPath = root, Args = [] });
builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
{
    ["PmemService:PoolPath"] = Path.Combine(root, "pool"),
    ["PmemService:UnixSocketPath"] = socket,
    ["PmemService:TcpEndpoint"] = string.Empty,
    ["PmemService:MaxRegionSize"] = (size * 2).ToString(CultureInfo.InvariantCulture),
    ["PmemService:MaxMappedBytes"] = (size * 4).ToString(CultureInfo.InvariantCulture),
    ["Serilog:MinimumLevel:Default"] = "Warning",
});
builder.Services.AddPmem(builder.Configuration);
var app = builder.Build();
app.MapPmemServices();
await app.StartAsync();
var results = new Dictionary<string, List<double>>();
try
{
    using var client = new PmemClient("unix://" + socket, new PmemClientOptions { ChunkSize = piece });
    var data = new byte[size];
    Random.Shared.NextBytes(data);

    var granularity = only;
    var name = "bench-" + granularity.ToLowerInvariant();
    var mapped = await client.MapRegionAsync(name, size, createIfMissing: true);
    var expected = granularity == "PAGE" ? Granularity.Page : Granularity.CacheLine;
    if (mapped.EffectiveGranularity != expected)
    {
        throw new InvalidOperationException($"the service mapped '{name}' at {mapped.EffectiveGranularity}, not {expected}: is PMEM2_FORCE_GRANULARITY in this process's environment?");
    }

    for (var rep = 0; rep < reps; rep++)
    {
        // StreamWriteRegion (baseline)
        var watch = Stopwatch.StartNew();
        using (var stream = new MemoryStream(data, writable: false))
        {
            await client.UploadAsync(stream, name, 0, null);
        }

        Add($"{granularity} StreamWriteRegion", size / watch.Elapsed.TotalSeconds);

        // Direct lane: as opened (every 4 KiB page faults in on its first store), then prefaulted
        // (DirectRegion.Prefault, MADV_POPULATE_WRITE, timed on its own: it is the fault cost moved to open).
        foreach (var prefault in new[] { false, true })
        {
            using var direct = await client.OpenDirectAsync(name, DirectAccess.ReadWrite);
            if (prefault)
            {
                watch.Restart();
                if (!direct.Prefault())
                {
                    throw new InvalidOperationException("MADV_POPULATE_WRITE not supported by this kernel");
                }

                Add($"{granularity} prefault (GB/s of region)", size / watch.Elapsed.TotalSeconds);
            }

            var page = direct.Granularity == Pmem2Granularity.Page;
            var flags = page ? Pmem2MemFlags.NoFlush : Pmem2MemFlags.NoDrain | Pmem2MemFlags.NonTemporal;
            watch.Restart();
            for (long offset = 0; offset < size; offset += piece)
            {
                direct.Memcpy(offset, data.AsSpan((int)offset, piece), flags);
            }

            if (page)
            {
                direct.Persist(0, size);
            }
            else
            {
                direct.Drain();
            }

            Add($"{granularity} direct lane{(prefault ? ", prefaulted" : string.Empty)}", size / watch.Elapsed.TotalSeconds);
        }

        if (granularity == "CACHE_LINE")
        {
            // Pmem2 in-process: this process maps the file itself.
            foreach (var prefault in new[] { false, true })
            {
                using var source = Pmem2Source.Open(Path.Combine(root, "pool", name));
                using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, source);
                if (map.StoreGranularity != Pmem2Granularity.CacheLine)
                {
                    throw new InvalidOperationException($"in-process map at {map.StoreGranularity}, not CacheLine");
                }

                if (prefault)
                {
                    map.Populate(0, map.Size);
                }

                watch.Restart();
                for (long offset = 0; offset < size; offset += piece)
                {
                    map.Memcpy((ulong)offset, data.AsSpan((int)offset, piece), Pmem2MemFlags.NoDrain | Pmem2MemFlags.NonTemporal);
                }

                map.Drain();
                Add($"{granularity} Pmem2 in-process memcpy{(prefault ? ", prefaulted" : string.Empty)}", size / watch.Elapsed.TotalSeconds);
            }
        }
    }

    if (granularity == "CACHE_LINE")
    {
        // 8-byte CAS + persist vs gRPC WriteRegion of 8 bytes.
        using var direct = await client.OpenDirectAsync(name, DirectAccess.ReadWrite);
        var samples = new double[casOps];
        for (var i = 0; i < casOps; i++)
        {
            var start = Stopwatch.GetTimestamp();
            direct.CompareExchange64(4096, i + 1, i);
            samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        Percentiles("CACHE_LINE direct CAS+persist (us)", samples);
        var grpc = new double[Math.Min(2000, casOps)];
        var eight = new byte[8];
        for (var i = 0; i < grpc.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await client.WriteAsync(name, 4096, eight);
            grpc[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        Percentiles("CACHE_LINE gRPC WriteRegion 8 B (us)", grpc);

        var open = new double[opens];
        for (var i = 0; i < opens; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var lease = await client.OpenDirectAsync(name, DirectAccess.ReadWrite);
            open[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            lease.Dispose();
        }

        Percentiles("open direct lease: OpenDirect + side channel + map (us)", open);
    }

    await client.UnmapRegionAsync(name);
    await client.DeleteRegionAsync(name, force: true);
}
finally
{
    await app.StopAsync();
    await app.DisposeAsync();
    Directory.Delete(root, recursive: true);
}

Console.WriteLine(FormattableString.Invariant($"size {sizeMiB} MiB, pieces 1 MiB, {reps} interleaved reps, load average {File.ReadAllText("/proc/loadavg").Trim()}, {Environment.ProcessorCount} CPUs"));
Console.WriteLine();
Console.WriteLine("| bulk write | median GB/s | min-max GB/s | vs StreamWriteRegion (median) |");
Console.WriteLine("|---|---|---|---|");
foreach (var (key, values) in results)
{
    values.Sort();
    var baseline = results[key.Split(' ')[0] + " StreamWriteRegion"];
    var ratio = Median(values) / Median(baseline);
    Console.WriteLine(FormattableString.Invariant($"| {key} | {Median(values) / 1e9:0.000} | {values[0] / 1e9:0.000}-{values[^1] / 1e9:0.000} | {ratio:0.0}x |"));
}

Console.WriteLine();
if (StringArg("--results") is { } resultsPath)
{
    File.AppendAllLines(resultsPath, results.Select(r => FormattableString.Invariant($"{r.Key}\t{Median(r.Value) / 1e9}\t{r.Value.Min() / 1e9}\t{r.Value.Max() / 1e9}")));
}

foreach (var suffix in new[] { string.Empty, ", prefaulted" })
{
    if (results.TryGetValue("CACHE_LINE direct lane" + suffix, out var lane) && results.TryGetValue("CACHE_LINE Pmem2 in-process memcpy" + suffix, out var inproc))
    {
        Console.WriteLine(FormattableString.Invariant($"direct lane{suffix} / in-process Pmem2 memcpy{suffix} (CACHE_LINE, medians): {Median(lane) / Median(inproc):0.00}"));
    }
}

return 0;

void Add(string key, double bytesPerSecond)
{
    if (!results.TryGetValue(key, out var list))
    {
        results[key] = list = [];
    }

    list.Add(bytesPerSecond);
}

static double Median(List<double> sorted)
{
    var copy = sorted.Order().ToList();
    return copy.Count % 2 == 1 ? copy[copy.Count / 2] : (copy[(copy.Count / 2) - 1] + copy[copy.Count / 2]) / 2;
}

static void Percentiles(string what, double[] samples)
{
    Array.Sort(samples);
    Console.WriteLine(FormattableString.Invariant($"{what}: p50 {samples[samples.Length / 2]:0.00}, p90 {samples[samples.Length * 9 / 10]:0.00}, p99 {samples[samples.Length * 99 / 100]:0.00}, n {samples.Length}"));
}

string? StringArg(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}
