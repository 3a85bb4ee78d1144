using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace PmemService.Server.Internal;

/// <summary>
/// The Prometheus scrape endpoint (<c>GET /metrics</c>, OpenTelemetry.Exporter.Prometheus.AspNetCore) on
/// its own HTTP/1.1 listener (<see cref="PmemServiceOptions.MetricsEndpoint"/>). The gRPC listeners speak
/// HTTP/2 with prior knowledge only, which Prometheus does not; and /metrics answers only on the metrics
/// listener (connections are tagged by a connection middleware), never on the socket or the gRPC port.
/// </summary>
internal static class PmemPrometheus
{
    public const string Path = "/metrics";

    private const string ConnectionTag = "pmem.metrics-listener";

    internal static bool Enabled(string? metricsEndpoint) => !string.IsNullOrWhiteSpace(metricsEndpoint);

    public static MeterProviderBuilder AddPmemPrometheus(this MeterProviderBuilder metrics, IConfiguration configuration) =>
        Enabled(configuration[$"{PmemServiceOptions.SectionName}:{nameof(PmemServiceOptions.MetricsEndpoint)}"])
            ? metrics.AddPrometheusExporter()
            : metrics;

    public static void ConfigureListener(ListenOptions listen)
    {
        listen.Protocols = HttpProtocols.Http1;
        listen.Use(next => connection =>
        {
            connection.Items[ConnectionTag] = true;
            return next(connection);
        });
    }

    public static void MapScrapingEndpoint(IEndpointRouteBuilder endpoints)
    {
        if (!Enabled(endpoints.ServiceProvider.GetRequiredService<IOptions<PmemServiceOptions>>().Value.MetricsEndpoint))
        {
            return;
        }

        endpoints.MapPrometheusScrapingEndpoint(Path).Add(endpoint =>
        {
            var scrape = endpoint.RequestDelegate!;
            endpoint.RequestDelegate = context =>
            {
                if (context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(ConnectionTag) != true)
                {
                    context.Response.StatusCode = StatusCodes.Status404NotFound;
                    return Task.CompletedTask;
                }

                return scrape(context);
            };
        });
    }
}
