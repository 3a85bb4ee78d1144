using System.Diagnostics;
using System.Text.Json;
using PmemCtl;

namespace PmemService.Client.Tests;

/// <summary>pmemctl run in-process (PmemCtlApp.RunAsync) against a real server; one test runs the built binary.</summary>
public sealed class PmemCtlTests : IClassFixture<ServerFixture>
{
    private readonly PmemServer _server;

    public PmemCtlTests(ServerFixture fixture) => _server = fixture.Server;

    private Task<CliRun> Run(params string[] args) => CliRun.RunAsync(["--address", _server.UnixAddress, .. args]);

    [Fact]
    public async Task Map_stat_ls_unmap_rm_in_text_and_json()
    {
        var name = TestData.Name("cli");
        var map = await Run("map", name, "--size", "64KiB", "--granularity", "page", "--create");
        map.AssertOk();
        Assert.Contains($"created and mapped {name}", map.Out, StringComparison.Ordinal);
        Assert.Contains("65536 (64 KiB)", map.Out, StringComparison.Ordinal);

        var stat = await Run("regions", "stat", name, "-o", "json");
        stat.AssertOk();
        using (var json = JsonDocument.Parse(stat.Out))
        {
            Assert.Equal(name, json.RootElement.GetProperty("name").GetString());
            Assert.Equal(65536, json.RootElement.GetProperty("size").GetInt64());
            Assert.True(json.RootElement.GetProperty("mapped").GetBoolean());
            Assert.Equal(1, json.RootElement.GetProperty("mapReferences").GetInt32());
            Assert.Equal("page", json.RootElement.GetProperty("effectiveGranularity").GetString());
        }

        var ls = await Run("regions", "ls");
        ls.AssertOk();
        Assert.StartsWith("NAME", ls.Out, StringComparison.Ordinal);
        Assert.Contains(ls.Out.Split('\n'), line => line.StartsWith(name + " ", StringComparison.Ordinal) && line.Contains("64 KiB", StringComparison.Ordinal));

        var lsJson = await Run("regions", "ls", "--page-size", "1", "-o", "json");
        lsJson.AssertOk();
        using (var json = JsonDocument.Parse(lsJson.Out))
        {
            Assert.Contains(json.RootElement.EnumerateArray(), r => r.GetProperty("name").GetString() == name);
        }

        var unmap = await Run("unmap", name);
        unmap.AssertOk();
        Assert.Contains("0 reference(s) remain", unmap.Out, StringComparison.Ordinal);

        var rm = await Run("rm", name, "-o", "json");
        rm.AssertOk();
        Assert.Contains("\"deleted\": true", rm.Out, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.NotFound, (await Run("regions", "stat", name)).Code);
    }

    [Fact]
    public async Task Write_read_persist_in_every_format()
    {
        var name = TestData.Name("wr");
        (await Run("map", name, "--size", "8KiB", "--create")).AssertOk();

        var write = await Run("write", $"{name}@100", "--text", "hello");
        write.AssertOk();
        Assert.Equal($"wrote 5 bytes to {name}@100 (persisted)", write.Out.Trim());
        (await Run("write", $"{name}@0x200", "--hex", "deadbeef", "--defer-persist")).AssertOk();
        (await Run("write", $"{name}@1KiB", "--base64", "AQID")).AssertOk();

        Assert.Equal("hello", (await Run("read", $"{name}@100:5", "--format", "text")).Out.Trim());
        Assert.Equal("68656c6c6f", (await Run("read", $"{name}@100:5")).Out.Trim());
        Assert.Equal("aGVsbG8=", (await Run("read", $"{name}@100:5", "--format", "base64")).Out.Trim());
        Assert.Equal("deadbeef", (await Run("read", $"{name}@512:4")).Out.Trim());
        Assert.Equal("010203", (await Run("read", $"{name}@1024:3")).Out.Trim());

        var readJson = await Run("read", $"{name}@100:5", "-o", "json", "--format", "text");
        using (var json = JsonDocument.Parse(readJson.Out))
        {
            Assert.Equal("hello", json.RootElement.GetProperty("data").GetString());
            Assert.Equal(5, json.RootElement.GetProperty("length").GetInt32());
        }

        Assert.Equal($"persisted 4 bytes of {name} from offset 512", (await Run("persist", $"{name}@512:4")).Out.Trim());
        Assert.Equal($"persisted 8192 bytes of {name} from offset 0", (await Run("persist", name)).Out.Trim());
        (await Run("rm", name, "--force")).AssertOk();
    }

