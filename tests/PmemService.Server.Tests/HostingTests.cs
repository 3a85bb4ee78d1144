using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;

namespace PmemService.Server.Tests;

/// <summary>Health, reflection, metrics and logging of a shared real server.</summary>
public sealed class HostingTests : IClassFixture<SharedServerFixture>
{
    private readonly PmemTestServer _server;

    public HostingTests(SharedServerFixture fixture) => _server = fixture.Server;

    [Theory]
    [InlineData("")]
    [InlineData("readiness")]
    public async Task Health_is_serving_on_both_transports(string service)
    {
        foreach (var channel in new[] { _server.UdsChannel, _server.TcpChannel })
        {
            var response = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = service });
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
        }

        var unknown = await Assert.ThrowsAsync<RpcException>(async () => await new Health.HealthClient(_server.TcpChannel).CheckAsync(new HealthCheckRequest { Service = "nope" }));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Reflection_v1_and_v1alpha_list_the_services()
    {
        using (var v1 = new ServerReflection.ServerReflectionClient(_server.TcpChannel).ServerReflectionInfo())
        {
            await v1.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = string.Empty });
            await v1.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "pmem.v1.PmemService" });
            await v1.RequestStream.CompleteAsync();
            Assert.True(await v1.ResponseStream.MoveNext(CancellationToken.None));
            var names = v1.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
            Assert.Contains("pmem.v1.PmemService", names);
            Assert.Contains("grpc.health.v1.Health", names);
            Assert.True(await v1.ResponseStream.MoveNext(CancellationToken.None));
            Assert.NotEmpty(v1.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto);
        }

        using var alpha = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(_server.UdsChannel).ServerReflectionInfo();
        await alpha.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = string.Empty });
        await alpha.RequestStream.CompleteAsync();
        Assert.True(await alpha.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Contains(alpha.ResponseStream.Current.ListServicesResponse.Service, s => s.Name == "pmem.v1.PmemService");
    }

    [Fact]
    public async Task Metrics_count_bytes_and_persist_durations()
    {
        var meterFactory = _server.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var written = new MetricCollector<long>(meterFactory, "PmemService", "pmem.write.bytes");
        using var read = new MetricCollector<long>(meterFactory, "PmemService", "pmem.read.bytes");
        using var persist = new MetricCollector<double>(meterFactory, "PmemService", "pmem.persist.duration");
        using var mapped = new MetricCollector<long>(meterFactory, "PmemService", "pmem.mapped.bytes");

        var name = UniqueName("metrics");
        await CreateAsync(_server.Uds, name, 65536);
        await _server.Uds.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFrom(new byte[1234]) });
        await _server.Uds.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 777 });
        await _server.Uds.PersistRegionAsync(new PersistRegionRequest { Name = name });
        mapped.RecordObservableInstruments(); // an observable gauge: it reports the live total (other tests may map too)
        Assert.Contains(mapped.GetMeasurementSnapshot(), m => m.Value >= 65536);
        await _server.Uds.UnmapRegionAsync(new UnmapRegionRequest { Name = name });

        // Other tests of this class may run at the same time: look for our own measurements.
        Assert.Contains(written.GetMeasurementSnapshot(), m => m.Value == 1234 && Equals(m.Tags["rpc.method"], "WriteRegion"));
        Assert.Contains(read.GetMeasurementSnapshot(), m => m.Value == 777);
        Assert.Contains(persist.GetMeasurementSnapshot(), m => Equals(m.Tags["pmem.operation"], "persist") && Equals(m.Tags["pmem.granularity"], "PAGE") && m.Value > 0);
    }

    [Fact]
    public void Startup_logs_engine_and_the_no_dax_warning_once()
    {
        Assert.Single(_server.Logs.WithEventName("Pmem2Engine"));
        var warning = Assert.Single(_server.Logs.WithEventName("NoDax"));
        Assert.Equal(Serilog.Events.LogEventLevel.Warning, warning.Level);
        Assert.Contains("PAGE granularity", warning.RenderMessage(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_log_reports_the_grpc_status_and_keeps_probes_at_verbose()
    {
        var name = UniqueName("reqlog");
        await Assert.ThrowsAsync<RpcException>(async () => await _server.Tcp.GetRegionAsync(new GetRegionRequest { Name = name }));
        await new Health.HealthClient(_server.TcpChannel).CheckAsync(new HealthCheckRequest());
        var atomics = UniqueName("reqlog-cas");
        await _server.Tcp.MapRegionAsync(new MapRegionRequest { Name = atomics, Size = 4096, CreateIfMissing = true });
        await _server.Tcp.CompareAndSwapAsync(new CompareAndSwapRequest { Name = atomics, Offset = 0, Expected = 0, Desired = 1 });

        Serilog.Events.LogEvent? Find(string path, string status) => _server.Logs.Events.FirstOrDefault(e =>
            e.Properties.TryGetValue("RequestPath", out var p) && p.ToString() == $"\"{path}\""
            && e.Properties.TryGetValue("GrpcStatus", out var s) && s.ToString() == $"\"{status}\"");

        // The request log is written when the response completes, just after the client sees it.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while ((Find("/pmem.v1.PmemService/GetRegion", "5") is null || Find("/grpc.health.v1.Health/Check", "0") is null
                || Find("/pmem.v1.PmemService/CompareAndSwap", "0") is null) && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(20);
        }

        var failed = Find("/pmem.v1.PmemService/GetRegion", "5"); // NOT_FOUND, from the trailers
        Assert.True(failed is not null, string.Join("\n", _server.Logs.Events.Where(e => e.Properties.ContainsKey("RequestPath")).Select(e => e.Level + " " + e.RenderMessage())));
        Assert.Equal(Serilog.Events.LogEventLevel.Information, failed.Level);
        Assert.Equal("\"tcp\"", failed.Properties["Transport"].ToString());
        var probe = Find("/grpc.health.v1.Health/Check", "0");
        Assert.NotNull(probe);
        Assert.Equal(Serilog.Events.LogEventLevel.Verbose, probe.Level);
        // A successful data-plane call (here an issue 14 atomic) is Debug: not written at the default level.
        var cas = Find("/pmem.v1.PmemService/CompareAndSwap", "0");
        Assert.NotNull(cas);
        Assert.Equal(Serilog.Events.LogEventLevel.Debug, cas.Level);
    }

    [Fact]
    public async Task Socket_has_the_configured_mode()
    {
        Assert.Equal((UnixFileMode)Convert.ToInt32("660", 8), File.GetUnixFileMode(_server.SocketPath));
        await Task.CompletedTask;
    }
}
