using System.Globalization;
using ScottPlot;

/// <summary>One horizontal bar chart (ScottPlot 5) of the bulk-write medians, both granularities, for docs/benchmarks.md.</summary>
internal static class DirectLaneChart
{
    /// <param name="path">PNG to write.</param>
    /// <param name="lines">"row TAB median TAB min TAB max" in GB/s, as the children wrote them.</param>
    /// <param name="load">1-minute load average at the end of the run.</param>
    public static void Write(string path, string[] lines, string load)
    {
        var rows = lines.Select(l => l.Split('\t'))
            .Where(f => f.Length == 4 && !f[0].Contains("prefault (", StringComparison.Ordinal))
            .Select(f => (Label: f[0], Median: Parse(f[1]), Min: Parse(f[2]), Max: Parse(f[3])))
            .Reverse()
            .ToArray();
        var plot = new Plot();
        var bars = rows.Select((r, i) => new Bar
        {
            Position = i,
            Value = r.Median,
            Label = r.Median.ToString("0.00", CultureInfo.InvariantCulture),
            FillColor = r.Label.Contains("StreamWriteRegion", StringComparison.Ordinal) ? Colors.Gray
                : r.Label.Contains("in-process", StringComparison.Ordinal) ? Colors.SteelBlue : Colors.DarkOrange,
        }).ToArray();
        var plotted = plot.Add.Bars(bars);
        plotted.Horizontal = true;
        plotted.ValueLabelStyle.FontSize = 12;
        plot.Axes.Left.SetTicks(
            rows.Select((_, i) => (double)i).ToArray(),
            rows.Select(r => FormattableString.Invariant($"{r.Label} ({r.Min:0.0}-{r.Max:0.0})")).ToArray());
        plot.Axes.Margins(left: 0, right: 0.12);
        plot.XLabel("GB/s, median of interleaved reps (min-max in brackets); 1 GiB in 1 MiB pieces");
        plot.Title($"Direct lane vs StreamWriteRegion vs in-process Pmem2 (load avg {load})");
        plot.SavePng(path, 1100, 520);
    }

    private static double Parse(string text) => double.Parse(text, CultureInfo.InvariantCulture);
}