    /// <summary>The done-when at a test-sized scale: put a file, get it back byte-identical, with progress bars.</summary>
    [Fact]
    public async Task Put_and_get_64_MiB_are_byte_identical_with_progress()
    {
        const int size = 64 << 20;
        var name = TestData.Name("put");
        var input = Path.Combine(_server.Root, name + ".bin");
        var output = Path.Combine(_server.Root, name + ".back");
        var data = TestData.Bytes(size, 21);
        await File.WriteAllBytesAsync(input, data);
        var crc = $"0x{TestData.Crc64(data):x16}";

        var put = await Run("put", input, name, "--create", "--progress");
        put.AssertOk();
        Assert.Contains($"put {input} -> {name}@0: {size} bytes (64 MiB)", put.Out, StringComparison.Ordinal);
        Assert.Contains($"crc64 {crc}, persisted", put.Out, StringComparison.Ordinal);
        Assert.Contains("100%", put.Err, StringComparison.Ordinal);
        Assert.Contains($"put {name}", put.Err, StringComparison.Ordinal);

        var get = await Run("get", name, output, "--progress");
        get.AssertOk();
        Assert.Contains($"crc64 {crc}", get.Out, StringComparison.Ordinal);
        Assert.Contains("100%", get.Err, StringComparison.Ordinal);
        var back = await File.ReadAllBytesAsync(output);
        Assert.True(data.AsSpan().SequenceEqual(back));

        // A sub-range, as JSON.
        var part = await Run("get", $"{name}@1MiB:4096", output, "-o", "json");
        part.AssertOk();
        using (var json = JsonDocument.Parse(part.Out))
        {
            Assert.Equal(4096, json.RootElement.GetProperty("length").GetInt64());
            Assert.Equal($"0x{TestData.Crc64(data.AsSpan(1 << 20, 4096)):x16}", json.RootElement.GetProperty("crc64").GetString());
        }

        var partBack = await File.ReadAllBytesAsync(output);
        Assert.True(data.AsSpan(1 << 20, 4096).SequenceEqual(partBack));
        (await Run("rm", name, "--force")).AssertOk();
        File.Delete(input);
        File.Delete(output);
    }

    [Fact]
    public async Task Usage_errors_exit_2()
    {
        await AssertFails(ExitCodes.Usage, "USAGE", "frobnicate");
        await AssertFails(ExitCodes.Usage, "USAGE", "map", "x", "--size", "4Q");
        await AssertFails(ExitCodes.Usage, "USAGE", "read", "x@0");
        await AssertFails(ExitCodes.Usage, "USAGE", "write", "x@0");
        await AssertFails(ExitCodes.Usage, "USAGE", "write", "x@0", "--hex", "xyz");
        await AssertFails(ExitCodes.Usage, "USAGE", "regions", "ls", "-o", "xml");
        await AssertFails(ExitCodes.Usage, "USAGE", "put", "a-file");
        var bad = await CliRun.RunAsync(["--address", "ftp://nowhere:1", "regions", "ls"]);
        Assert.Equal(ExitCodes.Usage, bad.Code);
    }

    [Fact]
    public async Task Not_found_exits_3()
    {
        var stat = await AssertFails(ExitCodes.NotFound, "REGION_NOT_FOUND", "regions", "stat", "missing-region");
        Assert.Equal("error: REGION_NOT_FOUND: Region 'missing-region' does not exist.", stat.Err.Trim());
        await AssertFails(ExitCodes.NotFound, "FILE_NOT_FOUND", "put", Path.Combine(_server.Root, "no-such-file"), "x");
        await AssertFails(ExitCodes.NotFound, "SERVICE_UNKNOWN", "health", "--service", "no-such-service");
    }

    [Fact]
    public async Task Range_and_argument_errors_exit_4()
    {
        var name = TestData.Name("range");
        (await Run("map", name, "--size", "64KiB", "--create")).AssertOk();
        await AssertFails(ExitCodes.InvalidArgument, "RANGE_OUT_OF_BOUNDS", "read", $"{name}@60000:10000");
        await AssertFails(ExitCodes.InvalidArgument, "RANGE_OUT_OF_BOUNDS", "get", $"{name}@60000:10000", Path.Combine(_server.Root, "x.out"));
        await AssertFails(ExitCodes.InvalidArgument, "INVALID_REGION_NAME", "map", ".hidden", "--size", "4096", "--create");
        (await Run("rm", name, "--force")).AssertOk();
    }

    [Fact]
    public async Task Conflicts_exit_5()
    {
        var name = TestData.Name("conflict");
        (await Run("map", name, "--size", "64KiB", "--create")).AssertOk();
        await AssertFails(ExitCodes.Conflict, "REGION_IN_USE", "rm", name);
        await AssertFails(ExitCodes.Conflict, "REGION_SIZE_MISMATCH", "map", name, "--size", "8KiB");
        (await Run("unmap", name)).AssertOk();
        await AssertFails(ExitCodes.Conflict, "REGION_NOT_MAPPED", "write", $"{name}@0", "--text", "x");
        (await Run("rm", name)).AssertOk();
    }

