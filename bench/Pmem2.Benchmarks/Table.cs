using System.Globalization;
using System.Text;

namespace Pmem2.Benchmarks;

/// <summary>
/// `table` mode: turns BenchmarkDotNet's CSV reports into the Markdown tables of docs/benchmarks.md
/// (one row per parameter set: ours, native, ratio ours/native of the medians and of the minimums).
/// Usage: table &lt;results directory&gt; [native call overhead in ns]
/// </summary>
internal static class Table
{
    public static int Run(string[] args)
    {
        var dir = args[1];
        var output = new StringBuilder();
        foreach (var file in Directory.GetFiles(dir, "*-report.csv").Order())
        {
            var lines = File.ReadAllLines(file);
            var header = ParseCsvLine(lines[0]);
            var rows = lines.Skip(1).Select(ParseCsvLine).ToList();
            int iMethod = header.IndexOf("Method");
            int iMedian = header.IndexOf("Median");
            int iMin = header.IndexOf("Min");
            string[] paramNames = ["Size", "Op", "Medium", "Granularity"];
            var paramIdx = paramNames.Select(p => (Name: p, Index: header.IndexOf(p))).Where(p => p.Index >= 0).ToList();

            output.AppendLine($"### {Path.GetFileName(file).Replace("Pmem2.Benchmarks.", string.Empty).Replace("-report.csv", string.Empty)}");
            output.AppendLine();
            output.Append("| ");
            foreach (var p in paramIdx)
            {
                output.Append(p.Name).Append(" | ");
            }

            output.AppendLine("ours median | native median | ratio (median) | ours min | native min | ratio (min) |");
            output.Append('|');
            foreach (var _ in paramIdx)
            {
                output.Append("---|");
            }

            output.AppendLine("---:|---:|---:|---:|---:|---:|");
            foreach (var group in rows.GroupBy(r => string.Join("|", paramIdx.Select(p => r[p.Index]))))
            {
                var list = group.ToList();
                var native = list.First(r => r[iMethod].StartsWith("Native", StringComparison.Ordinal));
                var ours = list.First(r => r[iMethod].StartsWith("Ours", StringComparison.Ordinal));
                double oMed = ParseTime(ours[iMedian]), nMed = ParseTime(native[iMedian]);
                double oMin = ParseTime(ours[iMin]), nMin = ParseTime(native[iMin]);
                output.Append("| ");
                foreach (var p in paramIdx)
                {
                    output.Append(Pretty(p.Name, ours[p.Index])).Append(" | ");
                }

                output.AppendLine(CultureInfo.InvariantCulture, $"{Fmt(oMed)} | {Fmt(nMed)} | **{Ratio(oMed, nMed)}** | {Fmt(oMin)} | {Fmt(nMin)} | {Ratio(oMin, nMin)} |");
            }

            output.AppendLine();
        }

        Console.Write(output.ToString());
        return 0;
    }

    private static string Ratio(double ours, double native) =>
        native > 0 ? (ours / native).ToString("F2", CultureInfo.InvariantCulture) : "n/a";

    private static string Pretty(string name, string value)
    {
        if (name == "Size" && int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
        {
            return n >= 1 << 20 ? $"{n >> 20} MiB" : n >= 1024 ? $"{n >> 10} KiB" : $"{n} B";
        }

        return value;
    }

    private static string Fmt(double ns) => ns switch
    {
        >= 1e6 => (ns / 1e6).ToString("F2", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (ns / 1e3).ToString("F2", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString("F1", CultureInfo.InvariantCulture) + " ns",
    };

    private static double ParseTime(string text)
    {
        var parts = text.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        double v = double.Parse(parts[0].Replace(",", string.Empty), CultureInfo.InvariantCulture);
        string unit = parts.Length > 1 ? parts[1] : "ns";
        return unit switch
        {
            "ns" => v,
            "us" or "μs" or "µs" => v * 1e3,
            "ms" => v * 1e6,
            "s" => v * 1e9,
            _ => throw new FormatException($"unknown unit in '{text}'"),
        };
    }

    private static List<string> ParseCsvLine(string line)
    {
        var result = new List<string>();
        var cur = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    cur.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    cur.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                result.Add(cur.ToString());
                cur.Clear();
            }
            else
            {
                cur.Append(c);
            }
        }

        result.Add(cur.ToString());
        return result;
    }
}
