using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PmemService.Client;
using Spectre.Console;

namespace PmemCtl;

internal sealed partial class CommandTree
{
    private Command BuildBenchCommand()
    {
        var size = new Option<string>("--size") { Description = "Region size and bytes streamed per direction", DefaultValueFactory = _ => "64MiB" };
        var block = new Option<string>("--block") { Description = "Bytes per unary write/read/persist", DefaultValueFactory = _ => "4KiB" };
        var duration = new Option<double>("--duration") { Description = "Seconds per unary phase (each phase is also capped at 100000 operations)", DefaultValueFactory = _ => 1.0 };
        var concurrency = new Option<int>("--concurrency") { Description = "Concurrent calls in unary phases", DefaultValueFactory = _ => 1 };
        var region = new Option<string?>("--region") { Description = "Name of the scratch region [default: pmemctl-bench-<pid>]" };
        var granularity = new Option<string?>("--granularity", "-g") { Description = "Granularity of the scratch region: byte, cache-line or page" };
        var keep = new Option<bool>("--keep") { Description = "Keep the scratch region (default: unmap and delete it)" };
        var chunk = ChunkSizeOption();
        var bench = new Command("bench", "Short bounded throughput run: stream write/read and unary write/read/persist on a scratch region")
        {
            size, block, duration, concurrency, region, granularity, keep, chunk,
        };
        SetHandler(bench, async (ctx, pr) =>
        {
            var totalBytes = Sizes.Parse(pr.GetValue(size)!, "size");
            var blockBytes = Sizes.Parse(pr.GetValue(block)!, "block");
            var seconds = pr.GetValue(duration);
            var workers = pr.GetValue(concurrency);
            if (totalBytes is < 4096 or > (16L << 30))
            {
                throw new UsageException("--size must be between 4KiB and 16GiB");
            }

            if (blockBytes < 1 || blockBytes > Math.Min(totalBytes, 1 << 20))
            {
                throw new UsageException("--block must be between 1 B and min(--size, 1MiB)");
            }

            if (seconds is <= 0 or > 60)
            {
                throw new UsageException("--duration must be in (0, 60] seconds");
            }

            if (workers is < 1 or > 64)
            {
                throw new UsageException("--concurrency must be between 1 and 64");
            }

            var name = pr.GetValue(region) ?? $"pmemctl-bench-{Environment.ProcessId}";
            var g = CliContext.ParseGranularity(pr.GetValue(granularity));
            var client = ctx.Client;
            var ct = ctx.CancellationToken;
            var results = new List<BenchRow>();

            var info = await client.MapRegionAsync(name, totalBytes, g, createIfMissing: true, ct).ConfigureAwait(false);
            try
            {
                var payload = GC.AllocateUninitializedArray<byte>((int)Math.Min(totalBytes, int.MaxValue - 64));
                new Random(42).NextBytes(payload);

                // Stream write: the whole region, from memory.
                var sw = Stopwatch.StartNew();
                long streamed = 0;
                while (streamed < totalBytes)
                {
                    var n = (int)Math.Min(payload.Length, totalBytes - streamed);
                    using var ms = new MemoryStream(payload, 0, n, writable: false);
                    await client.UploadAsync(ms, name, streamed, null, ct).ConfigureAwait(false);
                    streamed += n;
                }

                results.Add(new BenchRow("stream write (persisted)", client.Options.ChunkSize, 1, totalBytes, sw.Elapsed, []));

                // Stream read: the whole region, discarded.
                sw.Restart();
                await client.DownloadAsync(name, Stream.Null, 0, totalBytes, null, ct).ConfigureAwait(false);
                results.Add(new BenchRow("stream read", client.Options.ChunkSize, 1, totalBytes, sw.Elapsed, []));

                var block32 = (int)blockBytes;
                var slots = totalBytes / blockBytes;
                var data = payload.AsMemory(0, block32);
                results.Add(await RunUnaryPhaseAsync("write (persisted)", block32, seconds, workers, ct,
                    async i => await client.WriteAsync(name, i % slots * blockBytes, data, false, ct).ConfigureAwait(false)).ConfigureAwait(false));
                results.Add(await RunUnaryPhaseAsync("read", block32, seconds, workers, ct,
                    async i => await client.ReadAsync(name, i % slots * blockBytes, block32, ct).ConfigureAwait(false)).ConfigureAwait(false));
                results.Add(await RunUnaryPhaseAsync("write (deferred) + persist", block32, seconds, workers, ct,
                    async i =>
                    {
                        var offset = i % slots * blockBytes;
                        await client.WriteAsync(name, offset, data, true, ct).ConfigureAwait(false);
                        await client.PersistAsync(name, offset, blockBytes, ct).ConfigureAwait(false);
                    }).ConfigureAwait(false));
                results.Add(await RunUnaryPhaseAsync("persist", block32, seconds, workers, ct,
                    async i => await client.PersistAsync(name, i % slots * blockBytes, blockBytes, ct).ConfigureAwait(false)).ConfigureAwait(false));
            }
            finally
            {
                if (!pr.GetValue(keep))
                {
                    try
                    {
                        await client.DeleteRegionAsync(name, force: true, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (PmemException ex)
                    {
                        await ctx.Err.WriteLineAsync($"warning: could not delete scratch region '{name}': {ex.ReasonOrCode}: {ex.Message}").ConfigureAwait(false);
                    }
                }
            }

            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    address = client.Endpoint.ToString(),
                    region = name,
                    size = totalBytes,
                    granularity = CliContext.GranularityName(info.EffectiveGranularity),
                    mapSync = info.MapSync,
                    concurrency = workers,
                    results = results.Select(r => new
                    {
                        operation = r.Operation,
                        block = r.Block,
                        ops = r.Ops,
                        bytes = r.Bytes,
                        seconds = Math.Round(r.Elapsed.TotalSeconds, 4),
                        mibPerSecond = Math.Round(r.MiBPerSecond, 1),
                        opsPerSecond = Math.Round(r.OpsPerSecond),
                        meanMicroseconds = r.MeanMicroseconds is { } m ? Math.Round(m, 1) : (double?)null,
                        p99Microseconds = r.P99Microseconds is { } p ? Math.Round(p, 1) : (double?)null,
                    }),
                });
                return ExitCodes.Ok;
            }

            var console = ctx.CreateStdoutConsole();
            var table = new Table { Border = TableBorder.Rounded };
            console.WriteLine(PmemCtlApp.Invariant(
                $"pmemctl bench: {ctx.Client.Endpoint}, region {name} ({Sizes.Format(totalBytes)}, granularity {CliContext.GranularityName(info.EffectiveGranularity)}{(info.MapSync ? ", MAP_SYNC" : string.Empty)}), concurrency {workers}"));
            table.AddColumn("operation");
            foreach (var column in new[] { "block", "ops", "bytes", "seconds", "MiB/s", "ops/s", "mean µs", "p99 µs" })
            {
                table.AddColumn(new TableColumn(column).RightAligned());
            }

            foreach (var r in results)
            {
                table.AddRow(
                    Markup.Escape(r.Operation),
                    Sizes.Format(r.Block),
                    r.Ops.ToString("N0", CultureInfo.InvariantCulture),
                    Sizes.Format(r.Bytes),
                    r.Elapsed.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture),
                    r.MiBPerSecond.ToString("0.0", CultureInfo.InvariantCulture),
                    r.OpsPerSecond.ToString("N0", CultureInfo.InvariantCulture),
                    r.MeanMicroseconds?.ToString("0.0", CultureInfo.InvariantCulture) ?? "-",
                    r.P99Microseconds?.ToString("0.0", CultureInfo.InvariantCulture) ?? "-");
            }

            console.Write(table);
            return ExitCodes.Ok;
        }, chunk);
        return bench;
    }

    private const int MaxOpsPerPhase = 100_000;

    /// <summary>Runs <paramref name="workers"/> loops of <paramref name="op"/> until the duration or the op cap is reached.</summary>
    private static async Task<BenchRow> RunUnaryPhaseAsync(
        string operation,
        int block,
        double seconds,
        int workers,
        CancellationToken cancellationToken,
        Func<long, Task> op)
    {
        // Warm-up: one call, so connection setup does not count.
        await op(0).ConfigureAwait(false);

        long next = -1;
        var stopAt = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var latencies = new List<long>[workers];
        var sw = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, workers).Select(async w =>
        {
            var mine = latencies[w] = new List<long>(1024);
            while (!cancellationToken.IsCancellationRequested && Stopwatch.GetTimestamp() < stopAt)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= MaxOpsPerPhase)
                {
                    break;
                }

                var start = Stopwatch.GetTimestamp();
                await op(i).ConfigureAwait(false);
                mine.Add(Stopwatch.GetTimestamp() - start);
            }
        }).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
        sw.Stop();
        cancellationToken.ThrowIfCancellationRequested();

        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new BenchRow(operation, block, all.Length, (long)all.Length * block, sw.Elapsed, all);
    }

    private sealed record BenchRow(string Operation, long Block, long Ops, long Bytes, TimeSpan Elapsed, long[] SortedLatencyTicks)
    {
        public double MiBPerSecond => Elapsed > TimeSpan.Zero ? Bytes / Elapsed.TotalSeconds / (1024 * 1024) : 0;

        public double OpsPerSecond => Elapsed > TimeSpan.Zero ? Ops / Elapsed.TotalSeconds : 0;

        public double? MeanMicroseconds => SortedLatencyTicks.Length == 0
            ? null
            : SortedLatencyTicks.Average() * 1e6 / Stopwatch.Frequency;

        public double? P99Microseconds => SortedLatencyTicks.Length == 0
            ? null
            : SortedLatencyTicks[Math.Min(SortedLatencyTicks.Length - 1, (int)(SortedLatencyTicks.Length * 0.99))] * 1e6 / Stopwatch.Frequency;
    }
}
