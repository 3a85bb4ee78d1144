using System.Globalization;

namespace Pmem2.Benchmarks;

/// <summary>
/// `paired-verdict AA.csv PAIRED.csv`: joins the CSV of a `paired-aa` run with the CSV of a `paired`
/// run (same rounds) and prints, per row, the paired ratio with its sign-test interval next to the
/// A/A noise band of that row, and a verdict for every row whose ratio is above 1.00:
/// <list type="bullet">
/// <item>significant: the whole confidence interval of the paired median ratio is above 1.000
/// (one-sided sign test, p ≤ 0.011 at 24 rounds);</item>
/// <item>beyond A/A: the paired median ratio is above the A/A band of the row, the highest upper
/// CI end of its native/native and ours/ours medians, i.e. further from 1 than the harness puts a
/// function against itself on that row.</item>
/// </list>
/// </summary>
internal static class PairedVerdict
{
    public static int Run(string[] args)
    {
        if (args.Length < 3)
        {
            Console.Error.WriteLine("usage: paired-verdict AA.csv PAIRED.csv");
            return 2;
        }

        var aa = Read(args[1]).ToDictionary(r => Key(r), r => r);
        var paired = Read(args[2]);
        Console.WriteLine("| Size | Op | Medium | Granularity | paired ratio | CI | rounds ours slower | A/A native/native (CI) | A/A ours/ours (CI) | A/A band | verdict |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        int above = 0, significant = 0, beyond = 0, both = 0;
        foreach (var p in paired)
        {
            if (!aa.TryGetValue(Key(p), out var a))
            {
                continue;
            }

            double ratio = D(p, "ratio");
            double low = D(p, "ci_low");
            double high = D(p, "ci_high");
            double band = Math.Max(D(a, "nn_ci_high"), D(a, "oo_ci_high"));
            double bandLow = Math.Min(D(a, "nn_ci_low"), D(a, "oo_ci_low"));
            string verdict = "";
            if (Math.Round(ratio, 2) > 1.00)
            {
                above++;
                bool sig = low > 1;
                bool out_ = ratio > band;
                significant += sig ? 1 : 0;
                beyond += out_ ? 1 : 0;
                both += sig && out_ ? 1 : 0;
                verdict = (sig, out_) switch
                {
                    (true, true) => "**slower: significant and beyond A/A**",
                    (true, false) => "significant, within A/A band",
                    (false, true) => "not significant, beyond A/A band",
                    _ => "noise (not significant, within A/A)",
                };
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Size(p["size_bytes"])} | {p["op"]} | {p["medium"]} | {p["granularity"]} | **{ratio:F3}** | {low:F3}-{high:F3} | {p["rounds_slower"]}/{int.Parse(p["rounds_slower"], CultureInfo.InvariantCulture) + int.Parse(p["rounds_faster"], CultureInfo.InvariantCulture)} "
                + $"| {D(a, "nn_ratio"):F3} ({D(a, "nn_ci_low"):F3}-{D(a, "nn_ci_high"):F3}) | {D(a, "oo_ratio"):F3} ({D(a, "oo_ci_low"):F3}-{D(a, "oo_ci_high"):F3}) | {bandLow:F3}-{band:F3} | {verdict} |"));
        }

        Console.WriteLine();
        Console.WriteLine($"{paired.Count} rows; above 1.00 (at two decimals): {above}; of those significant: {significant}, beyond the A/A band: {beyond}, both: {both}.");
        return 0;
    }

    private static string Key(Dictionary<string, string> r) => $"{r["size_bytes"]}|{r["op"]}|{r["medium"]}|{r["granularity"]}";

    private static double D(Dictionary<string, string> r, string column) => double.Parse(r[column], CultureInfo.InvariantCulture);

    private static string Size(string bytes)
    {
        long n = long.Parse(bytes, CultureInfo.InvariantCulture);
        return n == 0 ? "-" : n >= 1 << 20 ? $"{n >> 20} MiB" : n >= 1024 ? $"{n >> 10} KiB" : $"{n} B";
    }

    private static List<Dictionary<string, string>> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        return lines.Skip(1).Where(l => l.Length > 0)
            .Select(l => header.Zip(l.Split(','), (h, v) => (h, v)).ToDictionary(x => x.h, x => x.v))
            .ToList();
    }
}
