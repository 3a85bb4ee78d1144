using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics.X86;
using Pmem2.NativeTests.Infrastructure;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// Issue 3's differential part: the ported libpmem2 mem tests (pmem2_memcpy, pmem2_memmove, pmem2_memset,
/// pmem2_movnt, pmem2_movnt_align) for every flag set, run through native libpmem2 on one file and
/// through ours on another file with identical contents, at PAGE and forced CACHE_LINE and BYTE; the
/// touched bytes are compared after every case and the whole files (pread) at the end.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class MemDifferentialTests
{
    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public MemDifferentialTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    /// <summary>
    /// Directory of the mem files: tmpfs when there is one. A PAGE-granularity copy msyncs its range
    /// (0.6 ms per call on this ext4 disk, 4 us on tmpfs), and every case runs at PAGE; the bytes compared
    /// are the same either way. <see cref="PortedMemTestsMatchNativeAtPageGranularityOnDisk"/> covers ext4.
    /// </summary>
    internal static string MemDirectory(OracleFiles files)
    {
        if (Directory.Exists("/dev/shm"))
        {
            var dir = Path.Combine("/dev/shm", Path.GetFileName(files.Directory));
            Directory.CreateDirectory(dir);
            return dir;
        }

        return files.Directory;
    }

    [Fact]
    public void MemOperationsMatchNativeAtPageCacheLineAndByteGranularity()
    {
        var dir = MemDirectory(_files);
        try
        {
            var result = MemDifferential.Run(dir, portedOnly: false, MemMode.All);
            Report(_output, result, minimumOperations: 30_000);
        }
        finally
        {
            if (dir != _files.Directory)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void PortedMemTestsMatchNativeAtPageGranularityOnDisk()
    {
        var result = MemDifferential.Run(_files.Directory, portedOnly: true, [MemMode.Page], includeRaw: false);
        Report(_output, result, minimumOperations: 450);
    }

    internal static void Report(ITestOutputHelper output, MemResult result, int minimumOperations)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ours engine {result.OursEngine}; modes {string.Join(", ", result.Modes)}: {result.Cases} cases, {result.Operations} operations, {result.Checks} window checks, {result.FileBytesCompared} file bytes compared; {result.Mismatches.Count} mismatches, {result.OracleDisagreements.Count} native-vs-model disagreements"));
        foreach (var m in result.Mismatches.Take(40))
        {
            output.WriteLine("MISMATCH " + m);
        }

        foreach (var d in result.OracleDisagreements.Take(20))
        {
            output.WriteLine("NATIVE-VS-MODEL " + d);
        }

        Assert.True(result.OracleDisagreements.Count == 0,
            $"native libpmem2 disagrees with the model in {result.OracleDisagreements.Count} places (test bug?):\n  " + string.Join("\n  ", result.OracleDisagreements.Take(20)));
        Assert.True(result.Mismatches.Count == 0,
            $"ours differs from native libpmem2 in {result.Mismatches.Count} places (engine {result.OursEngine}):\n  " + string.Join("\n  ", result.Mismatches.Take(40)));
        Assert.True(result.Operations >= minimumOperations, $"only {result.Operations} operations ran (expected at least {minimumOperations})");
    }
}

/// <summary>
/// The mem differential once per copy engine. Both libraries choose their engine once per process from
/// PMEM_NO_MOVNT, PMEM_NO_GENERIC_MEMCPY, PMEM_AVX, PMEM_AVX512F, PMEM_WC_WORKAROUND and
/// PMEM_MOVNT_THRESHOLD, so each engine runs in a child process (this assembly's own Main) started with
/// those variables: native and ours then use the corresponding engine.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class MemEngineTests
{
    private static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(3);

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public MemEngineTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    public static TheoryData<string> EngineEnvironments() =>
    [
        "PMEM_WC_WORKAROUND=1",
        "PMEM_AVX512F=0",
        "PMEM_AVX512F=0;PMEM_AVX=0",
        "PMEM_AVX512F=0;PMEM_AVX=0;PMEM_WC_WORKAROUND=1",
        "PMEM_NO_MOVNT=1",
        "PMEM_NO_MOVNT=1;PMEM_NO_GENERIC_MEMCPY=1",
        "PMEM_MOVNT_THRESHOLD=0",
        "PMEM_MOVNT_THRESHOLD=99999",
    ];

    [Theory]
    [MemberData(nameof(EngineEnvironments))]
    public async Task MemOperationsMatchNativeWithEngine(string environment)
    {
        var vars = environment.Split(';').Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        var expectedEngine = ExpectedEngine(vars);
        var dir = MemDifferentialTests.MemDirectory(_files);
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(typeof(Program).Assembly.Location);
        psi.ArgumentList.Add("mem-differential");
        psi.ArgumentList.Add(dir);
        foreach (var name in new[] { "PMEM_NO_MOVNT", "PMEM_NO_GENERIC_MEMCPY", "PMEM_AVX", "PMEM_AVX512F", "PMEM_WC_WORKAROUND", "PMEM_MOVNT_THRESHOLD", "PMEM_MOVDIR64B", ForceGranularity.Variable })
        {
            psi.Environment.Remove(name);
        }

        foreach (var kv in vars)
        {
            psi.Environment[kv.Key] = kv.Value;
        }

        string stdout;
        string stderr;
        int exitCode;
        using (var child = Process.Start(psi)!)
        {
            var outTask = child.StandardOutput.ReadToEndAsync();
            var errTask = child.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(ChildTimeout);
            try
            {
                await child.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                child.Kill(entireProcessTree: true);
                Assert.Fail($"mem differential child ({environment}) did not finish within {ChildTimeout}");
            }

            stdout = await outTask;
            stderr = await errTask;
            exitCode = child.ExitCode;
        }

        Assert.True(exitCode == 0, $"child ({environment}) exited {exitCode}\n{stdout}\n{stderr}");
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string Value(string key) => lines.FirstOrDefault(l => l.StartsWith(key + " ", StringComparison.Ordinal))?[(key.Length + 1)..] ?? string.Empty;
        var mismatches = lines.Where(l => l.StartsWith("MISMATCH ", StringComparison.Ordinal)).ToList();
        var disagreements = lines.Where(l => l.StartsWith("DISAGREE ", StringComparison.Ordinal)).ToList();
        _output.WriteLine($"{environment}: ours engine {Value("ENGINE")} (expected {expectedEngine}); {Value("CASES")} cases, {Value("OPERATIONS")} operations, {Value("CHECKS")} checks, {Value("FILEBYTES")} file bytes; {mismatches.Count} mismatches, {disagreements.Count} native-vs-model disagreements");
        foreach (var l in mismatches.Concat(disagreements).Take(40))
        {
            _output.WriteLine(l);
        }

        Assert.Equal(expectedEngine, Value("ENGINE"));
        Assert.True(disagreements.Count == 0, $"{environment}: native disagrees with the model:\n" + string.Join("\n", disagreements.Take(20)));
        Assert.True(mismatches.Count == 0, $"{environment}: {mismatches.Count} mismatches between ours ({Value("ENGINE")}) and native:\n" + string.Join("\n", mismatches.Take(40)));
        Assert.True(int.Parse(Value("OPERATIONS"), CultureInfo.InvariantCulture) >= 30_000, stdout);
    }

    /// <summary>The engine both libraries pick for these variables on this CPU (x86_64/init.c order).</summary>
    private static string ExpectedEngine(Dictionary<string, string> vars)
    {
        if (vars.GetValueOrDefault("PMEM_NO_MOVNT") == "1")
        {
            return vars.TryGetValue("PMEM_NO_GENERIC_MEMCPY", out var g) && g != "0" ? "libc" : "generic";
        }

        if (Avx512F.IsSupported && vars.GetValueOrDefault("PMEM_AVX512F") != "0")
        {
            return "avx512f";
        }

        return Avx.IsSupported && vars.GetValueOrDefault("PMEM_AVX") != "0" ? "avx" : "sse2";
    }

    /// <summary>The dotnet host running this test (DOTNET_HOST_PATH, the current process, or PATH).</summary>
    private static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        return "dotnet";
    }
}
