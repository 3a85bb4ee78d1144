using System.Diagnostics;

namespace Pmem2.Benchmarks;

/// <summary>
/// `probe` mode: a plain Stopwatch loop, ours and native interleaved round by round, printing the
/// best and median round per side. For quick checks and for `perf record` (no BenchmarkDotNet
/// machinery in the profile). Usage: probe &lt;op&gt; &lt;size&gt; &lt;Shm|Disk&gt; &lt;Page|CacheLine&gt; [rounds] [side]
/// </summary>
internal static class Probe
{
    public static int Run(string[] args)
    {
        var op = Enum.Parse<CopyOp>(args[1], true);
        int size = int.Parse(args[2]);
        var medium = Enum.Parse<Medium>(args[3], true);
        var gran = Enum.Parse<Gran>(args[4], true);
        int rounds = args.Length > 5 ? int.Parse(args[5]) : 30;
        string side = args.Length > 6 ? args[6] : "both";

        var b = new CopyBenchmarks { Size = size, Op = op, Medium = medium, Granularity = gran };
        b.Setup();
        try
        {
            int reps = Math.Max(1, (int)(32L * 1024 * 1024 / size));
            var ours = new List<double>();
            var native = new List<double>();
            for (int r = 0; r < rounds; r++)
            {
                if (side != "ours")
                {
                    native.Add(Time(() => b.Native(), reps));
                }

                if (side != "native")
                {
                    ours.Add(Time(() => b.Ours(), reps));
                }
            }

            Report("native", native);
            Report("ours", ours);
            if (ours.Count > 0 && native.Count > 0)
            {
                Console.WriteLine($"ratio ours/native (median) = {Median(ours) / Median(native):F3}   paired median ratio = {Median(ours.Zip(native, (o, n) => o / n).ToList()):F3}   best ratio = {ours.Min() / native.Min():F3}");
            }
        }
        finally
        {
            b.Cleanup();
        }

        return 0;
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
        return s[s.Count / 2];
    }

    private static void Report(string name, List<double> v)
    {
        if (v.Count > 0)
        {
            Console.WriteLine($"{name,-7} best {v.Min(),12:F1} ns   median {Median(v),12:F1} ns");
        }
    }
}
