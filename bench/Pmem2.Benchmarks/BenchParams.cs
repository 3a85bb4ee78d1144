namespace Pmem2.Benchmarks;

/// <summary>
/// Optional narrowing of the parameter matrix for quick runs, through environment variables
/// (comma-separated): PMEM2_BENCH_SIZES (bytes), PMEM2_BENCH_OPS (CopyOp names), PMEM2_BENCH_MEDIA
/// (Shm, Disk), PMEM2_BENCH_GRANS (Page, CacheLine). Unset means the full matrix.
/// </summary>
internal static class BenchParams
{
    public static IEnumerable<int> Sizes(int[] all)
    {
        var text = Environment.GetEnvironmentVariable("PMEM2_BENCH_SIZES");
        if (string.IsNullOrWhiteSpace(text))
        {
            return all;
        }

        var wanted = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToHashSet();
        return all.Where(wanted.Contains);
    }

    public static IEnumerable<T> Filter<T>(string variable, T[] all)
        where T : struct, Enum
    {
        var text = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return all;
        }

        var wanted = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => Enum.Parse<T>(s, ignoreCase: true)).ToHashSet();
        return all.Where(wanted.Contains);
    }
}
