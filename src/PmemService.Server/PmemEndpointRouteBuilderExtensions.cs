using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PmemService.Server;
using PmemService.Server.Internal;
using Serilog;
using Serilog.Events;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps PmemService endpoints (grpc-dotnet MapGrpcService() shape).</summary>
public static class PmemEndpointRouteBuilderExtensions
{
    /// <summary>Maps pmem.v1.PmemService, grpc.health.v1.Health and (unless disabled) reflection v1 and v1alpha.</summary>
    public static IEndpointRouteBuilder MapPmemServices(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (endpoints.ServiceProvider.GetService<PmemMarkerService>() is null)
        {
            throw new InvalidOperationException(
                "Unable to find the required services. Add them by calling 'services.AddPmem(configuration)' in the application startup code.");
        }

        endpoints.MapGrpcService<PmemGrpcService>();
        endpoints.MapGrpcHealthChecksService();
        if (endpoints.ServiceProvider.GetRequiredService<IOptions<PmemServiceOptions>>().Value.EnableReflection)
        {
            endpoints.MapGrpcReflectionService();
        }

        PmemPrometheus.MapScrapingEndpoint(endpoints);

        return endpoints;
    }

    /// <summary>
    /// Serilog request logging that reports the gRPC status (from the grpc-status trailer, or the
    /// header of a trailers-only response) and keeps health/reflection probes at Verbose.
    /// </summary>
    public static IApplicationBuilder UsePmemRequestLogging(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // The host's own Serilog logger (AddPmem keeps the static Log.Logger as the bootstrap logger).
        var hostLogger = app.ApplicationServices.GetService<Serilog.ILogger>();
        return app.UseSerilogRequestLogging(options =>
        {
            options.Logger = hostLogger;
            options.MessageTemplate = "gRPC {RequestPath} finished {GrpcStatus} in {Elapsed:0.000} ms";
            options.EnrichDiagnosticContext = (diagnostics, context) =>
            {
                diagnostics.Set("GrpcStatus", GrpcStatus(context) ?? "none");
                diagnostics.Set("Transport", context.Connection.LocalIpAddress is null ? "unix" : "tcp");
            };
            options.GetLevel = (context, _, exception) =>
            {
                var path = context.Request.Path.Value ?? string.Empty;
                if (path.StartsWith("/grpc.health.v1.", StringComparison.Ordinal) || path.StartsWith("/grpc.reflection.", StringComparison.Ordinal))
                {
                    return LogEventLevel.Verbose;
                }

                // Successful data-plane calls (Write/Read/Persist/Stream*, and the issue 14 atomics) at Debug: one
                // Information line per 4 KiB write cost more than the write itself (issue 10), and per CompareAndSwap
                // ~30 us of server CPU (perf: Serilog's sink was 20 % of the process). Their failures stay Information/Error.
                if (exception is null && IsDataPlane(path) && GrpcStatus(context) == "0")
                {
                    return LogEventLevel.Debug;
                }

                // INTERNAL (13), UNKNOWN (2) and DATA_LOSS (15) are server faults.
                return exception is not null || context.Response.StatusCode >= 500 || GrpcStatus(context) is "2" or "13" or "15"
                    ? LogEventLevel.Error
                    : LogEventLevel.Information;
            };
        });
    }

    private static bool IsDataPlane(string path) =>
        path.StartsWith("/pmem.v1.PmemService/", StringComparison.Ordinal)
        && path.AsSpan("/pmem.v1.PmemService/".Length) is "WriteRegion" or "ReadRegion" or "PersistRegion" or "StreamWriteRegion" or "StreamReadRegion"
            or "AtomicWrite" or "CompareAndSwap" or "FetchAdd";

    private static string? GrpcStatus(HttpContext context)
    {
        var trailers = context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers;
        var status = trailers?["grpc-status"].ToString();
        if (string.IsNullOrEmpty(status))
        {
            status = context.Response.Headers["grpc-status"].ToString();
        }

        return string.IsNullOrEmpty(status) ? null : status;
    }
}
