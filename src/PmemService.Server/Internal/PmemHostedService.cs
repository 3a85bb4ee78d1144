using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// Start-up and shutdown of the pool. Starting: create the pool, clean leftovers, probe MAP_SYNC
/// (refusing to start when RequireDax cannot be met; a probe that cannot run on a full or read-only
/// pool only makes readiness NOT_SERVING), log the engine. Started: set the socket mode and record
/// the socket's identity for readiness.
/// Stopping (ApplicationStopping): the service drains — streams end with UNAVAILABLE and their
/// persisted offset, new calls get UNAVAILABLE. StopAsync: persist and unmap every mapping.
/// </summary>
internal sealed class PmemHostedService : IHostedLifecycleService
{
    private readonly RegionManager _regions;
    private readonly PmemServiceOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<PmemHostedService> _logger;
    private readonly UnixSocketWatch _socketWatch;
    private CancellationTokenRegistration _stoppingRegistration;

    public PmemHostedService(RegionManager regions, IOptions<PmemServiceOptions> options, IHostApplicationLifetime lifetime, ILogger<PmemHostedService> logger,
        UnixSocketWatch socketWatch)
    {
        _regions = regions;
        _socketWatch = socketWatch;
        _options = options.Value;
        _lifetime = lifetime;
        _logger = logger;
    }

    public Task StartingAsync(CancellationToken cancellationToken)
    {
        PmemLog.ServiceStarting(_logger, _regions.PoolPath, _options.FullUnixSocketPath ?? "(disabled)",
            string.IsNullOrWhiteSpace(_options.TcpEndpoint) ? "(disabled)" : _options.TcpEndpoint);
        if (!Pmem2Platform.IsSupported)
        {
            throw new PlatformNotSupportedException("PmemService needs Linux on x86-64 (the Pmem2 engine's platform).");
        }

        PmemLog.Pmem2Engine(_logger, Pmem2Platform.FlushInstruction.ToString().ToUpperInvariant(), Pmem2Platform.CopyEngine);
        var probe = _regions.Initialize();
        PmemLog.PoolProbed(_logger, GranularityConvert.Name(probe.Granularity), probe.MapSync);
        if (_options.RequireDax && !probe.MapSync)
        {
            // The real MAP_SYNC probe decides: PMEM2_FORCE_GRANULARITY cannot satisfy RequireDax.
            throw new InvalidOperationException(
                $"PmemService:RequireDax is true but the pool '{_regions.PoolPath}' is not on a DAX filesystem: a MAP_SYNC mapping of a probe file, which CACHE_LINE granularity needs, was refused ({probe.Error ?? probe.Reason}). "
                + "Mount the pool with -o dax (ext4 or xfs on a pmem namespace in fsdax mode) or set PmemService:RequireDax=false to run at PAGE granularity.");
        }

        if (probe.Error is null && probe.Reason is not null)
        {
            PmemLog.NoDax(_logger, _regions.PoolPath, probe.Reason);
        }

        _stoppingRegistration = _lifetime.ApplicationStopping.Register(static state => ((RegionManager)state!).BeginShutdown(), _regions);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var socket = _options.FullUnixSocketPath;
        if (socket is not null && !OperatingSystem.IsWindows() && File.Exists(socket) && PmemServiceOptions.TryParseMode(_options.UnixSocketMode, out var mode))
        {
            // Kestrel creates the socket with the process umask and has no option for its mode.
            File.SetUnixFileMode(socket, mode);
            PmemLog.SocketModeSet(_logger, socket, _options.UnixSocketMode);
        }

        _socketWatch.Record();

        return Task.CompletedTask;
    }

    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        _regions.BeginShutdown();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _regions.ShutdownAsync(cancellationToken);

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        _stoppingRegistration.Dispose();
        return Task.CompletedTask;
    }
}
