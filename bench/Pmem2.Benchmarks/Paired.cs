using System.Diagnostics;
using System.Globalization;

namespace Pmem2.Benchmarks;

/// <summary>
/// `paired` mode: the CopyBenchmarks and PersistBenchmarks matrices measured as interleaved A/B
/// rounds (native, ours, ours, native, ...), each round a batch of calls lasting ~2 ms, the
/// ratio taken per round pair and then the median. On a machine shared with other work this is
/// far more robust than comparing two separately measured means, because both sides see the same
/// load at nearly the same moment. Prints Markdown. Usage: paired [rounds] [results.csv] [row filter ...]:
/// with a CSV path (an argument ending in .csv) it also writes every row there
/// (size_bytes,op,medium,granularity,ours_ns,native_ns,ratio), the input of bench/Pmem2.Charts; a row
/// filter is size:op:medium:granularity with * for any field and sizes without spaces, e.g.
/// <c>paired 24 64KiB:MemsetDefault:Shm:CacheLine 16MiB:*:Shm:*</c> (no filter: every row).
/// </summary>
internal static class Paired
{
    private static readonly List<string> s_csv = [];

    public static int Run(string[] args)
    {
        int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 24;
        var csvPath = args.Skip(2).FirstOrDefault(a => a.EndsWith(".csv", StringComparison.OrdinalIgnoreCase));
        s_filters = args.Skip(2).Where(a => !ReferenceEquals(a, csvPath)).Select(f => f.Split(':')).ToArray();
        // Process-wide warm-up: one throw-away row, so the first printed row is not measured while
        // shared code paths are still being tiered up.
        {
            var w = new CopyBenchmarks { Size = 4096, Op = CopyOp.MemcpyNtNoDrain, Medium = Medium.Shm, Granularity = Gran.Page };
            w.Setup();
            try
            {
                Row("-", "warm-up", Medium.Shm, Gran.Page, () => w.Native(), () => w.Ours(), rounds, print: false);
            }
            finally
            {
                w.Cleanup();
            }
        }

        Console.WriteLine("| Size | Op | Medium | Granularity | ours median | native median | paired ratio ours/native |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|");
        foreach (var size in CopyBenchmarks.Sizes)
        {
            foreach (var op in CopyBenchmarks.Ops)
            {
                foreach (var medium in CopyBenchmarks.Media)
                {
                    foreach (var gran in CopyBenchmarks.Grans)
                    {
                        if (!Selected(Label(size), op.ToString(), medium, gran))
                        {
                            continue;
                        }

                        var b = new CopyBenchmarks { Size = size, Op = op, Medium = medium, Granularity = gran };
                        b.Setup();
                        try
                        {
                            Row(Label(size), op.ToString(), medium, gran, () => b.Native(), () => b.Ours(), rounds);
                        }
                        finally
                        {
                            b.Cleanup();
                        }
                    }
                }
            }
        }

        foreach (var size in PersistBenchmarks.Sizes)
        {
            foreach (var medium in PersistBenchmarks.Media)
            {
                foreach (var gran in PersistBenchmarks.Grans)
                {
                    if (!Selected(Label(size), "Persist", medium, gran))
                    {
                        continue;
                    }

                    var b = new PersistBenchmarks { Size = size, Medium = medium, Granularity = gran };
                    b.Setup();
                    try
                    {
                        Row(Label(size), "Persist", medium, gran, () => { b.Native(); return 0; }, () => { b.Ours(); return 0; }, rounds);
                    }
                    finally
                    {
                        b.Cleanup();
                    }
                }
            }
        }

        if (s_filters.Length > 0)
        {
            // Filtered rows: still write the CSV (the usage promises it; it used to be skipped here).
            WriteCsv(csvPath);
            return 0;
        }

        var c = new CallOverheadBenchmarks();
        c.Setup();
        try
        {
            Row("-", "Drain no-op (call overhead)", Medium.Shm, Gran.Page, () => { c.NativeDrainNoop(); return 0; }, () => { c.OursDrainNoop(); return 0; }, rounds);
        }
        finally
        {
            c.Cleanup();
        }

        WriteCsv(csvPath);
        return 0;
    }

    private static void WriteCsv(string? csvPath)
    {
        if (csvPath is not null)
        {
            File.WriteAllLines(csvPath, ["size_bytes,op,medium,granularity,ours_ns,native_ns,ratio", .. s_csv]);
        }
    }

    private static string[][] s_filters = [];

