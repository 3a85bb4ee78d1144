// Renders the charts at the top of docs/benchmarks.md from the paired benchmark's results.
//
//   dotnet run -c Release --project bench/Pmem2.Charts -- RESULTS OUTDIR
//
// RESULTS is the CSV that "paired ROUNDS results.csv" writes (size_bytes,op,medium,granularity,
// ours_ns,native_ns,ratio), or a Markdown file holding the table "paired" prints (docs/benchmarks.md
// itself). Writes OUTDIR/paired-ratio.png (ours/native against size, one line per flag set, one
// panel per medium and granularity) and OUTDIR/throughput.png (GiB/s against bytes per call, ours
// solid and native dashed, /dev/shm at CACHE_LINE and PAGE), plus OUTDIR/paired-results.csv when the
// input was Markdown.
using System.Globalization;
using System.Text.RegularExpressions;
using ScottPlot;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Pmem2.Charts RESULTS.csv|RESULTS.md OUTDIR");
    return 2;
}

var rows = args[0].EndsWith(".csv", StringComparison.OrdinalIgnoreCase) ? Results.ReadCsv(args[0]) : Results.ReadMarkdown(args[0]);
rows = rows.Where(r => r.SizeBytes > 0).ToList(); // the call-overhead row has no size
if (rows.Count == 0)
{
    Console.Error.WriteLine($"no paired rows in {args[0]}");
    return 1;
}

