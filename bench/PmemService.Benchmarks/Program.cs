using System.Globalization;
using System.Text;
using PmemService.Benchmarks;
using PmemService.Contracts.V1;

// Child mode: "serve service|sink ROOT".
if (args.Length >= 3 && args[0] == "serve")
{
    return await Servers.ServeAsync(args[1], args[2], args.Length > 3 ? args[3] : Path.Combine(args[2], "pool"));
}

// "folio [ROUNDS] [OPS] [DIR]": 4 KiB persisted writes at PAGE, native libpmem2 vs ours vs ours with PageCacheAdvice.Random.
if (args.Length >= 1 && args[0] == "folio")
{
    return Folio.Run(args);
}

// "overhead [REPS]": WriteRegion 4 KiB at CACHE_LINE, the service as shipped against the same service without
// request logging (the per-call cost of logging, metrics hooks and tracing hooks), interleaved.
if (args.Length >= 1 && args[0] == "overhead")
{
    return await Overhead.RunAsync(args);
}

// "first-touch [REPS] [PAGES]": PmemService:ZeroFillOnCreate, the first persisted write of each page of a fresh region.
if (args.Length >= 1 && args[0] == "first-touch")
{
    return await FirstTouch.RunAsync(args);
}

// "cas-vs-write [REPS] [MS]": issue 14's goal, CompareAndSwap against WriteRegion 4 KiB, alternated call by call.
if (args.Length >= 1 && args[0] == "cas-vs-write")
{
    return await CasVersusWrite.RunAsync(args);
}

var quick = args.Contains("--quick");
var reps = IntArg("--reps", quick ? 3 : 5);
var chartsDir = StringArg("--charts", null);
var markdownPath = StringArg("--markdown", null);
var noSweep = args.Contains("--no-sweep");
var streamBytes = (long)IntArg("--stream-mib", quick ? 48 : 256) << 20;
var unaryDuration = TimeSpan.FromMilliseconds(IntArg("--unary-ms", quick ? 600 : 2000));
// PAGE rows need a real disk filesystem (ext4): the pool goes under --disk-dir (default /var/tmp).
var diskDir = StringArg("--disk-dir", "/var/tmp")!;
// --baseline DLL: the same benchmark built from the baseline commit; its service runs as a third target in the same interleaved reps.
// PMEMBENCH_BASELINE_ENV="K=V;K2=V2": environment for the baseline PAGE service only, so a runtime or service setting can be
// A/B-tested on one build (--baseline pointing at this benchmark's own dll).
var baselineDll = StringArg("--baseline", null);
// --null-sink: a fourth target on the write rows, the transport ceiling (NullSink.cs: the sink's settings, data never parsed).
var withNullSink = args.Contains("--null-sink");
// --device: on the PAGE unary rows, the device ceiling (DeviceCeiling.cs: C threads, 4 KiB memcpy + msync each, no gRPC) as another interleaved target.
var withDevice = args.Contains("--device");

