using System.Globalization;
using Xunit.Abstractions;

namespace PmemService.FaultTests;

/// <summary>
/// The SIGKILL crash loop in CI: at least 20 kills of the real service exe (pool on ext4 under /tmp),
/// 0 acknowledged bytes lost. PMEM_CRASHLOOP_KILLS / PMEM_CRASHLOOP_SECONDS / PMEM_CRASHLOOP_SEED
/// lengthen or replay it (bench/crashloop.sh).
/// </summary>
public sealed class CrashLoopTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SigkillLoopLosesNoAcknowledgedByte()
    {
        var kills = Env("PMEM_CRASHLOOP_KILLS", 20);
        var seconds = Env("PMEM_CRASHLOOP_SECONDS", 300); // a bound, not a target: ~40-100 s here
        var seed = Env("PMEM_CRASHLOOP_SEED", Random.Shared.Next());
        var root = TestSupport.NewTempDir("/tmp", "pmemcrash");
        var keep = false;
        try
        {
            var result = await CrashLoop.RunAsync(root, kills, TimeSpan.FromSeconds(seconds), seed, output.WriteLine);
            output.WriteLine($"crash loop: {result}");
            Console.WriteLine($"crash loop: {result}");
            keep = result.BytesLost != 0;
            Assert.True(result.Kills >= kills, $"only {result.Kills} kills within {seconds} s (machine too slow?): {result}");
            Assert.True(result.AcknowledgedWrites >= result.Kills, $"too few acknowledged writes to mean anything: {result}");
            Assert.Equal(0, result.BytesLost);
            Assert.Equal(result.BytesVerified, result.BytesVerifiedViaService);
        }
        finally
        {
            if (!keep)
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    private static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;
}
