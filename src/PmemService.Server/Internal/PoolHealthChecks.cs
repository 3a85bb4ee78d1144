using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// Readiness: the pool probe succeeded (a full or read-only pool at start gives NOT_SERVING with the
/// reason, re-probed on every check until it succeeds), the pool is writable, the Unix socket the
/// server listens on is still the one it bound (a deleted or replaced socket file cannot be reached
/// by clients: NOT_SERVING with the reason), and the server is not draining.
/// </summary>
internal sealed class PoolReadinessHealthCheck : IHealthCheck
{
    private readonly RegionManager _regions;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly UnixSocketWatch _socket;

    public PoolReadinessHealthCheck(RegionManager regions, IHostApplicationLifetime lifetime, UnixSocketWatch socket)
    {
        _regions = regions;
        _lifetime = lifetime;
        _socket = socket;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var probe = _regions.ReprobeIfFailed();
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

        if (probe.Error is not null)
        {
            return HealthCheckResult.Unhealthy($"the pool probe failed: {probe.Error}", data: data);
        }

        if (_socket.Problem() is { } socketProblem)
        {
            return HealthCheckResult.Unhealthy(socketProblem, data: data);
        }

        var path = Path.Combine(_regions.PoolPath, $"{PoolDirectory.ProbePrefix}health-{Guid.NewGuid():N}");
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
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return HealthCheckResult.Healthy(probe.MapSync
            ? "pool writable, DAX with MAP_SYNC"
            : $"pool writable, no MAP_SYNC: {GranularityConvert.Name(probe.Granularity)} granularity", data);
    }
}

/// <summary>
/// Remembers the identity (st_dev, st_ino) of the Unix socket file after Kestrel bound it, so
/// readiness can tell when the file was deleted or replaced (clients connect by path: a deleted
/// socket file makes the listener unreachable although it still runs).
/// </summary>
internal sealed class UnixSocketWatch
{
    private readonly string? _path;
    private Pmem2FileStatus? _bound;

    public UnixSocketWatch(IOptions<PmemServiceOptions> options) => _path = options.Value.FullUnixSocketPath;

    /// <summary>Records the socket's identity (called once the server listens).</summary>
    public void Record()
    {
        if (_path is not null)
        {
            _bound = Pmem2Files.TryGetStatus(_path);
        }
    }

    /// <summary>Null when the socket is still the one bound (or no socket is configured), else the reason.</summary>
    public string? Problem()
    {
        if (_path is null || _bound is not { } bound)
        {
            return null;
        }

        Pmem2FileStatus? now;
        try
        {
            now = Pmem2Files.TryGetStatus(_path);
        }
        catch (Pmem2Exception e)
        {
            return $"the Unix socket {_path} cannot be checked: {e.Message}";
        }

        return now switch
        {
            null => $"the Unix socket {_path} was removed; clients cannot connect to it (restart the service to re-create it)",
            { } s when !s.IsSameFile(bound) || !s.IsSocket => $"the Unix socket {_path} was replaced by another file; clients cannot reach this server through it",
            _ => null,
        };
    }
}
