using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PmemService.Client;

namespace PmemService.Client.Tests;

/// <summary>
/// A real PmemService host (AddPmem / MapPmemServices on Kestrel) on a Unix socket in a temp
/// directory plus 127.0.0.1:0, over a temp pool. Stop and start again on the same pool and socket
/// to simulate a restart.
/// </summary>
public sealed class PmemServer : IAsyncDisposable
{
    private readonly Dictionary<string, string?> _settings;
    private WebApplication? _app;

    private PmemServer(string root, Dictionary<string, string?> settings)
    {
        Root = root;
        PoolPath = Path.Combine(root, "pool");
        SocketPath = Path.Combine(root, "pmem.sock");
        _settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["PmemService:PoolPath"] = PoolPath,
            ["PmemService:UnixSocketPath"] = SocketPath,
            ["PmemService:TcpEndpoint"] = "127.0.0.1:0",
            // TCP is a second data-plane transport in these tests (the service default is Unix socket only;
            // SecurityTests cover the default).
            ["PmemService:AllowDataPlaneOverTcp"] = "true",
            ["PmemService:MaxRegionSize"] = (1L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Serilog:MinimumLevel:Override:PmemService"] = "Warning",
        };
        foreach (var (key, value) in settings)
        {
            _settings[key] = value;
        }
    }

    /// <summary>The temp directory holding pool and socket (deleted on dispose).</summary>
    public string Root { get; }

    public string PoolPath { get; }

    public string SocketPath { get; }

    /// <summary><c>unix:///.../pmem.sock</c>.</summary>
    public string UnixAddress => "unix://" + SocketPath;

    /// <summary><c>http://127.0.0.1:PORT</c> (<c>https://</c> with TCP authentication) of the current run.</summary>
    public string TcpAddress { get; private set; } = string.Empty;

    /// <summary><c>http://127.0.0.1:PORT</c> of the Prometheus listener (PmemService:MetricsEndpoint), if configured.</summary>
    public string? MetricsAddress { get; private set; }

    /// <summary>The running host's services.</summary>
    public IServiceProvider Services => (_app ?? throw new InvalidOperationException("Not running.")).Services;

    public static async Task<PmemServer> StartAsync(IDictionary<string, string?>? settings = null)
    {
        // Short path: sun_path is limited to 108 bytes. tmpfs keeps big transfers off the disk.
        var baseDir = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        var root = Path.Combine(baseDir, "pmemc-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(root);
        var server = new PmemServer(root, new Dictionary<string, string?>(settings ?? new Dictionary<string, string?>()));
        await server.StartAsync().ConfigureAwait(false);
        return server;
    }

    /// <summary>Starts (again) on the same pool and socket.</summary>
    public async Task StartAsync()
    {
        if (_app is not null)
        {
            throw new InvalidOperationException("Already running.");
        }

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Production",
            ContentRootPath = Root,
            Args = [],
        });
        builder.Configuration.AddInMemoryCollection(_settings);
        builder.Services.AddPmem(builder.Configuration);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(15));
        var app = builder.Build();
        app.MapPmemServices();
        await app.StartAsync().ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses;
        // Listen order: socket, gRPC TCP, then the metrics listener when PmemService:MetricsEndpoint is set.
        var tcp = addresses.Where(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal) || a.StartsWith("https://127.0.0.1:", StringComparison.Ordinal)).ToList();
        TcpAddress = tcp[0];
        MetricsAddress = tcp.Count > 1 ? tcp[1] : null;
        _app = app;
    }

    /// <summary>Graceful stop: streams end with UNAVAILABLE and their persisted offset; mappings are persisted and closed.</summary>
    public async Task StopAsync()
    {
        var app = _app ?? throw new InvalidOperationException("Not running.");
        _app = null;
        await app.StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
    }

    public PmemClient CreateClient(PmemClientOptions? options = null, bool tcp = false) =>
        new(tcp ? TcpAddress : UnixAddress, options);

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await StopAsync().ConfigureAwait(false);
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One server shared by a test class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public PmemServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PmemServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Helpers shared by the tests.</summary>
public static class TestData
{
    private static int s_counter;

    /// <summary>A region name unique within the test run.</summary>
    public static string Name(string prefix) => $"{prefix}-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var data = GC.AllocateUninitializedArray<byte>(length);
        new Random(seed).NextBytes(data);
        return data;
    }

    public static ulong Crc64(ReadOnlySpan<byte> data) => System.IO.Hashing.Crc64.HashToUInt64(data);
}
