using System.Text.Json;

namespace PmemService.Client.Tests;

/// <summary>The real PmemService executable as a child process: Production logging and the health subcommand.</summary>
public sealed class ServiceExeTests
{
    private static string Exe => Path.Combine(AppContext.BaseDirectory, "PmemService.dll");

    private static string TempDir()
    {
        var dir = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), "pmemx-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static void AssertEveryLineIsJson(ChildProcess process)
    {
        var lines = process.StdoutLines.Concat(process.StderrLines).Where(l => l.Length > 0).ToList();
        Assert.NotEmpty(lines);
        foreach (var line in lines)
        {
            try
            {
                using var json = JsonDocument.Parse(line);
                Assert.Equal(JsonValueKind.Object, json.RootElement.ValueKind);
                Assert.True(json.RootElement.TryGetProperty("@t", out _), line);
            }
            catch (JsonException e)
            {
                Assert.Fail($"not a JSON line: {line} ({e.Message})");
            }
        }
    }

    [Fact]
    public async Task Production_fatal_start_up_error_is_one_json_line()
    {
        var dir = TempDir();
        try
        {
            var environment = new Dictionary<string, string?>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["PmemService__PoolPath"] = Path.Combine(dir, "pool"),
                ["PmemService__UnixSocketPath"] = Path.Combine(dir, "pmem.sock"),
                ["PmemService__TcpEndpoint"] = "not-an-endpoint",
            };
            var (code, process) = await ChildProcess.RunAsync(Exe, [], dir, environment);
            if (code == 143)
            {
                // 128 + SIGTERM from outside this test (seen once in a full run on the shared machine): the
                // output under test was cut short, so run it again once.
                process.Dispose();
                (code, process) = await ChildProcess.RunAsync(Exe, [], dir, environment);
            }

            using (process)
            {
                Assert.Equal(1, code);
                AssertEveryLineIsJson(process);
                var fatal = process.StdoutLines.Concat(process.StderrLines).Single(l => l.Contains("\"@l\":\"Fatal\"", StringComparison.Ordinal));
                using var json = JsonDocument.Parse(fatal);
                Assert.Contains("TcpEndpoint", json.RootElement.GetProperty("@m").GetString(), StringComparison.Ordinal);
                Assert.Contains("OptionsValidationException", json.RootElement.GetProperty("@x").GetString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Production_start_serve_and_sigterm_write_only_json_lines()
    {
        var dir = TempDir();
        try
        {
            var socket = Path.Combine(dir, "pmem.sock");
            using var process = ChildProcess.Start(Exe, [], dir, new Dictionary<string, string?>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["PmemService__PoolPath"] = Path.Combine(dir, "pool"),
                ["PmemService__UnixSocketPath"] = socket,
                ["PmemService__TcpEndpoint"] = "127.0.0.1:0",
            });
            Assert.True(await process.WaitForLineAsync(l => l.Contains("Application started", StringComparison.Ordinal) || l.Contains("\"@l\":\"Fatal\"", StringComparison.Ordinal), TimeSpan.FromSeconds(90)),
                $"no start-up line; stdout: {process.Stdout}; stderr: {process.Stderr}");

            using (var client = new PmemClient("unix://" + socket))
            {
                await client.MapRegionAsync("logged", 1 << 16, Contracts.V1.Granularity.Page, createIfMissing: true);
                await Assert.ThrowsAsync<PmemException>(() => client.GetRegionAsync("missing"));
            }

            process.Signal("TERM");
            Assert.Equal(0, await process.WaitAsync(TimeSpan.FromSeconds(60)));
            AssertEveryLineIsJson(process);
            Assert.Contains(process.StdoutLines, l => l.Contains("Pool probe", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Launch_profile_does_not_override_ASPNETCORE_ENVIRONMENT()
    {
        // dotnet run applies the profile's variables over the shell's: a profile that set
        // ASPNETCORE_ENVIRONMENT would turn "ASPNETCORE_ENVIRONMENT=Production dotnet run" into Development.
        var path = Path.Combine(MetricsTests.RepoRoot(), "src", "PmemService", "Properties", "launchSettings.json");
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        foreach (var profile in json.RootElement.GetProperty("profiles").EnumerateObject())
        {
            if (profile.Value.TryGetProperty("environmentVariables", out var env))
            {
                Assert.False(env.TryGetProperty("ASPNETCORE_ENVIRONMENT", out _), $"profile {profile.Name} sets ASPNETCORE_ENVIRONMENT");
            }
        }
    }

    [Fact]
    public async Task Health_subcommand_parses_with_System_CommandLine_and_probes_socket_and_tcp()
    {
        await using var server = await PmemServer.StartAsync();

        var (code, run) = await ChildProcess.RunAsync(Exe, ["health", "--address", server.UnixAddress, "--service", "readiness"]);
        using (run)
        {
            Assert.True(code == 0, run.Stdout + run.Stderr);
            Assert.StartsWith("SERVING: service readiness", run.Stdout, StringComparison.Ordinal);
        }

        (code, run) = await ChildProcess.RunAsync(Exe, ["health", "-a", server.TcpAddress, "--timeout", "5"]);
        using (run)
        {
            Assert.True(code == 0, run.Stdout + run.Stderr);
        }

        (code, run) = await ChildProcess.RunAsync(Exe, ["health", "--help"]);
        using (run)
        {
            Assert.Equal(0, code);
            Assert.Contains("--address", run.Stdout, StringComparison.Ordinal);
            Assert.Contains("--service", run.Stdout, StringComparison.Ordinal);
        }

        (code, run) = await ChildProcess.RunAsync(Exe, ["health", "--frob"]);
        using (run)
        {
            Assert.Equal(1, code);
            Assert.Contains("--frob", run.Stderr, StringComparison.Ordinal);
            Assert.Empty(run.Stdout);
        }

        (code, run) = await ChildProcess.RunAsync(Exe, ["health", "--timeout", "-3"]);
        using (run)
        {
            Assert.Equal(1, code);
            Assert.Contains("positive", run.Stderr, StringComparison.Ordinal);
        }

        (code, run) = await ChildProcess.RunAsync(Exe, ["health", "--address", "unix:" + Path.Combine(server.Root, "nope.sock"), "--timeout", "2"]);
        using (run)
        {
            Assert.Equal(1, code);
            Assert.StartsWith("NOT SERVING", run.Stdout, StringComparison.Ordinal);
        }
    }
}
