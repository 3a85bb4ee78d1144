using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>
/// Metrics as an operator sees them: a listener attached late, and the Prometheus scrape endpoint of a real server.
/// Not in parallel with other classes: OpenTelemetry's AddMeter("PmemService") subscribes to every meter of that
/// name in the process, so other test servers' writes would show up in this server's scrape (one host per
/// process in production).
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricsTests
{
    [Fact]
    public async Task Gauges_read_live_state_for_a_listener_attached_after_the_regions_were_mapped()
    {
        await using var server = await PmemServer.StartAsync();
        using var client = server.CreateClient();
        await client.MapRegionAsync("g1", 1 << 20, Granularity.Page, createIfMissing: true);
        await client.MapRegionAsync("g2", 3 << 20, Granularity.Page, createIfMissing: true);

        // Attached only now, like dotnet-counters or a restarted collector.
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var (bytes, regions) = Observe(factory);
        Assert.Equal(4L << 20, bytes);
        Assert.Equal(2L, regions);

        await client.UnmapRegionAsync("g1");
        (bytes, regions) = Observe(factory);
        Assert.Equal(3L << 20, bytes);
        Assert.Equal(1L, regions);
    }

    private static (long Bytes, long Regions) Observe(IMeterFactory factory)
    {
        long? bytes = null, regions = null;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Only this server's meter: other test servers run in the same process.
            if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name is "pmem.mapped.bytes" or "pmem.regions.active")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "pmem.mapped.bytes")
            {
                bytes = value;
            }
            else
            {
                regions = value;
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.True(bytes.HasValue && regions.HasValue, "the gauges were not observed");
        return (bytes!.Value, regions!.Value);
    }

    [Fact]
    public async Task Prometheus_endpoint_serves_every_series_the_Grafana_dashboard_uses()
    {
        await using var server = await PmemServer.StartAsync(new Dictionary<string, string?> { ["PmemService:MetricsEndpoint"] = "127.0.0.1:0" });
        Assert.NotNull(server.MetricsAddress);
        using var client = server.CreateClient();
        await client.MapRegionAsync("scraped", 1 << 20, Granularity.Page, createIfMissing: true);
        await client.WriteAsync("scraped", 0, new byte[4096]);
        await client.ReadAsync("scraped", 0, 100);
        await client.PersistAsync("scraped");
        await Assert.ThrowsAsync<PmemException>(() => client.GetRegionAsync("missing"));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var text = await http.GetStringAsync(new Uri(new Uri(server.MetricsAddress!), "/metrics"));

        Assert.Matches(new Regex(@"^pmem_mapped_bytes(\{[^}]*\})? 1048576(\.0)?\b", RegexOptions.Multiline), text);
        Assert.Matches(new Regex(@"^pmem_regions_active(\{[^}]*\})? 1\b", RegexOptions.Multiline), text);
        Assert.Matches(new Regex(@"^pmem_write_bytes_total\{[^}]*rpc_method=""WriteRegion""[^}]*\} 4096\b", RegexOptions.Multiline), text);
        Assert.Matches(new Regex(@"^pmem_errors_total\{[^}]*pmem_error_reason=""REGION_NOT_FOUND""[^}]*\} 1\b", RegexOptions.Multiline), text);
        Assert.Matches(new Regex(@"^pmem_persist_duration_seconds_bucket\{", RegexOptions.Multiline), text);

        // Every series the committed dashboard queries is in the scrape.
        var dashboard = Path.Combine(RepoRoot(), "deploy", "grafana", "pmem-service-dashboard.json");
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(dashboard));
        var series = json.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .SelectMany(t => Regex.Matches(t.GetProperty("expr").GetString()!, @"\b(pmem_[a-z0-9_]+)\s*\{").Select(m => m.Groups[1].Value))
            .Distinct().ToList();
        Assert.NotEmpty(series);
        Assert.All(series, s => Assert.Matches(new Regex($"^{s}[{{ ]", RegexOptions.Multiline), text));

        // The endpoint is only on the metrics listener; the gRPC listeners do not serve it.
        using var grpcPort = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = System.Net.HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await grpcPort.GetAsync(new Uri(new Uri(server.TcpAddress), "/metrics"));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, response.StatusCode);
    }

    internal static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PmemService.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root not found");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "metrics (alone)";
}