var rows = new List<Row>
{
    new("StreamWriteRegion 64 KiB, UDS, CACHE_LINE", RowKind.StreamWrite, "UDS", "CACHE_LINE", 64 << 10, 1),
    new("StreamWriteRegion 1 MiB, UDS, CACHE_LINE", RowKind.StreamWrite, "UDS", "CACHE_LINE", 1 << 20, 1),
    new("StreamWriteRegion 64 KiB, TCP, CACHE_LINE", RowKind.StreamWrite, "TCP", "CACHE_LINE", 64 << 10, 1),
    new("StreamWriteRegion 64 KiB, UDS, PAGE", RowKind.StreamWrite, "UDS", "PAGE", 64 << 10, 1),
    new("StreamWriteRegion 1 MiB, UDS, PAGE", RowKind.StreamWrite, "UDS", "PAGE", 1 << 20, 1),
    new("StreamWriteRegion 64 KiB, TCP, PAGE", RowKind.StreamWrite, "TCP", "PAGE", 64 << 10, 1),
    new("WriteRegion 4 KiB, c1, UDS, CACHE_LINE", RowKind.Unary, "UDS", "CACHE_LINE", 4096, 1),
    new("WriteRegion 4 KiB, c8, UDS, CACHE_LINE", RowKind.Unary, "UDS", "CACHE_LINE", 4096, 8),
    new("WriteRegion 4 KiB, c32, UDS, CACHE_LINE", RowKind.Unary, "UDS", "CACHE_LINE", 4096, 32),
    new("CompareAndSwap, c1, UDS, CACHE_LINE", RowKind.CompareAndSwap, "UDS", "CACHE_LINE", 8, 1),
    new("CompareAndSwap, c8, UDS, CACHE_LINE", RowKind.CompareAndSwap, "UDS", "CACHE_LINE", 8, 8),
    new("WriteRegion 4 KiB, c1, UDS, PAGE", RowKind.Unary, "UDS", "PAGE", 4096, 1),
    new("WriteRegion 4 KiB, c8, UDS, PAGE", RowKind.Unary, "UDS", "PAGE", 4096, 8),
    new("WriteRegion 4 KiB, c32, UDS, PAGE", RowKind.Unary, "UDS", "PAGE", 4096, 32),
    new("CompareAndSwap, c1, UDS, PAGE", RowKind.CompareAndSwap, "UDS", "PAGE", 8, 1),
    new("StreamReadRegion 64 KiB, UDS, CACHE_LINE", RowKind.StreamRead, "UDS", "CACHE_LINE", 64 << 10, 1),
    new("StreamReadRegion 1 MiB, UDS, CACHE_LINE", RowKind.StreamRead, "UDS", "CACHE_LINE", 1 << 20, 1),
};
if (StringArg("--rows", null) is { } filter)
{
    rows = rows.Where(r => filter.Split(';').Any(f => r.Label.Contains(f, StringComparison.OrdinalIgnoreCase))).ToList();
}

var runRoot = Path.Combine("/dev/shm", "pmembench-" + Guid.NewGuid().ToString("N")[..8]);
var diskRoot = Path.Combine(diskDir, "pmembench-" + Guid.NewGuid().ToString("N")[..8]);
Console.WriteLine($"PmemService benchmark ({(quick ? "quick" : "full")}): {reps} interleaved reps per row, streams of {streamBytes >> 20} MiB, unary runs of {unaryDuration.TotalMilliseconds} ms");
Console.WriteLine($"machine: {Environment.ProcessorCount} CPUs, {Environment.OSVersion}, .NET {Environment.Version}; load average at start {Stats.LoadAverage():0.00}");
Console.WriteLine($"sockets under {runRoot}; CACHE_LINE pool under {runRoot} (PMEM2_FORCE_GRANULARITY=CACHE_LINE), PAGE pool under {diskRoot}");

var noEnv = new Dictionary<string, string>();
await using var sinkServer = await ChildServer.StartAsync("sink", "sink", Path.Combine(runRoot, "sink"), null, noEnv);
// CACHE_LINE forced by pmem2's switch (CPU flushes, no msync), pool on tmpfs; PAGE (msync) with its pool on ext4.
await using var clServer = await ChildServer.StartAsync("service-cl", "service", Path.Combine(runRoot, "cl"), null, ChildServer.CacheLine());
Directory.CreateDirectory(diskRoot);
await using var pageServer = await ChildServer.StartAsync("service-page", "service", Path.Combine(runRoot, "page"), Path.Combine(diskRoot, "pool"), noEnv);
ChildServer? baseClServer = null, basePageServer = null;
if (baselineDll is not null)
{
    baseClServer = await ChildServer.StartAsync("baseline-cl", "service", Path.Combine(runRoot, "bcl"), null, ChildServer.CacheLine(), baselineDll);
    var baseEnv = new Dictionary<string, string>();
    if (Environment.GetEnvironmentVariable("PMEMBENCH_BASELINE_ENV") is { } extra)
    {
        foreach (var kv in extra.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            baseEnv[kv[..kv.IndexOf('=')]] = kv[(kv.IndexOf('=') + 1)..];
        }
    }

    basePageServer = await ChildServer.StartAsync("baseline-page", "service", Path.Combine(runRoot, "bpage"), Path.Combine(diskRoot, "bpool"), baseEnv, baselineDll);
}

