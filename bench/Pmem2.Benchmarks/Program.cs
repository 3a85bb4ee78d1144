using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Pmem2.Benchmarks;

// BenchmarkSwitcher front-end. Examples:
//   dotnet run -c Release --project bench/Pmem2.Benchmarks -- --filter '*'
//   dotnet run -c Release --project bench/Pmem2.Benchmarks -- --filter '*CopyBenchmarks*'
//   dotnet run -c Release --project bench/Pmem2.Benchmarks -- --list flat
// Every benchmark compares our Pmem2 (Ours) with native libpmem2 (Native, the baseline) in the same
// process, on the same file, in the same run; the Ratio column is Ours / Native (lower is faster).
if (args.Length > 0 && args[0] == "table")
{
    return Table.Run(args);
}

if (args.Length > 0 && args[0] == "paired")
{
    return Paired.Run(args);
}

if (args.Length > 0 && args[0] == "paired-aa")
{
    return Paired.RunAa(args);
}

if (args.Length > 0 && args[0] == "paired-verdict")
{
    return PairedVerdict.Run(args);
}

if (args.Length > 0 && args[0] == "paired-fused")
{
    return Paired.RunFused(args);
}

if (args.Length > 0 && args[0] == "probe")
{
    return Probe.Run(args);
}

return BenchmarkSwitcher.FromAssembly(typeof(BenchConfig).Assembly).Run(args, BenchConfig.Create()) is null ? 1 : 0;

namespace Pmem2.Benchmarks
{
    /// <summary>A short in-process job: the whole matrix runs in minutes on a shared 2-core machine.</summary>
    internal static class BenchConfig
    {
        public static IConfig Create() =>
            ManualConfig.CreateEmpty()
                .AddJob(Job.Default
                    .WithToolchain(InProcessEmitToolchain.Instance)
                    .WithLaunchCount(1)
                    .WithWarmupCount(2)
                    .WithIterationCount(15)
                    .WithIterationTime(TimeInterval.FromMilliseconds(50))
                    .WithId("short-inproc"))
                .AddColumnProvider(DefaultColumnProviders.Instance)
                .AddColumn(StatisticColumn.Median, StatisticColumn.Min)
                .AddLogger(ConsoleLogger.Default)
                .AddExporter(MarkdownExporter.GitHub, CsvExporter.Default)
                .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Value))
                .WithOption(ConfigOptions.JoinSummary, false)
                .WithOrderer(new BenchmarkDotNet.Order.DefaultOrderer(BenchmarkDotNet.Order.SummaryOrderPolicy.Declared));
    }
}
