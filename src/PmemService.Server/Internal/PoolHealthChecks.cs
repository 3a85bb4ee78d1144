using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace PmemService.Server.Internal;

/// <summary>Readiness: the pool is writable, the MAP_SYNC state is known (and reported), not draining.</summary>
internal sealed class PoolReadinessHealthCheck : IHealthCheck
{
    private readonly RegionManager _regions;
    private readonly IHostApplicationLifetime _lifetime;

    public PoolReadinessHealthCheck(RegionManager regions, IHostApplicationLifetime lifetime)
    {
        _regions = regions;
        _lifetime = lifetime;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var probe = _regions.Probe;
        var data = new Dictionary<string, object>
        {
            ["pool"] = _regions.PoolPath,
            ["granularity"] = probe is null ? "unknown" : GranularityConvert.Name(probe.Granularity),
            ["map_sync"] = probe?.MapSync ?? false,
            ["mapped_bytes"] = _regions.MappedBytes,
        };

        if (_regions.IsShuttingDown || _lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy("draining: the server is shutting down", data: data);
        }

        if (probe is null)
        {
            return HealthCheckResult.Unhealthy("the pool has not been probed yet", data: data);
        }

        var path = Path.Combine(_regions.PoolPath, $"{RegionManager.ProbePrefix}health-{Guid.NewGuid():N}");
        try
        {
            await File.WriteAllBytesAsync(path, [1], cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return HealthCheckResult.Unhealthy($"the pool is not writable: {e.Message}", e, data);
        }
        finally
        {
            File.Delete(path);
        }

        return HealthCheckResult.Healthy(probe.MapSync
            ? "pool writable, DAX with MAP_SYNC"
            : $"pool writable, no MAP_SYNC: {GranularityConvert.Name(probe.Granularity)} granularity", data);
    }
}