ChildServer? nullSinkServer = withNullSink ? await ChildServer.StartAsync("nullsink", "nullsink", Path.Combine(runRoot, "nullsink"), null, noEnv) : null;
var nullSink = nullSinkServer is null ? null : new Target(nullSinkServer);
using var device = withDevice ? new DeviceCeiling(Path.Combine(diskRoot, "device")) : null;
var sink = new Target(sinkServer);
var cl = new Target(clServer);
var page = new Target(pageServer);
var baseCl = baseClServer is null ? null : new Target(baseClServer);
var basePage = basePageServer is null ? null : new Target(basePageServer);
foreach (var t in new[] { sink, nullSink, cl, page, baseCl, basePage }.OfType<Target>())
{
    var info = await t.MapBenchRegionAsync();
    Console.WriteLine($"  {t.Server.Name}: region '{info.Name}' {info.Size >> 20} MiB, granularity {info.EffectiveGranularity}");
}

var results = new List<(Row Row, List<Sample> Service, List<Sample> Sink, double Load)>();
var baselineResults = new List<List<Sample>>();
var ceilingResults = new List<(Row Row, List<Sample> Service, List<Sample> Sink, List<Sample> Null)>();
var deviceResults = new List<(Row Row, List<Sample> Service, List<Sample> Device)>();
foreach (var row in rows)
{
    var service = row.Granularity == "PAGE" ? page : cl;
    var baseline = row.Granularity == "PAGE" ? basePage : baseCl;
    var ceiling = row.Kind is RowKind.StreamWrite or RowKind.Unary ? nullSink : null;
    var deviceRow = row.Kind == RowKind.Unary && row.Granularity == "PAGE" ? device : null;
    // Server allocations per payload byte: the streams (where a per-chunk buffer or message would show).
    var measureAlloc = row.Kind is RowKind.StreamWrite or RowKind.StreamRead;
    // Warm-up (JIT, connections, page cache), untimed.
    await Load.RunAsync(sink, row, Math.Min(streamBytes, 16L << 20), TimeSpan.FromMilliseconds(200), false);
    await Load.RunAsync(service, row, Math.Min(streamBytes, 16L << 20), TimeSpan.FromMilliseconds(200), false);
    if (baseline is not null)
    {
        await Load.RunAsync(baseline, row, Math.Min(streamBytes, 16L << 20), TimeSpan.FromMilliseconds(200), false);
    }

    if (ceiling is not null)
    {
        await Load.RunAsync(ceiling, row, Math.Min(streamBytes, 16L << 20), TimeSpan.FromMilliseconds(200), false);
    }

    var load = Stats.LoadAverage();
    var serviceSamples = new List<Sample>();
    var sinkSamples = new List<Sample>();
    var baselineSamples = new List<Sample>();
    var nullSamples = new List<Sample>();
    var deviceSamples = new List<Sample>();
    for (var rep = 0; rep < reps; rep++)
    {
        // Interleaved, the order rotating each rep: sink, service[, baseline], then shifted by one.
        Func<Task<Sample>> Of(Target target) => () => Load.RunAsync(target, row, streamBytes, unaryDuration, measureAlloc);
        var order = new List<(Func<Task<Sample>> Run, List<Sample> Samples)> { (Of(sink), sinkSamples), (Of(service), serviceSamples) };
        if (baseline is not null)
        {
            order.Add((Of(baseline), baselineSamples));
        }

        if (ceiling is not null)
        {
            order.Add((Of(ceiling), nullSamples));
        }

        if (deviceRow is not null)
        {
            order.Add((() => Task.Run(() => deviceRow.Run(row.Concurrency, unaryDuration)), deviceSamples));
        }

        for (var k = 0; k < order.Count; k++)
        {
            var (run, samples) = order[(k + rep) % order.Count];
            samples.Add(await run());
        }
    }

    baselineResults.Add(baselineSamples);
    if (deviceSamples.Count > 0)
    {
        deviceResults.Add((row, serviceSamples, deviceSamples));
    }

    if (nullSamples.Count > 0)
    {
        ceilingResults.Add((row, serviceSamples, sinkSamples, nullSamples));
    }

    load = (load + Stats.LoadAverage()) / 2;
    results.Add((row, serviceSamples, sinkSamples, load));
    Console.WriteLine(Format(row, serviceSamples, sinkSamples, load));
}

