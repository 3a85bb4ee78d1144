namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// Every test of this project maps files with both libraries and many of them change
/// PMEM2_FORCE_GRANULARITY, a process-wide variable read on every map (by both sides): they all run in
/// this one collection, which xunit never runs in parallel with anything else.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeCollection : ICollectionFixture<OracleFiles>
{
    public const string Name = "libpmem2 oracle (process environment)";
}
