using System.Diagnostics;
using System.Globalization;

namespace Pmem2.Benchmarks;

/// <summary>
/// `paired` mode: the CopyBenchmarks and PersistBenchmarks matrices measured as interleaved A/B
/// rounds (native, ours, ours, native, ...), each round a batch of calls lasting ~2 ms, the
/// ratio taken per round pair and then the median. On a machine shared with other work this is
/// far more robust than comparing two separately measured means, because both sides see the same
/// load at nearly the same moment. Prints Markdown. Usage: paired [rounds] [results.csv] [--passes P] [row filter ...]:
/// with a CSV path (an argument ending in .csv) it also writes every row there
/// (size_bytes,op,medium,granularity,ours_ns,native_ns,ratio, the input of bench/Pmem2.Charts, then
/// ci_low,ci_high,rounds_slower,rounds_faster,p_slower,round_ratios); a row filter is
/// size:op:medium:granularity with * for any field and sizes without spaces, e.g.
/// <c>paired 24 64KiB:MemsetDefault:Shm:CacheLine 16MiB:*:Shm:*</c> (no filter: every row).
/// With --passes P (default 1) the matrix is traversed P times with rounds/P rounds per row each time,
/// on a fresh setup per pass, and the rounds of all passes are pooled (see <see cref="ForEachPass"/>).
/// Each row also gets the sign test of its per-round ratios (<see cref="PairedStats"/>): the
/// median's confidence interval and the one-sided p-value of "ours slower". `paired-aa` is the
/// same harness with both sides the same function, the calibration of how far from 1.00 a row's
/// ratio wanders by noise alone.
/// </summary>
internal static class Paired
{
    private static readonly List<string> s_csv = [];