var table = Table(results);
if (baseCl is not null)
{
    table += "\n" + BaselineTable(results, baselineResults);
}
if (ceilingResults.Count > 0)
{
    table += "\n" + CeilingTable(ceilingResults);
}

if (deviceResults.Count > 0)
{
    table += "\n" + DeviceTable(deviceResults);
}

Console.WriteLine();
Console.WriteLine(table);

var sweeps = new StringBuilder();
if (!noSweep)
{
    // Chart data: StreamWriteRegion throughput against chunk size (UDS, CACHE_LINE), calls/s against concurrency.
    var chunkSizes = new[] { 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20 };
    var sweepReps = quick ? 1 : 3;
    var chunkSeries = new Dictionary<string, double[]> { ["transport-only sink"] = new double[chunkSizes.Length], ["service (CACHE_LINE)"] = new double[chunkSizes.Length], ["service (PAGE, ext4)"] = new double[chunkSizes.Length] };
    for (var i = 0; i < chunkSizes.Length; i++)
    {
        var row = new Row("sweep", RowKind.StreamWrite, "UDS", "CACHE_LINE", chunkSizes[i], 1);
        var s = new List<double>();
        var c = new List<double>();
        var p = new List<double>();
        for (var rep = 0; rep < sweepReps; rep++)
        {
            s.Add((await Load.RunAsync(sink, row, streamBytes, unaryDuration, false)).MBps);
            c.Add((await Load.RunAsync(cl, row, streamBytes, unaryDuration, false)).MBps);
            p.Add((await Load.RunAsync(page, row with { Granularity = "PAGE" }, streamBytes, unaryDuration, false)).MBps);
        }

        chunkSeries["transport-only sink"][i] = Stats.Median(s);
        chunkSeries["service (CACHE_LINE)"][i] = Stats.Median(c);
        chunkSeries["service (PAGE, ext4)"][i] = Stats.Median(p);
    }

    var concurrencies = new[] { 1, 2, 4, 8, 16, 32 };
    var callSeries = new Dictionary<string, double[]> { ["transport-only sink"] = new double[concurrencies.Length], ["service (CACHE_LINE)"] = new double[concurrencies.Length], ["service (PAGE, ext4)"] = new double[concurrencies.Length] };
    for (var i = 0; i < concurrencies.Length; i++)
    {
        var row = new Row("sweep", RowKind.Unary, "UDS", "CACHE_LINE", 4096, concurrencies[i]);
        var s = new List<double>();
        var c = new List<double>();
        var p = new List<double>();
        for (var rep = 0; rep < sweepReps; rep++)
        {
            s.Add((await Load.RunAsync(sink, row, streamBytes, unaryDuration, false)).CallsPerSecond);
            c.Add((await Load.RunAsync(cl, row, streamBytes, unaryDuration, false)).CallsPerSecond);
            p.Add((await Load.RunAsync(page, row with { Granularity = "PAGE" }, streamBytes, unaryDuration, false)).CallsPerSecond);
        }

        callSeries["transport-only sink"][i] = Stats.Median(s);
        callSeries["service (CACHE_LINE)"][i] = Stats.Median(c);
        callSeries["service (PAGE, ext4)"][i] = Stats.Median(p);
    }

    sweeps.AppendLine("| chunk | " + string.Join(" | ", chunkSeries.Keys) + " |");
    sweeps.AppendLine("|---|" + string.Concat(chunkSeries.Keys.Select(_ => "---:|")));
    for (var i = 0; i < chunkSizes.Length; i++)
    {
        sweeps.AppendLine($"| {chunkSizes[i] >> 10} KiB | " + string.Join(" | ", chunkSeries.Values.Select(v => $"{v[i]:0} MB/s")) + " |");
    }

    sweeps.AppendLine();
    sweeps.AppendLine("| concurrency | " + string.Join(" | ", callSeries.Keys) + " |");
    sweeps.AppendLine("|---|" + string.Concat(callSeries.Keys.Select(_ => "---:|")));
    for (var i = 0; i < concurrencies.Length; i++)
    {
        sweeps.AppendLine($"| {concurrencies[i]} | " + string.Join(" | ", callSeries.Values.Select(v => $"{v[i]:0} calls/s")) + " |");
    }

    Console.WriteLine(sweeps);
    if (chartsDir is not null)
    {
        Charts.Write(chartsDir, chunkSizes, chunkSeries, concurrencies, callSeries, Stats.LoadAverage());
        Console.WriteLine($"charts written to {chartsDir}/service-stream-write-chunks.png and service-unary-concurrency.png");
    }
}

