using Pmem2.Oracle;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>
/// The native libpmem2 is a hard requirement of this project: every test calls <see cref="Ensure"/> first.
/// Without the library the tests fail (they never skip silently): CI installs it (.ci/run, apt package
/// libpmem2); locally, <c>apt-get install libpmem2</c>.
/// </summary>
internal static class NativeRequirement
{
    public static void Ensure()
    {
        var ci = Environment.GetEnvironmentVariable("CI");
        Assert.True(
            NativePmem2.IsAvailable,
            "The native oracle libpmem2.so.1 cannot be loaded (install it: apt-get install libpmem2). " +
            (string.Equals(ci, "true", StringComparison.OrdinalIgnoreCase)
                ? "CI=true: differential tests must run, so this is a failure."
                : "Differential tests need it; they fail rather than pass without checking anything."));
    }
}