    public static int Run(string[] args)
    {
        int rounds = ParseArgs(args, out var csvPath, out int passes);
        WarmUpProcess(rounds);

        // Per row: the per-round times of ours and native, pass after pass (with one pass, the old layout).
        var results = ForEachPass(rounds, passes, (native, ours, perPass, warmUp) => Measure(native, ours, perPass, warmUp));

        Console.WriteLine($"Sign test per row over the {rounds} per-round ratios ({Layout(rounds, passes)}): the median's distribution-free CI "
            + $"(exact coverage {Coverage(rounds):P1}), the rounds in which ours was slower, and the one-sided p-value of \"ours slower than native\".");
        Console.WriteLine();
        Console.WriteLine("| Size | Op | Medium | Granularity | ours median | native median | paired ratio ours/native | CI of the median ratio | rounds ours slower | p (ours slower) |"
            + (passes > 1 ? " pass medians |" : string.Empty));
        Console.WriteLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|" + (passes > 1 ? "---:|" : string.Empty));
        s_csv.Add("size_bytes,op,medium,granularity,ours_ns,native_ns,ratio,ci_low,ci_high,rounds_slower,rounds_faster,p_slower,round_ratios");
        int above = 0, below = 0;
        foreach (var (c, runs) in results)
        {
            var o = runs.SelectMany(r => r.B).ToList();
            var n = runs.SelectMany(r => r.A).ToList();
            var st = PairedStats.Summarize(o.Zip(n, (a, b) => a / b).ToList());
            above += st.Low > 1 ? 1 : 0;
            below += st.High < 1 ? 1 : 0;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Size} | {c.Op} | {c.Medium} | {c.Gran} | {Fmt(Median(o))} | {Fmt(Median(n))} | **{st.Median:F2}** | {Ci(st)} | {st.Above}/{st.Above + st.Below} | {P(st.PAbove)} |")
                + (passes > 1 ? $" {PassMedians(runs)} |" : string.Empty));
            s_csv.Add(string.Create(CultureInfo.InvariantCulture,
                $"{Bytes(c.Size)},{c.Op},{c.Medium},{c.Gran},{Median(o):F1},{Median(n):F1},{st.Median:F4},{st.Low:F4},{st.High:F4},{st.Above},{st.Below},{st.PAbove:G4},{Rounds(o, n)}"));
        }

        Console.WriteLine();
        Console.WriteLine($"{results.Count} rows: {above} with the whole CI above 1 (ours slower, significant), {below} with the whole CI below 1 (ours faster, significant).");
        WriteCsv(csvPath);
        return 0;
    }

    /// <summary>
    /// `paired-aa [rounds] [results.csv] [--passes P] [row filter ...]`: the A/A calibration of `paired`.
    /// Every row of `paired`, with the same warm-up, batch calibration, number of rounds, passes and
    /// alternating order (A, B, B, A, ...), but both sides the same function: first native against
    /// native, then ours against ours, on the same open maps. Any distance of such a ratio from 1.00
    /// is the harness's own noise (load, frequency, cache and page-cache state, order); its spread per
    /// row is the floor below which a paired ratio of that row says nothing. Same arguments as `paired`.
    /// </summary>
    public static int RunAa(string[] args)
    {
        int rounds = ParseArgs(args, out var csvPath, out int passes);
        WarmUpProcess(rounds);

        // Per row and pass: native against native, then ours against ours (each with the full warm-up rule).
        var results = ForEachPass(rounds, passes, (native, ours, perPass, warmUp) =>
        {
            var (n1, n2) = Measure(native, native, perPass, warmUp);
            var (o1, o2) = Measure(ours, ours, perPass, warmUp);
            return (n1.Concat(o1).ToList(), n2.Concat(o2).ToList());
        });

        Console.WriteLine($"A/A ({Layout(rounds, passes)}): median of the {rounds} per-round ratios A/B with A and B the same function, the median's distribution-free CI "
            + $"(exact coverage {Coverage(rounds):P1}) and the per-round interquartile range.");
        Console.WriteLine();
        Console.WriteLine("| Size | Op | Medium | Granularity | native/native | CI | round IQR | ours/ours | CI | round IQR |");
        Console.WriteLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
        s_csv.Add("size_bytes,op,medium,granularity,nn_ratio,nn_ci_low,nn_ci_high,nn_q1,nn_q3,nn_p_above,oo_ratio,oo_ci_low,oo_ci_high,oo_q1,oo_q3,oo_p_above,nn_round_ratios,oo_round_ratios");
        int nnOut = 0, ooOut = 0;
        double nnMax = 0, ooMax = 0;
        foreach (var (c, runs) in results)
        {
            // Each pass's lists hold its native/native rounds first, then its ours/ours rounds.
            int half = rounds / passes;
            var n1 = runs.SelectMany(r => r.B.Take(half)).ToList();
            var n2 = runs.SelectMany(r => r.A.Take(half)).ToList();
            var o1 = runs.SelectMany(r => r.B.Skip(half)).ToList();
            var o2 = runs.SelectMany(r => r.A.Skip(half)).ToList();
            var nn = PairedStats.Summarize(n1.Zip(n2, (a, b) => a / b).ToList());
            var oo = PairedStats.Summarize(o1.Zip(o2, (a, b) => a / b).ToList());
            nnOut += nn.Low > 1 || nn.High < 1 ? 1 : 0;
            ooOut += oo.Low > 1 || oo.High < 1 ? 1 : 0;
            nnMax = Math.Max(nnMax, Math.Abs(nn.Median - 1));
            ooMax = Math.Max(ooMax, Math.Abs(oo.Median - 1));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Size} | {c.Op} | {c.Medium} | {c.Gran} | **{nn.Median:F3}** | {Ci(nn)} | {nn.Q1:F3}-{nn.Q3:F3} | **{oo.Median:F3}** | {Ci(oo)} | {oo.Q1:F3}-{oo.Q3:F3} |"));
            s_csv.Add(string.Create(CultureInfo.InvariantCulture,
                $"{Bytes(c.Size)},{c.Op},{c.Medium},{c.Gran},{nn.Median:F4},{nn.Low:F4},{nn.High:F4},{nn.Q1:F4},{nn.Q3:F4},{nn.PAbove:G4},"
                + $"{oo.Median:F4},{oo.Low:F4},{oo.High:F4},{oo.Q1:F4},{oo.Q3:F4},{oo.PAbove:G4},{Rounds(n1, n2)},{Rounds(o1, o2)}"));
        }

        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{results.Count} rows. CI excluding 1.00 (a false 'difference' of a function from itself): native/native {nnOut}, ours/ours {ooOut} "
            + $"(expected by chance about {results.Count * (1 - Coverage(rounds)):F1} each). Largest |median - 1|: native/native {nnMax:F3}, ours/ours {ooMax:F3}."));
        WriteCsv(csvPath);
        return 0;
    }

    /// <summary>
    /// Runs <paramref name="measure"/> on every selected row, <paramref name="passes"/> times over the
    /// whole matrix, each time on a fresh setup (new file, new maps, new source buffer) with
    /// rounds / passes rounds: one pass is the classic layout; more passes spread a row's rounds over
    /// minutes and setups, so that neither a few seconds of unusual machine state nor one setup's
    /// page placement can decide a row. The first pass warms each row for 700 ms and at least 20 calls
    /// per side; later passes, whose code is already at tier 1, for 150 ms and at least 4 calls.
    /// </summary>
    private static List<(Case Case, List<(List<double> B, List<double> A)> Runs)> ForEachPass(
        int rounds, int passes, Func<Func<nint>, Func<nint>, int, (int Ms, int Calls), (List<double> B, List<double> A)> measure)
    {
        var cases = Cases().ToList();
        var runs = cases.Select(_ => new List<(List<double> B, List<double> A)>()).ToList();
        for (int p = 0; p < passes; p++)
        {
            for (int i = 0; i < cases.Count; i++)
            {
                var (native, ours, cleanup) = cases[i].Open();
                try
                {
                    runs[i].Add(measure(native, ours, rounds / passes, p == 0 ? (700, 20) : (150, 4)));
                }
                finally
                {
                    cleanup();
                }
            }
        }

        return cases.Zip(runs).ToList();
    }

    private static string Layout(int rounds, int passes) =>
        passes == 1 ? "one pass" : $"{passes} passes over the matrix of {rounds / passes} rounds each";

    private static string PassMedians(List<(List<double> B, List<double> A)> runs) =>
        string.Join(" ", runs.Select(r => Median(r.B.Zip(r.A, (x, y) => x / y).ToList()).ToString("F2", CultureInfo.InvariantCulture)));

    /// <summary>One row of the matrix: its labels and how to open its two functions (and close them).</summary>
    private sealed record Case(string Size, string Op, Medium Medium, Gran Gran, Func<(Func<nint> Native, Func<nint> Ours, Action Cleanup)> Open);

    /// <summary>The rows of `paired` in table order, filtered; the call-overhead row only when unfiltered.</summary>
    private static IEnumerable<Case> Cases()
    {
        foreach (var size in CopyBenchmarks.Sizes)
        {
            foreach (var op in CopyBenchmarks.Ops)
            {
                foreach (var medium in CopyBenchmarks.Media)
                {
                    foreach (var gran in CopyBenchmarks.Grans)
                    {
                        if (Selected(Label(size), op.ToString(), medium, gran))
                        {
                            yield return new Case(Label(size), op.ToString(), medium, gran, () =>
                            {
                                var b = new CopyBenchmarks { Size = size, Op = op, Medium = medium, Granularity = gran };
                                b.Setup();
                                return (() => b.Native(), () => b.Ours(), b.Cleanup);
                            });
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
                    if (Selected(Label(size), "Persist", medium, gran))
                    {
                        yield return new Case(Label(size), "Persist", medium, gran, () =>
                        {
                            var b = new PersistBenchmarks { Size = size, Medium = medium, Granularity = gran };
                            b.Setup();
                            return (() => { b.Native(); return 0; }, () => { b.Ours(); return 0; }, b.Cleanup);
                        });
                    }
                }
            }
        }

        if (s_filters.Length == 0)
        {
            yield return new Case("-", "Drain no-op (call overhead)", Medium.Shm, Gran.Page, () =>
            {
                var c = new CallOverheadBenchmarks();
                c.Setup();
                return (() => { c.NativeDrainNoop(); return 0; }, () => { c.OursDrainNoop(); return 0; }, c.Cleanup);
            });
        }
    }

    private static int ParseArgs(string[] args, out string? csvPath, out int passes)
    {
        var rest = args.Skip(1).ToList();
        passes = 1;
        int at = rest.IndexOf("--passes");
        if (at >= 0)
        {
            passes = int.Parse(rest[at + 1], CultureInfo.InvariantCulture);
            rest.RemoveRange(at, 2);
        }

        int rounds = rest.Count > 0 ? int.Parse(rest[0], CultureInfo.InvariantCulture) : 24;
        if (passes < 1 || rounds % passes != 0 || (rounds / passes) % 2 != 0)
        {
            throw new ArgumentException($"rounds ({rounds}) must be an even multiple of passes ({passes}): each pass alternates the order in pairs of rounds");
        }

        csvPath = rest.Skip(1).FirstOrDefault(a => a.EndsWith(".csv", StringComparison.OrdinalIgnoreCase));
        var csv = csvPath;
        s_filters = rest.Skip(1).Where(a => !ReferenceEquals(a, csv)).Select(f => f.Split(':')).ToArray();
        return rounds;
    }

    /// <summary>
    /// Process-wide warm-up: one throw-away row, so the first printed row is not measured while
    /// shared code paths are still being tiered up.
    /// </summary>
    private static void WarmUpProcess(int rounds)
    {
        var w = new CopyBenchmarks { Size = 4096, Op = CopyOp.MemcpyNtNoDrain, Medium = Medium.Shm, Granularity = Gran.Page };
        w.Setup();
        try
        {
            _ = Measure(() => w.Native(), () => w.Ours(), rounds, (700, 20));
        }
        finally
        {
            w.Cleanup();
        }
    }

    private static double Coverage(int rounds) => PairedStats.Summarize(Enumerable.Repeat(1.0, rounds).ToList()).Coverage;

    private static string Ci(MedianSummary s) => string.Create(CultureInfo.InvariantCulture, $"{s.Low:F3}-{s.High:F3}");

    private static string P(double p) => p < 0.001 ? "<0.001" : p.ToString("F3", CultureInfo.InvariantCulture);

    private static string Rounds(List<double> a, List<double> b) =>
        string.Join(';', a.Zip(b, (x, y) => (x / y).ToString("F4", CultureInfo.InvariantCulture)));

    private static void WriteCsv(string? csvPath)
    {
        if (csvPath is not null)
        {
            File.WriteAllLines(csvPath, s_csv);
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
                        var (fused, managed) = Measure(
                            () => { Pmem2.Internal.Flush.FusedCopy.Enabled = false; return b.Ours(); },
                            () => { Pmem2.Internal.Flush.FusedCopy.Enabled = true; return b.Ours(); }, rounds, (700, 20));
                        var st = PairedStats.Summarize(fused.Zip(managed, (x, y) => x / y).ToList());
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {Label(size)} | {op} | {medium} | {Gran.CacheLine} | {Fmt(Median(fused))} | {Fmt(Median(managed))} | **{st.Median:F2}** |"));
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

    /// <summary>
    /// One row's measurement: a warm-up long enough for tiered compilation to reach tier 1 (call
    /// counting plus the 100 ms background delay; 150 ms was not enough for the first rows: 700 ms and
    /// at least 20 calls per side, less in the later passes of a multi-pass run), a batch
    /// size calibrated to ~2 ms, then <paramref name="rounds"/> rounds of one batch per side in
    /// alternating order (A B, B A, A B, ...). Returns the per-call time of each side per round.
    /// </summary>
    private static (List<double> B, List<double> A) Measure(Func<nint> a, Func<nint> b, int rounds, (int Ms, int Calls) warmUp)
    {
        var warm = Stopwatch.StartNew();
        int calls = 0;
        while (warm.ElapsedMilliseconds < warmUp.Ms || calls < warmUp.Calls)
        {
            a();
            b();
            calls++;
        }

        double perCall = warm.Elapsed.TotalNanoseconds / (2.0 * calls);
        int reps = (int)Math.Clamp(2_000_000 / perCall, 1, 1_000_000);

        var tb = new List<double>(rounds);
        var ta = new List<double>(rounds);
        for (int r = 0; r < rounds; r++)
        {
            if ((r & 1) == 0)
            {
                ta.Add(Time(a, reps));
                tb.Add(Time(b, reps));
            }
            else
            {
                tb.Add(Time(b, reps));
                ta.Add(Time(a, reps));
            }
        }

        return (tb, ta);
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