if (markdownPath is not null)
{
    var header = $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {(quick ? "quick" : "full")} mode, {reps} interleaved reps per row, streams of {streamBytes >> 20} MiB, unary runs of {unaryDuration.TotalMilliseconds} ms; load average at the end {Stats.LoadAverage():0.00}.";
    await File.WriteAllTextAsync(markdownPath, header + "\n\n" + table + "\n" + sweeps);
}

foreach (var extra in new[] { baseClServer, basePageServer, nullSinkServer }.OfType<ChildServer>())
{
    await extra.DisposeAsync();
}

foreach (var dir in new[] { runRoot, diskRoot })
{
    try
    {
        Directory.Delete(dir, recursive: true);
    }
    catch (IOException)
    {
    }
}

return 0;

string Format(Row row, List<Sample> service, List<Sample> sinkSamples, double load)
{
    var ratios = row.Ratios(service, sinkSamples);
    return $"{row.Label}: service {Stats.Median(service.Select(row.Value)):0} vs sink {Stats.Median(sinkSamples.Select(row.Value)):0} {row.Unit}, ratio {Stats.Median(ratios):0.00} ({Stats.Spread(ratios, "0.00")}), load {load:0.0}";
}

string BaselineTable(List<(Row Row, List<Sample> Service, List<Sample> Sink, double Load)> all, List<List<Sample>> baselines)
{
    var sb = new StringBuilder();
    sb.AppendLine("| row | baseline / sink (median, spread) | this build / sink (median, spread) | this build / baseline | baseline p50 / p99 µs | baseline server CPU s/GB | baseline alloc B per payload B |");
    sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
    for (var i = 0; i < all.Count; i++)
    {
        var (row, service, sinkSamples, _) = all[i];
        var baseSamples = baselines[i];
        var before = row.Ratios(baseSamples, sinkSamples);
        var after = row.Ratios(service, sinkSamples);
        var gain = row.Ratios(service, baseSamples);
        var alloc = row.Kind is RowKind.StreamWrite or RowKind.StreamRead ? $"{Stats.Median(baseSamples.Select(s => (double)s.Allocated / s.Bytes)):0.000}" : "-";
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {Stats.Median(before):0.00} ({Stats.Spread(before, "0.00")}) | {Stats.Median(after):0.00} ({Stats.Spread(after, "0.00")}) | **{Stats.Median(gain):0.00}** ({Stats.Spread(gain, "0.00")}) | {Stats.Median(baseSamples.Select(s => s.P(0.5))):0} / {Stats.Median(baseSamples.Select(s => s.P(0.99))):0} | {Stats.Median(baseSamples.Select(s => s.CpuSecondsPerGB)):0.00} | {alloc} |");
    }

    return sb.ToString();
}

