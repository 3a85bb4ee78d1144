using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.Options;
using PmemService.Contracts.V1;
using Serilog.Events;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>Restart, shutdown, cancellation, start-up refusal and configuration: each test owns its server.</summary>
public sealed class LifecycleTests
{
    private const int Chunk = 64 << 10;

    private static async Task WaitUntil(Func<Task<bool>> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>Sends header + <paramref name="chunks"/> chunks and waits until the last one is visible in the region.</summary>
    private static async Task<AsyncClientStreamingCall<StreamWriteRegionRequest, StreamWriteRegionResponse>> OpenStreamAsync(
        PmemTestServer server, string name, ulong offset, int chunks, CallOptions options = default)
    {
        var call = server.Uds.StreamWriteRegion(options);
        await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name, Offset = offset } });
        for (var i = 0; i < chunks; i++)
        {
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = ByteString.CopyFrom(Pattern(Chunk, i)) });
        }

        var last = Pattern(Chunk, chunks - 1);
        await WaitUntil(async () =>
        {
            var seen = await server.Tcp.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = offset + (ulong)((chunks - 1) * Chunk), Length = Chunk });
            return seen.Data.Span.SequenceEqual(last);
        }, "the server to copy the chunks");
        return call;
    }

    [Fact]
    public async Task Regions_and_their_data_survive_a_restart()
    {
        await using var server = await PmemTestServer.StartAsync();
        var name = UniqueName("restart");
        await CreateAsync(server.Uds, name, 1 << 20);
        var data = Pattern(300_000, 9);
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 12345, Data = ByteString.CopyFrom(data) });
        var deferred = Pattern(5000, 10);
        await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Offset = 900_000, Data = ByteString.CopyFrom(deferred), DeferPersist = true });

        await server.StopAsync();
        // The stop persisted and unmapped every mapping.
        Assert.NotEmpty(server.Logs.WithEventName("RegionUnmapped"));
        Assert.Single(server.Logs.WithEventName("ShutdownComplete"));
        // A crash during creation leaves a temp file: the next start removes it.
        var leftover = Path.Combine(server.PoolPath, ".creating-x-0123");
        await File.WriteAllBytesAsync(leftover, [1, 2, 3]);

        await server.StartAgainAsync();
        Assert.False(File.Exists(leftover));
        var info = (await server.Tcp.GetRegionAsync(new GetRegionRequest { Name = name })).Region;
        Assert.False(info.Mapped);
        Assert.Equal(1UL << 20, info.Size);
        Assert.Contains((await server.Tcp.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);

        var mapped = (await server.Uds.MapRegionAsync(new MapRegionRequest { Name = name, CreateIfMissing = true, Size = 1 << 20 })).Region;
        Assert.False(mapped.Created);
        Assert.Equal(data, (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 12345, Length = (ulong)data.Length })).Data.ToByteArray());
        Assert.Equal(deferred, (await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = 900_000, Length = 5000 })).Data.ToByteArray());
    }

    [Fact]
    public async Task Shutdown_ends_an_open_stream_with_unavailable_and_its_persisted_offset()
    {
        await using var server = await PmemTestServer.StartAsync();
        var name = UniqueName("shutdown");
        await CreateAsync(server.Uds, name, 4 << 20);
        const ulong offset = 4096;
        var call = await OpenStreamAsync(server, name, offset, chunks: 4);
        var readiness = new Health.HealthClient(server.TcpChannel);

        var stop = server.StopViaLifetimeAsync();
        var exception = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, exception.StatusCode);
        var status = exception.GetRpcStatus()!;
        var info = status.GetDetail<Google.Rpc.ErrorInfo>();
        Assert.Equal("SHUTTING_DOWN", info.Reason);
        var expected = (offset + (4 * Chunk)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(expected, info.Metadata["persisted_offset"]);
        Assert.Equal(expected, call.GetTrailers().GetValue("pmem-persisted-offset"));
        Assert.NotNull(status.GetDetail<Google.Rpc.RetryInfo>());
        await stop;
        call.Dispose();

        // Everything acknowledged as persisted is there after a restart.
        await server.StopAsync();
        await server.StartAgainAsync();
        await server.Uds.MapRegionAsync(new MapRegionRequest { Name = name });
        for (var i = 0; i < 4; i++)
        {
            var read = await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Offset = offset + (ulong)(i * Chunk), Length = Chunk });
            Assert.Equal(Pattern(Chunk, i), read.Data.ToByteArray());
        }
    }

    [Fact]
    public async Task Client_cancellation_mid_stream_persists_and_reports_the_offset()
    {
        await using var server = await PmemTestServer.StartAsync();
        var name = UniqueName("cancel");
        await CreateAsync(server.Uds, name, 4 << 20);
        using var cts = new CancellationTokenSource();
        var call = await OpenStreamAsync(server, name, 0, chunks: 3, new CallOptions(cancellationToken: cts.Token));
        cts.Cancel();
        var exception = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, exception.StatusCode);
        call.Dispose();

        // The client is gone, so the server reports the offset in its log (stable event) — and it is true.
        LogEvent? logged = null;
        await WaitUntil(() => Task.FromResult((logged = server.Logs.WithEventName("StreamWriteInterrupted").FirstOrDefault()) is not null), "the interruption log");
        Assert.Equal("\"CANCELLED\"", logged!.Properties["Reason"].ToString());
        Assert.Equal((3 * Chunk).ToString(System.Globalization.CultureInfo.InvariantCulture), logged.Properties["PersistedOffset"].ToString());
        var read = await server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 3 * Chunk });
        Assert.Equal(Enumerable.Range(0, 3).SelectMany(i => Pattern(Chunk, i)).ToArray(), read.Data.ToByteArray());
    }

    [Fact]
    public async Task Deadline_mid_stream_ends_with_deadline_exceeded_after_persisting()
    {
        await using var server = await PmemTestServer.StartAsync();
        var name = UniqueName("deadline");
        await CreateAsync(server.Uds, name, 4 << 20);
        var call = await OpenStreamAsync(server, name, 0, chunks: 2, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(2)));
        var exception = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, exception.StatusCode);
        call.Dispose();

        LogEvent? logged = null;
        await WaitUntil(() => Task.FromResult((logged = server.Logs.WithEventName("StreamWriteInterrupted").FirstOrDefault()) is not null), "the interruption log");
        Assert.Equal((2 * Chunk).ToString(System.Globalization.CultureInfo.InvariantCulture), logged!.Properties["PersistedOffset"].ToString());
    }

    [Fact]
    public async Task RequireDax_without_map_sync_refuses_to_start_and_says_why()
    {
        var root = PmemTestServer.NewRoot();
        try
        {
            var exception = await Assert.ThrowsAsync<InvalidOperationException>(() =>
                PmemTestServer.StartAsync(s => s["PmemService:RequireDax"] = "true", root));
            Assert.Contains("RequireDax", exception.Message, StringComparison.Ordinal);
            Assert.Contains("DAX", exception.Message, StringComparison.Ordinal);
            Assert.Contains("CACHE_LINE", exception.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task A_region_the_filesystem_cannot_allocate_is_resource_exhausted_and_leaves_nothing()
    {
        // 1 PiB: fallocate fails at once (ENOSPC on tmpfs, EFBIG elsewhere) instead of creating a sparse file.
        const long huge = 1L << 50;
        await using var server = await PmemTestServer.StartAsync(s =>
        {
            s["PmemService:MaxRegionSize"] = huge.ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["PmemService:MaxMappedBytes"] = huge.ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
        var (_, status, _) = await AssertError(async () => await server.Uds.MapRegionAsync(new MapRegionRequest { Name = "huge", Size = huge, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "POOL_SPACE_EXHAUSTED");
        AssertFieldViolation(status, "size");
        Assert.Equal([".pmem-service.lock"], Directory.EnumerateFileSystemEntries(server.PoolPath).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Draining_turns_readiness_not_serving_and_refuses_new_calls_with_unavailable()
    {
        await using var server = await PmemTestServer.StartAsync();
        var health = new Health.HealthClient(server.TcpChannel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "readiness" })).Status);
        await CreateAsync(server.Uds, "drain", 4096);

        // What ApplicationStopping does first.
        ((Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<PmemService.Server.Internal.RegionManager>(server.Services))).BeginShutdown();

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest { Service = "readiness" })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "" })).Status);
        var (_, status, _) = await AssertError(async () => await server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = "drain", Data = ByteString.CopyFrom(1) }),
            StatusCode.Unavailable, "SHUTTING_DOWN");
        Assert.NotNull(status.GetDetail<Google.Rpc.RetryInfo>());
        await AssertError(async () => await server.Uds.MapRegionAsync(new MapRegionRequest { Name = "drain2", Size = 4096, CreateIfMissing = true }),
            StatusCode.Unavailable, "SHUTTING_DOWN");
    }

    [Fact]
    public async Task A_second_service_on_the_same_pool_refuses_to_start()
    {
        await using var first = await PmemTestServer.StartAsync();
        var root = PmemTestServer.NewRoot();
        try
        {
            var exception = await Assert.ThrowsAsync<InvalidOperationException>(() =>
                PmemTestServer.StartAsync(s => s["PmemService:PoolPath"] = first.PoolPath, root));
            Assert.Contains("Another PmemService", exception.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }

        // The first one is unaffected.
        Assert.True((await CreateAsync(first.Uds, "still-mine", 4096)).Created);
    }

    [Theory]
    [InlineData("PmemService:TcpEndpoint", "nonsense", "TcpEndpoint")]
    [InlineData("PmemService:UnixSocketMode", "999", "UnixSocketMode")]
    [InlineData("PmemService:MaxRegionSize", "0", "MaxRegionSize")]
    [InlineData("PmemService:MaxReadChunkSize", "67108864", "MaxReadChunkSize")]
    public async Task Invalid_options_fail_validation_at_start(string key, string value, string expected)
    {
        var root = PmemTestServer.NewRoot();
        try
        {
            var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => PmemTestServer.StartAsync(s => s[key] = value, root));
            Assert.Contains(expected, exception.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task Unix_only_data_plane_and_stale_socket_removal()
    {
        var root = PmemTestServer.NewRoot();
        // A crashed server leaves its socket file behind.
        await File.WriteAllBytesAsync(Path.Combine(root, "pmem.sock"), []);
        await using var server = await PmemTestServer.StartAsync(s => s["PmemService:AllowDataPlaneOverTcp"] = "false", root);
        Assert.Single(server.Logs.WithEventName("StaleSocketRemoved"));

        var name = UniqueName("udsonly");
        await CreateAsync(server.Uds, name, 8192);
        await AssertError(async () => await server.Tcp.GetRegionAsync(new GetRegionRequest { Name = name }), StatusCode.PermissionDenied, "UNIX_SOCKET_REQUIRED");
        var health = await new Health.HealthClient(server.TcpChannel).CheckAsync(new HealthCheckRequest { Service = "readiness" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task Mapped_bytes_limit_is_resource_exhausted_and_frees_on_unmap()
    {
        await using var server = await PmemTestServer.StartAsync(s => s["PmemService:MaxMappedBytes"] = (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture));
        await CreateAsync(server.Uds, "first", 768 << 10);
        var (_, _, info) = await AssertError(async () => await server.Uds.MapRegionAsync(new MapRegionRequest { Name = "second", Size = 512 << 10, CreateIfMissing = true }),
            StatusCode.ResourceExhausted, "MAPPED_BYTES_LIMIT");
        Assert.Equal("786432", info.Metadata["mapped_bytes"]);
        Assert.False(File.Exists(Path.Combine(server.PoolPath, "second")));

        await server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = "first" });
        Assert.True((await CreateAsync(server.Uds, "second", 512 << 10)).Mapped);
    }

    [Fact]
    public async Task Health_subcommand_exits_0_when_serving_and_1_otherwise()
    {
        await using var server = await PmemTestServer.StartAsync();
        var exe = Path.Combine(AppContext.BaseDirectory, "PmemService.dll");
        Assert.True(File.Exists(exe), exe);

        var (code, output) = await RunAsync(exe, "health", "--address", $"http://127.0.0.1:{server.TcpPort}", "--service", "readiness");
        Assert.Equal(0, code);
        Assert.StartsWith("SERVING", output, StringComparison.Ordinal);

        (code, output) = await RunAsync(exe, "health", "--address", $"unix:{server.SocketPath}");
        Assert.Equal(0, code);

        (code, output) = await RunAsync(exe, "health", "--address", $"http://127.0.0.1:{server.TcpPort}", "--service", "nope");
        Assert.Equal(1, code);
        Assert.StartsWith("NOT SERVING", output, StringComparison.Ordinal);

        await server.StopAsync();
        (code, output) = await RunAsync(exe, "health", "--address", $"unix:{server.SocketPath}", "--timeout", "2");
        Assert.Equal(1, code);
        Assert.StartsWith("NOT SERVING", output, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output)> RunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, output.Trim());
    }
}