    /// <summary>
    /// `paired-fused [rounds]`: our temporal copies with the fused copy + flush loop against the same
    /// copies through the managed loops (one flush call per 256 B), interleaved in one process, so
    /// the ratio (fused / managed) isolates that change from machine load and from native.
    /// </summary>
    public static int RunFused(string[] args)
    {
        int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 24;
        Console.WriteLine($"fused loop available: {Pmem2.Internal.Flush.FusedCopy.IsAvailable} ({Pmem2.Internal.Flush.FusedCopy.UnavailableReason ?? "ok"}), engine {Pmem2.Internal.Mem.MemOps.EngineName}");
        Console.WriteLine("| Size | Op | Medium | Granularity | fused median | managed median | paired ratio fused/managed |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|");
        foreach (var size in CopyBenchmarks.Sizes)
        {
            foreach (var op in new[] { CopyOp.MemcpyTemporal })
            {
                foreach (var medium in CopyBenchmarks.Media)
                {
                    var b = new CopyBenchmarks { Size = size, Op = op, Medium = medium, Granularity = Gran.CacheLine };
                    b.Setup();
                    try
                    {
                        Row(Label(size), op.ToString(), medium, Gran.CacheLine,
                            () => { Pmem2.Internal.Flush.FusedCopy.Enabled = false; return b.Ours(); },
                            () => { Pmem2.Internal.Flush.FusedCopy.Enabled = true; return b.Ours(); }, rounds);
                    }
                    finally
                    {
                        Pmem2.Internal.Flush.FusedCopy.Enabled = true;
                        b.Cleanup();
                    }
                }
            }
        }

        return 0;
    }

    private static bool Selected(string size, string op, Medium medium, Gran gran)
    {
        if (s_filters.Length == 0)
        {
            return true;
        }

        string[] fields = [size.Replace(" ", string.Empty, StringComparison.Ordinal), op, medium.ToString(), gran.ToString()];
        return s_filters.Any(f => f.Length == 4 && f.Zip(fields).All(p => p.First == "*" || string.Equals(p.First, p.Second, StringComparison.OrdinalIgnoreCase)));
    }

    private static void Row(string size, string op, Medium medium, Gran gran, Func<nint> native, Func<nint> ours, int rounds, bool print = true)
    {
        // Warm up long enough for tiered compilation to reach tier 1 (call counting plus the 100 ms
        // background delay; 150 ms was not enough for the first rows), then calibrate a ~2 ms batch.
        var warm = Stopwatch.StartNew();
        int calls = 0;
        while (warm.ElapsedMilliseconds < 700 || calls < 20)
        {
            native();
            ours();
            calls++;
        }

        double perCall = warm.Elapsed.TotalNanoseconds / (2.0 * calls);
        int reps = (int)Math.Clamp(2_000_000 / perCall, 1, 1_000_000);

        var o = new List<double>(rounds);
        var n = new List<double>(rounds);
        for (int r = 0; r < rounds; r++)
        {
            if ((r & 1) == 0)
            {
                n.Add(Time(native, reps));
                o.Add(Time(ours, reps));
            }
            else
            {
                o.Add(Time(ours, reps));
                n.Add(Time(native, reps));
            }
        }

        double ratio = Median(o.Zip(n, (a, b) => a / b).ToList());
        if (!print)
        {
            return;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {size} | {op} | {medium} | {gran} | {Fmt(Median(o))} | {Fmt(Median(n))} | **{ratio:F2}** |"));
        s_csv.Add(string.Create(CultureInfo.InvariantCulture,
            $"{Bytes(size)},{op},{medium},{gran},{Median(o):F1},{Median(n):F1},{ratio:F4}"));
    }

    private static double Time(Func<nint> f, int reps)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++)
        {
            f();
        }

        return sw.Elapsed.TotalNanoseconds / reps;
    }

    private static double Median(List<double> v)
    {
        var s = v.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[(s.Count / 2) - 1] + s[s.Count / 2]) / 2;
    }

    private static long Bytes(string label) => label switch
    {
        "-" => 0,
        _ when label.EndsWith(" MiB", StringComparison.Ordinal) => long.Parse(label[..^4], CultureInfo.InvariantCulture) << 20,
        _ when label.EndsWith(" KiB", StringComparison.Ordinal) => long.Parse(label[..^4], CultureInfo.InvariantCulture) << 10,
        _ => long.Parse(label[..^2], CultureInfo.InvariantCulture),
    };

    private static string Label(int n) => n >= 1 << 20 ? $"{n >> 20} MiB" : n >= 1024 ? $"{n >> 10} KiB" : $"{n} B";

    private static string Fmt(double ns) => ns switch
    {
        >= 1e6 => (ns / 1e6).ToString("F2", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (ns / 1e3).ToString("F2", CultureInfo.InvariantCulture) + " µs",
        _ => ns.ToString("F1", CultureInfo.InvariantCulture) + " ns",
    };
}