Directory.CreateDirectory(args[1]);
if (!args[0].EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
{
    Results.WriteCsv(rows, Path.Combine(args[1], "paired-results.csv"));
}

Charts.Ratio(rows, Path.Combine(args[1], "paired-ratio.png"));
Charts.Throughput(rows, Path.Combine(args[1], "throughput.png"));
Console.WriteLine($"{rows.Count} rows -> {Path.Combine(args[1], "paired-ratio.png")}, {Path.Combine(args[1], "throughput.png")}");
return 0;

internal sealed record Row(long SizeBytes, string Op, string Medium, string Granularity, double OursNs, double NativeNs, double Ratio);

internal static class Results
{
    public static List<Row> ReadCsv(string path) =>
        File.ReadLines(path).Skip(1).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split(',');
            return new Row(long.Parse(f[0], CultureInfo.InvariantCulture), f[1], f[2], f[3],
                double.Parse(f[4], CultureInfo.InvariantCulture), double.Parse(f[5], CultureInfo.InvariantCulture), double.Parse(f[6], CultureInfo.InvariantCulture));
        }).ToList();

    // | 256 B | MemcpyNtNoDrain | Shm | Page | 720.6 ns | 816.2 ns | **0.87** |
    private static readonly Regex s_row = new(
        @"^\| (?<size>\d+ (?:B|KiB|MiB)) \| (?<op>\w+) \| (?<medium>\w+) \| (?<gran>\w+) \| (?<ours>[\d.]+ (?:ns|µs|ms)) \| (?<native>[\d.]+ (?:ns|µs|ms)) \| \*\*(?<ratio>[\d.]+)\*\* \|$",
        RegexOptions.Compiled);

    public static List<Row> ReadMarkdown(string path) =>
        File.ReadLines(path).Select(l => s_row.Match(l.Trim())).Where(m => m.Success).Select(m => new Row(
            Size(m.Groups["size"].Value), m.Groups["op"].Value, m.Groups["medium"].Value, m.Groups["gran"].Value,
            Nanoseconds(m.Groups["ours"].Value), Nanoseconds(m.Groups["native"].Value),
            double.Parse(m.Groups["ratio"].Value, CultureInfo.InvariantCulture))).ToList();

    public static void WriteCsv(List<Row> rows, string path) =>
        File.WriteAllLines(path, ["size_bytes,op,medium,granularity,ours_ns,native_ns,ratio",
            .. rows.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.SizeBytes},{r.Op},{r.Medium},{r.Granularity},{r.OursNs:0.###},{r.NativeNs:0.###},{r.Ratio:0.####}"))]);

    private static long Size(string text)
    {
        var parts = text.Split(' ');
        var n = long.Parse(parts[0], CultureInfo.InvariantCulture);
        return parts[1] switch { "MiB" => n << 20, "KiB" => n << 10, _ => n };
    }

    private static double Nanoseconds(string text)
    {
        var parts = text.Split(' ');
        var v = double.Parse(parts[0], CultureInfo.InvariantCulture);
        return parts[1] switch { "ms" => v * 1e6, "µs" => v * 1e3, _ => v };
    }
}

internal static class Charts
{
    private static readonly string[] s_panels = ["Shm/CacheLine", "Shm/Page", "Disk/CacheLine", "Disk/Page"];

    public static void Ratio(List<Row> rows, string path)
    {
        var multiplot = new Multiplot();
        multiplot.AddPlots(s_panels.Length);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(2, 2);
        for (var i = 0; i < s_panels.Length; i++)
        {
            var (medium, gran) = Split(s_panels[i]);
            var plot = multiplot.GetPlot(i);
            var panel = rows.Where(r => r.Medium == medium && r.Granularity == gran).ToList();
            var palette = new ScottPlot.Palettes.Category10();
            var c = 0;
            foreach (var op in panel.Select(r => r.Op).Distinct())
            {
                var series = panel.Where(r => r.Op == op).OrderBy(r => r.SizeBytes).ToList();
                var line = plot.Add.Scatter(series.Select(r => Math.Log2(r.SizeBytes)).ToArray(), series.Select(r => r.Ratio).ToArray(), palette.GetColor(c++));
                line.LegendText = op;
                line.LineWidth = 2;
                line.MarkerSize = 6;
            }

            var parity = plot.Add.HorizontalLine(1.0, 1, Colors.Black, LinePattern.Dashed);
            parity.LegendText = "parity (1.0)";
            plot.Title($"{medium} ({(medium == "Shm" ? "tmpfs" : "ext4")}), {gran.ToUpperInvariant()}");
            plot.YLabel("ours / native (median of paired rounds)");
            plot.XLabel("bytes per call");
            SizeTicks(plot, panel);
            plot.Axes.SetLimitsY(Math.Min(0.8, panel.Min(r => r.Ratio) - 0.05), Math.Max(1.2, panel.Max(r => r.Ratio) + 0.05));
            plot.ShowLegend(Alignment.UpperRight);
        }

        multiplot.SavePng(path, 1400, 1000);
    }

    public static void Throughput(List<Row> rows, string path)
    {
        string[] panels = ["Shm/CacheLine", "Shm/Page"];
        var multiplot = new Multiplot();
        multiplot.AddPlots(panels.Length);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        for (var i = 0; i < panels.Length; i++)
        {
            var (medium, gran) = Split(panels[i]);
            var plot = multiplot.GetPlot(i);
            var panel = rows.Where(r => r.Medium == medium && r.Granularity == gran && r.Op != "Persist").ToList();
            var palette = new ScottPlot.Palettes.Category10();
            var c = 0;
            foreach (var op in panel.Select(r => r.Op).Distinct())
            {
                var series = panel.Where(r => r.Op == op).OrderBy(r => r.SizeBytes).ToList();
                var xs = series.Select(r => Math.Log2(r.SizeBytes)).ToArray();
                var color = palette.GetColor(c++);
                var ours = plot.Add.Scatter(xs, series.Select(r => GiBps(r.SizeBytes, r.OursNs)).ToArray(), color);
                ours.LegendText = op + " ours";
                ours.LineWidth = 2;
                var native = plot.Add.Scatter(xs, series.Select(r => GiBps(r.SizeBytes, r.NativeNs)).ToArray(), color);
                native.LegendText = op + " native";
                native.LinePattern = LinePattern.Dashed;
                native.MarkerShape = MarkerShape.OpenCircle;
            }

            plot.Title($"Throughput, {medium} (tmpfs), {gran.ToUpperInvariant()}{(gran == "Page" ? " (copy + msync)" : " (copy + CPU flush)")}");
            plot.YLabel("GiB/s (bytes per call / median time)");
            plot.XLabel("bytes per call");
            SizeTicks(plot, panel);
            plot.Axes.SetLimitsY(0, panel.Max(r => Math.Max(GiBps(r.SizeBytes, r.OursNs), GiBps(r.SizeBytes, r.NativeNs))) * 1.1);
            plot.ShowLegend(Alignment.UpperLeft);
        }

        multiplot.SavePng(path, 1400, 600);
    }

    private static double GiBps(long bytes, double ns) => bytes / (ns * 1e-9) / (1L << 30);

    private static (string Medium, string Gran) Split(string panel)
    {
        var parts = panel.Split('/');
        return (parts[0], parts[1]);
    }

    /// <summary>Log2 x axis with byte-size labels at the measured sizes.</summary>
    private static void SizeTicks(Plot plot, List<Row> rows)
    {
        var sizes = rows.Select(r => r.SizeBytes).Distinct().Order().ToArray();
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var size in sizes)
        {
            ticks.AddMajor(Math.Log2(size), size >= 1 << 20 ? $"{size >> 20} MiB" : size >= 1024 ? $"{size >> 10} KiB" : $"{size} B");
        }

        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Axes.SetLimitsX(Math.Log2(sizes[0]) - 0.5, Math.Log2(sizes[^1]) + 0.5);
    }
}
