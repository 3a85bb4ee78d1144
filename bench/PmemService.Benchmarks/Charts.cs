using ScottPlot;

namespace PmemService.Benchmarks;

/// <summary>PNG charts (ScottPlot 5) for docs/benchmarks.md.</summary>
internal static class Charts
{
    public static void Write(string directory, int[] chunkSizes, Dictionary<string, double[]> chunkSeries, int[] concurrencies, Dictionary<string, double[]> callSeries, double load)
    {
        Directory.CreateDirectory(directory);

        var chunks = new Plot();
        var xs = chunkSizes.Select(c => Math.Log2(c / 1024.0)).ToArray();
        foreach (var (name, values) in chunkSeries)
        {
            var line = chunks.Add.Scatter(xs, values);
            line.LegendText = name;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }

        chunks.Axes.Bottom.SetTicks(xs, chunkSizes.Select(c => c >= 1 << 20 ? $"{c >> 20} MiB" : $"{c >> 10} KiB").ToArray());
        chunks.XLabel("chunk size (StreamWriteRegion, UDS)");
        chunks.YLabel("MB/s");
        chunks.Title($"StreamWriteRegion throughput vs chunk size (load avg {load:0.0})");
        chunks.Axes.SetLimitsY(0, chunkSeries.Values.SelectMany(v => v).Max() * 1.15);
        chunks.ShowLegend(Alignment.LowerRight);
        chunks.SavePng(Path.Combine(directory, "service-stream-write-chunks.png"), 800, 450);

        var calls = new Plot();
        var cx = concurrencies.Select(c => Math.Log2(c)).ToArray();
        foreach (var (name, values) in callSeries)
        {
            var line = calls.Add.Scatter(cx, values);
            line.LegendText = name;
            line.LineWidth = 2;
            line.MarkerSize = 7;
        }

        calls.Axes.Bottom.SetTicks(cx, concurrencies.Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        calls.XLabel("concurrent callers (WriteRegion 4 KiB, UDS)");
        calls.YLabel("calls/s");
        calls.Title($"WriteRegion 4 KiB calls/s vs concurrency (load avg {load:0.0})");
        calls.Axes.SetLimitsY(0, callSeries.Values.SelectMany(v => v).Max() * 1.15);
        calls.ShowLegend(Alignment.UpperLeft);
        calls.SavePng(Path.Combine(directory, "service-unary-concurrency.png"), 800, 450);
    }
}
