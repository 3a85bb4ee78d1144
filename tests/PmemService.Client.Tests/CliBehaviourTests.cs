using System.Text.Json;
using System.Text.RegularExpressions;
using PmemCtl;

namespace PmemService.Client.Tests;

/// <summary>pmemctl behaving like the tools users know: put/get round trips, idempotent create, one usage error, Ctrl+C.</summary>
public sealed class CliBehaviourTests : IClassFixture<ServerFixture>
{
    private readonly PmemServer _server;

    public CliBehaviourTests(ServerFixture fixture) => _server = fixture.Server;

    private Task<CliRun> Run(params string[] args) => CliRun.RunAsync(["--address", _server.UnixAddress, .. args]);

    /// <summary>pmemctl's own build output (its deps.json differs from this test project's).</summary>
    internal static string PmemCtlDll()
    {
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var dll = Path.Combine(MetricsTests.RepoRoot(), "src", "pmemctl", "bin", baseDir.Parent!.Name, baseDir.Name, "pmemctl.dll");
        Assert.True(File.Exists(dll), dll);
        return dll;
    }

    private async Task<(int Code, ChildProcess Process)> Process(params string[] args) =>
        await ChildProcess.RunAsync(PmemCtlDll(), ["--address", _server.UnixAddress, .. args]);

