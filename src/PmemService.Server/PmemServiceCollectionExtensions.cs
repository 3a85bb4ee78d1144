using Grpc.AspNetCore.HealthChecks;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using PmemService.Server;
using PmemService.Server.Internal;
using Serilog;
using Serilog.Formatting.Compact;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers PmemService (grpc-dotnet AddGrpc() shape).</summary>
public static class PmemServiceCollectionExtensions
{
    /// <summary>Health service name of the liveness check (the empty name, as kubelet asks by default).</summary>
    public const string LivenessService = "";

    /// <summary>Health service name of the readiness check.</summary>
    public const string ReadinessService = "readiness";

    /// <summary>
    /// Adds the PmemService gRPC service, its options (section "PmemService", validated on start),
    /// Kestrel listeners (Unix socket + TCP, HTTP/2), health (liveness "" and "readiness"),
    /// reflection, Serilog (compact JSON outside Development), OpenTelemetry (Meter and
    /// ActivitySource "PmemService"; OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set) and the
    /// hosted service that probes the pool at start and persists every mapping at stop.
    /// </summary>
    public static IServiceCollection AddPmem(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);

        services.TryAddSingleton<PmemMarkerService>();
        services.AddOptions<PmemServiceOptions>()
            .Bind(configuration.GetSection(PmemServiceOptions.SectionName))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PmemServiceOptions>, PmemServiceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<KestrelServerOptions>, PmemKestrelSetup>());

        services.AddMetrics();
        services.TryAddSingleton<PmemMetrics>();
        services.TryAddSingleton<RegionManager>();
        services.TryAddSingleton<UnixSocketWatch>();
        services.TryAddSingleton<RegionBadBlocks>();
        services.AddHostedService<PmemHostedService>();
        services.AddPmemSecurity(configuration); // SO_PEERCRED identity, TCP authentication (mTLS, JWT)
        // Direct access lane (issue 11). Registered after PmemHostedService so it stops first:
        // direct leases are revoked before the mappings are persisted and unmapped.
        services.AddOptions<PmemService.Server.Internal.DirectAccess.DirectAccessOptions>()
            .Bind(configuration.GetSection(PmemService.Server.Internal.DirectAccess.DirectAccessOptions.SectionName));
        services.TryAddSingleton<PmemService.Server.Internal.DirectAccess.DirectSideChannel>();
        services.AddHostedService(provider => provider.GetRequiredService<PmemService.Server.Internal.DirectAccess.DirectSideChannel>());

        services.AddGrpc();
        // The interceptors are stateless: registered as singletons, grpc-dotnet resolves them from the
        // container instead of constructing three per call through ActivatorUtilities (perf: 2.8 % of a
        // 4 KiB WriteRegion's server CPU, with their constructors' option and logger lookups).
        services.TryAddSingleton<ErrorMetricsInterceptor>();
        services.TryAddSingleton<ErrorMappingInterceptor>();
        services.TryAddSingleton<PeerAuthorizationInterceptor>();
        // pmem.v1 is bound with the zero-copy data-path marshallers (DataPath/PmemMethodProvider); the
        // service is stateless, so one instance serves every call.
        services.TryAddSingleton<PmemGrpcService>();
        services.AddHttpContextAccessor();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<PmemGrpcService>, PmemService.Server.Internal.DataPath.PmemMethodProvider>());
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>()
            .Configure<IOptions<PmemServiceOptions>, IHostEnvironment>((grpc, pmem, environment) =>
            {
                grpc.MaxReceiveMessageSize = pmem.Value.MaxReceiveMessageSize;
                grpc.MaxSendMessageSize = pmem.Value.MaxSendMessageSize;
                grpc.EnableDetailedErrors = environment.IsDevelopment();
                grpc.Interceptors.Add<ErrorMetricsInterceptor>(); // outside the mapping: counts the final status and reason
                grpc.Interceptors.Add<ErrorMappingInterceptor>();
                grpc.Interceptors.Add<PeerAuthorizationInterceptor>();
            });
        services.AddGrpcReflection();

        services.AddGrpcHealthChecks(options =>
        {
            options.Services.Clear();
            options.Services.Map(LivenessService, result => result.Tags.Contains("liveness"));
            options.Services.Map(ReadinessService, result => result.Tags.Contains("readiness"));
        })
            .AddCheck("process", () => HealthCheckResult.Healthy("running"), tags: ["liveness"])
            .AddCheck<PoolReadinessHealthCheck>("pool", tags: ["readiness"])
            .AddCheck<BadBlocksHealthCheck>("bad_blocks", tags: ["readiness"]);

        services.AddSerilog((provider, logger) =>
        {
            var environment = provider.GetRequiredService<IHostEnvironment>();
            logger.ReadFrom.Configuration(configuration)
                .ReadFrom.Services(provider)
                .Enrich.FromLogContext();
            if (environment.IsDevelopment())
            {
                logger.WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}");
            }
            else
            {
                logger.WriteTo.Console(new RenderedCompactJsonFormatter());
            }
        }, preserveStaticLogger: true); // each host owns its logger (several hosts per process, as in tests); Log.Logger stays the bootstrap logger

        // OpenTelemetry only when there is somewhere to send it (an OTLP endpoint, or the Prometheus
        // scrape endpoint for metrics): without an exporter, the SDK's listeners would still create and
        // record an Activity and aggregate every measurement of every call, which on a 4 KiB WriteRegion
        // costs more than the write (issue 10; docs/benchmarks.md "Service"). The meters stay observable
        // in-process (IMeterFactory / MeterListener, dotnet-counters). Sampling: the SDK reads
        // OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (e.g. parentbased_traceidratio, 0.01).
        var otlp = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var prometheus = PmemPrometheus.Enabled(configuration[$"{PmemServiceOptions.SectionName}:{nameof(PmemServiceOptions.MetricsEndpoint)}"]);
        if (otlp || prometheus)
        {
            var telemetry = services.AddOpenTelemetry()
                .ConfigureResource(resource => resource.AddService("pmem-service"))
                .WithMetrics(metrics => metrics
                    .AddMeter(PmemMetrics.MeterName)
                    .AddMeter("Microsoft.AspNetCore.Server.Kestrel")
                    .AddAspNetCoreInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddPmemPrometheus(configuration));
            if (otlp)
            {
                telemetry
                    .WithTracing(tracing => tracing
                        .AddSource(PmemActivity.SourceName)
                        .AddAspNetCoreInstrumentation())
                    .UseOtlpExporter();
            }
        }

        return services;
    }
}

/// <summary>Marker checked by MapPmemServices to give a helpful error when AddPmem was not called.</summary>
internal sealed class PmemMarkerService;