    [Fact]
    public async Task Unreachable_server_exits_6()
    {
        var run = await CliRun.RunAsync(["--address", "unix://" + Path.Combine(_server.Root, "absent.sock"), "regions", "ls"]);
        Assert.Equal(ExitCodes.Unavailable, run.Code);
        Assert.StartsWith("error: UNAVAILABLE: cannot reach PmemService at unix://", run.Err, StringComparison.Ordinal);
        Assert.Contains("does not exist", run.Err, StringComparison.Ordinal);
        Assert.Single(run.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task Checksum_mismatch_exits_7()
    {
        var name = TestData.Name("crc");
        (await Run("map", name, "--size", "1MiB", "--create")).AssertOk();
        var input = Path.Combine(_server.Root, name + ".bin");
        await File.WriteAllBytesAsync(input, TestData.Bytes(1 << 20, 22));

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await PmemCtlApp.RunAsync(
            ["--address", _server.TcpAddress, "put", input, name],
            stdout,
            stderr,
            options => options.HttpHandler = new CorruptingHandler(flipAt: 500_000) { InnerHandler = new SocketsHttpHandler() });
        Assert.Equal(ExitCodes.DataIntegrity, code);
        Assert.StartsWith("error: CHECKSUM_MISMATCH: upload to", stderr.ToString(), StringComparison.Ordinal);
        (await Run("rm", name, "--force")).AssertOk();
    }

    [Fact]
    public async Task Resource_limits_exit_8()
    {
        await AssertFails(ExitCodes.ResourceExhausted, "REGION_SIZE_LIMIT", "map", TestData.Name("huge"), "--size", "2GiB", "--create");
    }

    [Fact]
    public async Task Permission_denied_exits_9()
    {
        await using var tcpLocked = await PmemServer.StartAsync(new Dictionary<string, string?> { ["PmemService:AllowDataPlaneOverTcp"] = "false" });
        var run = await CliRun.RunAsync(["--address", tcpLocked.TcpAddress, "regions", "ls"]);
        Assert.Equal(ExitCodes.PermissionDenied, run.Code);
        Assert.StartsWith("error: UNIX_SOCKET_REQUIRED: ", run.Err, StringComparison.Ordinal);
        // Health stays reachable over TCP.
        Assert.Equal(ExitCodes.Ok, (await CliRun.RunAsync(["--address", tcpLocked.TcpAddress, "health"])).Code);
    }

    [Fact]
    public async Task Interrupted_exits_130_and_local_io_failure_exits_1()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await PmemCtlApp.RunAsync(["--address", _server.UnixAddress, "regions", "ls"], stdout, stderr, cts.Token);
        Assert.Equal(ExitCodes.Cancelled, code);
        Assert.Equal("error: CANCELLED: interrupted", stderr.ToString().Trim());

        var name = TestData.Name("full");
        (await Run("map", name, "--size", "1MiB", "--create")).AssertOk();
        var full = await Run("get", name, "/dev/full");
        Assert.Equal(ExitCodes.Failure, full.Code);
        Assert.StartsWith("error: IO_ERROR: ", full.Err, StringComparison.Ordinal);
        // A failed download removes only files it created: the device stays (a regular file would hold 1 MiB).
        Assert.True(File.Exists("/dev/full") && new FileInfo("/dev/full").Length == 0);

        // A failed download into a new file leaves nothing behind.
        var partial = Path.Combine(_server.Root, name + ".partial");
        Assert.Equal(ExitCodes.InvalidArgument, (await Run("get", $"{name}@0:2MiB", partial)).Code);
        Assert.False(File.Exists(partial));
        (await Run("rm", name, "--force")).AssertOk();
    }

    [Fact]
    public async Task Health_and_bench_succeed()
    {
        var health = await Run("health", "-o", "json");
        health.AssertOk();
        Assert.Contains("\"status\": \"SERVING\"", health.Out, StringComparison.Ordinal);
        Assert.StartsWith("SERVING (readiness at unix://", (await Run("health", "--service", "readiness")).Out, StringComparison.Ordinal);

        var bench = await Run("bench", "--size", "2MiB", "--block", "4KiB", "--duration", "0.2", "--concurrency", "2", "--region", TestData.Name("bench"), "-o", "json");
        bench.AssertOk();
        using var json = JsonDocument.Parse(bench.Out);
        var rows = json.RootElement.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(6, rows.Count);
        Assert.All(rows, r => Assert.True(r.GetProperty("mibPerSecond").GetDouble() > 0, r.ToString()));
        Assert.Equal(2L << 20, rows[0].GetProperty("bytes").GetInt64());

        var table = await Run("bench", "--size", "1MiB", "--duration", "0.1");
        table.AssertOk();
        Assert.Contains("stream write (persisted)", table.Out, StringComparison.Ordinal);
        Assert.Contains("MiB/s", table.Out, StringComparison.Ordinal);
        // The scratch regions are gone.
        Assert.DoesNotContain("pmemctl-bench", (await Run("regions", "ls")).Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Built_binary_pipes_stdin_to_a_region_and_back_to_stdout()
    {
        // pmemctl's own output (its deps.json differs from this test project's).
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var configuration = baseDir.Parent!.Name;
        var root = baseDir;
        while (!File.Exists(Path.Combine(root.FullName, "PmemService.sln")))
        {
            root = root.Parent!;
        }

        var dll = Path.Combine(root.FullName, "src", "pmemctl", "bin", configuration, baseDir.Name, "pmemctl.dll");
        Assert.True(File.Exists(dll), dll);
        var name = TestData.Name("proc");
        (await Run("map", name, "--size", "256KiB", "--create")).AssertOk();
        var data = TestData.Bytes(200_000, 23);

        var put = await RunProcess(dll, ["--address", _server.UnixAddress, "put", "-", name], data);
        Assert.True(put.Code == 0, put.Err);
        Assert.Contains("200000 bytes", put.Out, StringComparison.Ordinal);
        Assert.Empty(put.Err);   // stderr is redirected: no progress bar

        var get = await RunProcess(dll, ["--address", _server.UnixAddress, "get", $"{name}@0:200000", "-"], null);
        Assert.True(get.Code == 0, get.Err);
        Assert.Equal(data, get.Bytes);

        var missing = await RunProcess(dll, ["--address", _server.UnixAddress, "regions", "stat", "missing-region"], null);
        Assert.Equal(ExitCodes.NotFound, missing.Code);
        Assert.Equal("error: REGION_NOT_FOUND: Region 'missing-region' does not exist.", missing.Err.Trim());
        (await Run("rm", name, "--force")).AssertOk();
    }

    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("0x1000", 4096L)]
    [InlineData("4KiB", 4096L)]
    [InlineData("4k", 4096L)]
    [InlineData("1MiB", 1L << 20)]
    [InlineData("1.5GiB", 3L << 29)]
    [InlineData("1GB", 1_000_000_000L)]
    [InlineData("64 MiB", 64L << 20)]
    [InlineData("10B", 10L)]
    public void Sizes_parse_suffixes(string text, long expected) => Assert.Equal(expected, Sizes.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("4Q")]
    [InlineData("KiB")]
    [InlineData("1.3B")]
    [InlineData("99999999999TiB")]
    public void Sizes_reject_garbage(string text) => Assert.Throws<UsageException>(() => Sizes.Parse(text));

    [Fact]
    public void Region_targets_parse()
    {
        Assert.Equal(new RegionTarget("a", 0, null, false), RegionTarget.Parse("a"));
        Assert.Equal(new RegionTarget("a", 4096, null, true), RegionTarget.Parse("a@4KiB"));
        Assert.Equal(new RegionTarget("a.b-c", 16, 32, true), RegionTarget.Parse("a.b-c@0x10:32"));
        Assert.Throws<UsageException>(() => RegionTarget.Parse("@1"));
        Assert.Throws<UsageException>(() => RegionTarget.Parse("a@1:2", allowLength: false));
        Assert.Throws<UsageException>(() => RegionTarget.Parse("a@1", requireLength: true));
    }

    private async Task<CliRun> AssertFails(int code, string reason, params string[] args)
    {
        var run = await Run(args);
        Assert.True(run.Code == code, $"exit {run.Code} (expected {code}); stderr: {run.Err}");
        Assert.StartsWith($"error: {reason}: ", run.Err, StringComparison.Ordinal);
        Assert.Empty(run.Out);
        return run;
    }

    private static async Task<(int Code, string Out, byte[] Bytes, string Err)> RunProcess(string dll, string[] args, byte[]? stdin)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = new MemoryStream();
        var copyOut = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var readErr = process.StandardError.ReadToEndAsync();
        try
        {
            if (stdin is not null)
            {
                await process.StandardInput.BaseStream.WriteAsync(stdin);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The process exited without reading everything; its exit code and stderr tell why.
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        await copyOut;
        var bytes = stdout.ToArray();
        return (process.ExitCode, System.Text.Encoding.UTF8.GetString(bytes), bytes, await readErr);
    }
}

/// <summary>One in-process pmemctl run.</summary>
public sealed record CliRun(int Code, string Out, string Err)
{
    public static async Task<CliRun> RunAsync(string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await PmemCtlApp.RunAsync(args, stdout, stderr);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    public void AssertOk() => Assert.True(Code == 0, $"exit {Code}; stderr: {Err}; stdout: {Out}");
}