    [Fact]
    public async Task Put_then_get_returns_exactly_the_file_checked_with_cmp()
    {
        var name = TestData.Name("rt");
        var input = Path.Combine(_server.Root, name + ".in");
        var output = Path.Combine(_server.Root, name + ".out");
        await File.WriteAllBytesAsync(input, TestData.Bytes((3 << 20) + 123, 5)); // not a page multiple
        (await Run("map", name, "--size", "8MiB", "--create")).AssertOk();

        var (code, put) = await Process("put", input, name);
        using (put)
        {
            Assert.True(code == 0, put.Stderr);
            Assert.Contains("content recorded", put.Stdout, StringComparison.Ordinal);
        }

        var stat = await Run("regions", "stat", name, "-o", "json");
        stat.AssertOk();
        using (var json = JsonDocument.Parse(stat.Out))
        {
            Assert.Equal((3 << 20) + 123, json.RootElement.GetProperty("contentLength").GetInt64());
            Assert.Equal($"0x{TestData.Crc64(await File.ReadAllBytesAsync(input)):x16}", json.RootElement.GetProperty("contentCrc64").GetString());
            Assert.Equal(8 << 20, json.RootElement.GetProperty("size").GetInt64());
        }

        Assert.Contains("content:", (await Run("regions", "stat", name)).Out, StringComparison.Ordinal);

        (code, var get) = await Process("get", name, output);
        using (get)
        {
            Assert.True(code == 0, get.Stderr);
            Assert.Contains("matches the recorded content", get.Stdout, StringComparison.Ordinal);
        }

        var (cmpCode, cmp) = await ChildProcess.RunAsync("cmp", [input, output]);
        using (cmp)
        {
            Assert.True(cmpCode == 0, cmp.Stdout + cmp.Stderr);
        }

        // The content survives a restart of the server (it is kept with the region file).
        await _server.StopAsync();
        await _server.StartAsync();
        (await Run("map", name)).AssertOk();
        File.Delete(output);
        (await Run("get", name, output)).AssertOk();
        Assert.Equal(new FileInfo(input).Length, new FileInfo(output).Length);

        // Written since: get refuses the stale content (exit 7) and removes its partial output; an explicit range still reads.
        (await Run("write", $"{name}@10", "--text", "changed")).AssertOk();
        File.Delete(output);
        var stale = await Run("get", name, output);
        Assert.Equal(ExitCodes.DataIntegrity, stale.Code);
        Assert.Contains("CHECKSUM_MISMATCH", stale.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        (await Run("get", $"{name}@0:{new FileInfo(input).Length}", output)).AssertOk();

        // A put at an offset clears the recorded content: get returns the whole region again.
        (await Run("put", input, $"{name}@4096")).AssertOk();
        using (var json = JsonDocument.Parse((await Run("regions", "stat", name, "-o", "json")).Out))
        {
            Assert.False(json.RootElement.TryGetProperty("contentLength", out _));
        }

        File.Delete(output);
        (await Run("get", name, output)).AssertOk();
        Assert.Equal(8 << 20, new FileInfo(output).Length);
    }

    [Fact]
    public async Task Map_if_not_mapped_and_create_do_not_pile_up_references()
    {
        var name = TestData.Name("idem");
        for (var i = 0; i < 3; i++)
        {
            (await Run("map", name, "--size", "64KiB", "--create", "--if-not-mapped")).AssertOk();
        }

        using (var json = JsonDocument.Parse((await Run("regions", "stat", name, "-o", "json")).Out))
        {
            Assert.Equal(1, json.RootElement.GetProperty("mapReferences").GetInt32());
        }

        var other = TestData.Name("create");
        var first = await Run("create", other, "--size", "64KiB");
        first.AssertOk();
        Assert.StartsWith($"created {other}", first.Out, StringComparison.Ordinal);
        var second = await Run("create", other, "--size", "64KiB", "-o", "json");
        second.AssertOk();
        using (var json = JsonDocument.Parse(second.Out))
        {
            Assert.False(json.RootElement.GetProperty("created").GetBoolean());
            Assert.Equal(0, json.RootElement.GetProperty("mapReferences").GetInt32());
            Assert.False(json.RootElement.GetProperty("mapped").GetBoolean());
        }

        Assert.Equal(ExitCodes.Conflict, (await Run("create", other, "--size", "128KiB")).Code); // REGION_SIZE_MISMATCH
    }

    [Fact]
    public async Task Errors_name_the_pmemctl_command_and_print_each_field_once()
    {
        var name = TestData.Name("nm");
        (await Run("create", name, "--size", "64KiB")).AssertOk();
        var notMapped = await Run("read", $"{name}@0:4");
        Assert.Equal(ExitCodes.Conflict, notMapped.Code);
        Assert.Equal($"error: REGION_NOT_MAPPED: region '{name}' is not mapped: run 'pmemctl map {name}' first (data commands need a mapping reference; it stays until 'pmemctl unmap {name}')",
            notMapped.Err.Trim());
        Assert.DoesNotContain("MapRegion", notMapped.Err, StringComparison.Ordinal);

        (await Run("map", name)).AssertOk();
        var outside = await Run("read", $"{name}@65530:100");
        Assert.Equal(ExitCodes.InvalidArgument, outside.Code);
        var line = outside.Err.Trim();
        // "message (field length)", not "message (length: message)".
        var message = Regex.Match(line, @"^error: RANGE_OUT_OF_BOUNDS: (.*?)( \(field [a-z_.]+\))?$");
        Assert.True(message.Success, line);
        Assert.Single(Regex.Matches(line, Regex.Escape(message.Groups[1].Value[..Math.Min(20, message.Groups[1].Value.Length)])));
    }

    [Fact]
    public async Task An_unknown_command_prints_one_usage_error()
    {
        var run = await CliRun.RunAsync(["frob"]);
        Assert.Equal(ExitCodes.Usage, run.Code);
        var lines = run.Err.Trim().Split('\n');
        var line = Assert.Single(lines);
        Assert.StartsWith("error: USAGE: ", line, StringComparison.Ordinal);
        Assert.Contains("frob", line, StringComparison.Ordinal);
        Assert.Empty(run.Out);

        var sub = await CliRun.RunAsync(["regions", "stat"]);
        Assert.Equal(ExitCodes.Usage, sub.Code);
        Assert.Single(sub.Err.Trim().Split('\n'));
        Assert.Contains("pmemctl regions stat --help", sub.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Final_progress_bar_shows_the_elapsed_time_and_json_crc_is_hex()
    {
        var name = TestData.Name("bar");
        var input = Path.Combine(_server.Root, name + ".in");
        await File.WriteAllBytesAsync(input, TestData.Bytes(1 << 20, 9));
        var put = await Run("put", input, name, "--create", "--progress");
        put.AssertOk();
        var last = put.Err.Split('\n', '\r').Last(l => l.Contains("100%", StringComparison.Ordinal));
        Assert.Matches(@"in \d+\.\d s", last);
        Assert.DoesNotContain("00:00:00", last, StringComparison.Ordinal);

        var json = await Run("put", input, name, "-o", "json");
        json.AssertOk();
        using var doc = JsonDocument.Parse(json.Out);
        Assert.Matches("^0x[0-9a-f]{16}$", doc.RootElement.GetProperty("crc64").GetString());
    }

    [Fact]
    public async Task Ctrl_C_during_put_stops_cleanly_and_prints_the_persisted_offset()
    {
        var name = TestData.Name("sigint");
        (await Run("map", name, "--size", "512MiB", "--create")).AssertOk();

        // Stdin that never ends: the upload runs until interrupted.
        using var put = ChildProcess.Start(PmemCtlDll(), ["--address", _server.UnixAddress, "put", "-", name, "--chunk-size", "64KiB"], redirectStdin: true);
        var writer = Task.Run(async () =>
        {
            var chunk = TestData.Bytes(1 << 16, 3);
            try
            {
                for (var i = 0; i < 4096 && !put.HasExited; i++) // at most 256 MiB
                {
                    await put.StandardInput.BaseStream.WriteAsync(chunk);
                    await put.StandardInput.BaseStream.FlushAsync();
                    if (i == 64)
                    {
                        put.Signal("INT"); // 4 MiB in: Ctrl+C
                    }
                }
            }
            catch (IOException)
            {
                // pmemctl exited and closed its stdin.
            }
        });

        var code = await put.WaitAsync(TimeSpan.FromSeconds(120));
        await writer;
        Assert.True(code == ExitCodes.Cancelled, $"exit {code}; stderr: {put.Stderr}");
        var match = Regex.Match(put.Stderr, @"^error: CANCELLED: interrupted: upload to '[^']+' stopped: (\d+) bytes persisted, region bytes \[0, (\d+)\) are durable; resume at offset (\d+)$", RegexOptions.Multiline);
        Assert.True(match.Success, put.Stderr);
        var persisted = long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(persisted > 0, put.Stderr);

        // What it reported is really there: the stdin bytes repeat one 64 KiB chunk.
        var chunk = TestData.Bytes(1 << 16, 3);
        var check = Math.Min(persisted, 1 << 20);
        var back = Path.Combine(_server.Root, name + ".back");
        (await Run("get", $"{name}@0:{check}", back)).AssertOk();
        var bytes = await File.ReadAllBytesAsync(back);
        for (var off = 0; off + chunk.Length <= bytes.Length; off += chunk.Length)
        {
            Assert.True(bytes.AsSpan(off, chunk.Length).SequenceEqual(chunk), $"mismatch at {off}");
        }
    }
}