string CeilingTable(List<(Row Row, List<Sample> Service, List<Sample> Sink, List<Sample> Null)> all)
{
    // Per-round ratios against the null sink (the transport ceiling: no parse, no copy) in the same interleaved reps.
    var sb = new StringBuilder();
    sb.AppendLine("| row | null sink | sink / null sink (median, spread) | service / null sink (median, spread) | null sink server CPU s/GB |");
    sb.AppendLine("|---|---:|---:|---:|---:|");
    foreach (var (row, service, sinkSamples, nullSamples) in all)
    {
        var sinkRatio = row.Ratios(sinkSamples, nullSamples);
        var serviceRatio = row.Ratios(service, nullSamples);
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {Stats.Median(nullSamples.Select(row.Value)):0} {row.Unit} | {Stats.Median(sinkRatio):0.00} ({Stats.Spread(sinkRatio, "0.00")}) | **{Stats.Median(serviceRatio):0.00}** ({Stats.Spread(serviceRatio, "0.00")}) | {Stats.Median(nullSamples.Select(s => s.CpuSecondsPerGB)):0.00} |");
    }

    return sb.ToString();
}

string DeviceTable(List<(Row Row, List<Sample> Service, List<Sample> Device)> all)
{
    var sb = new StringBuilder();
    sb.AppendLine("| row | device ceiling (C threads, own msync each) | device p50 / p99 µs | service / device (median, spread) |");
    sb.AppendLine("|---|---:|---:|---:|");
    foreach (var (row, service, deviceSamples) in all)
    {
        var ratio = row.Ratios(service, deviceSamples); // PAGE unary rows: calls/s against writes/s
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {Stats.Median(deviceSamples.Select(s => s.CallsPerSecond)):0} writes/s | {Stats.Median(deviceSamples.Select(s => s.P(0.5))):0} / {Stats.Median(deviceSamples.Select(s => s.P(0.99))):0} | **{Stats.Median(ratio):0.00}** ({Stats.Spread(ratio, "0.00")}) |");
    }

    return sb.ToString();
}

string Table(List<(Row Row, List<Sample> Service, List<Sample> Sink, double Load)> all)
{
    var sb = new StringBuilder();
    sb.AppendLine("| row | service | sink | ratio (median, spread) | service p50 / p99 µs | sink p50 / p99 µs | server CPU s/GB service / sink | alloc B per payload B | load |");
    sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var (row, service, sinkSamples, load) in all)
    {
        var ratios = row.Ratios(service, sinkSamples);
        var alloc = row.Kind is RowKind.StreamWrite or RowKind.StreamRead
            ? $"{Stats.Median(service.Select(s => (double)s.Allocated / s.Bytes)):0.000} / {Stats.Median(sinkSamples.Select(s => (double)s.Allocated / s.Bytes)):0.000}"
            : "-";
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {row.Label} | {Stats.Median(service.Select(row.Value)):0} {row.Unit} | {Stats.Median(sinkSamples.Select(row.Value)):0} {row.Unit} | **{Stats.Median(ratios):0.00}** ({Stats.Spread(ratios, "0.00")}) | {Stats.Median(service.Select(s => s.P(0.5))):0} / {Stats.Median(service.Select(s => s.P(0.99))):0} | {Stats.Median(sinkSamples.Select(s => s.P(0.5))):0} / {Stats.Median(sinkSamples.Select(s => s.P(0.99))):0} | {Stats.Median(service.Select(s => s.CpuSecondsPerGB)):0.00} / {Stats.Median(sinkSamples.Select(s => s.CpuSecondsPerGB)):0.00} | {alloc} | {load:0.0} |");
    }

    return sb.ToString();
}

int IntArg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

string? StringArg(string name, string? fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
