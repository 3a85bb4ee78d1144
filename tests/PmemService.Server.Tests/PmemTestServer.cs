using System.Collections.Concurrent;
using System.Net.Sockets;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using PmemService.Contracts.V1;
using Serilog.Core;
using Serilog.Events;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Server.Tests;

/// <summary>
/// A real Kestrel server hosting AddPmem()/MapPmemServices() on a temporary Unix socket and on
/// 127.0.0.1 port 0 (the bound port is read back), with its pool under /dev/shm (tmpfs: msync is cheap).
/// </summary>
public sealed class PmemTestServer : IAsyncDisposable
{
    private readonly List<GrpcChannel> _channels = [];
    private WebApplication? _app;

    private PmemTestServer(string root, string poolPath, Dictionary<string, string?> settings)
    {
        Root = root;
        PoolPath = poolPath;
        SocketPath = Path.Combine(root, "pmem.sock");
        Settings = settings;
    }

    /// <summary>Temporary directory holding the socket (and by default nothing else).</summary>
    public string Root { get; }

    public string PoolPath { get; }

    public string SocketPath { get; }

    public int TcpPort { get; private set; }

    public Dictionary<string, string?> Settings { get; }

    /// <summary>Log events the server wrote (Serilog sink registered in DI).</summary>
    public CapturingSink Logs { get; } = new();

    public IServiceProvider Services => _app!.Services;

    public GrpcChannel UdsChannel { get; private set; } = null!;

    public GrpcChannel TcpChannel { get; private set; } = null!;

    public PmemRpcClient Uds => new(UdsChannel);

    public PmemRpcClient Tcp => new(TcpChannel);

    /// <summary>
    /// A fresh root under /dev/shm. Every root made here is also removed when the test process exits:
    /// tests that make their own root (PKI files, a pre-made pool, a server expected not to start) do not
    /// always reach a server's DisposeAsync, and /dev/shm is memory.
    /// </summary>
    public static string NewRoot()
    {
        // Short paths: sun_path holds at most 107 bytes.
        var baseDir = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        var root = Path.Combine(baseDir, "pmemsvc-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(root);
        lock (Roots)
        {
            if (Roots.Count == 0)
            {
                AppDomain.CurrentDomain.ProcessExit += static (_, _) => DeleteRoots();
            }

            Roots.Add(root);
        }

        return root;
    }

    private static readonly List<string> Roots = [];

    private static void DeleteRoots()
    {
        string[] roots;
        lock (Roots)
        {
            roots = [.. Roots];
        }

        foreach (var root in roots)
        {
            try
            {
                if (Directory.Exists(root))
                {
                    Directory.Delete(root, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort at exit.
            }
        }
    }

    public static async Task<PmemTestServer> StartAsync(Action<Dictionary<string, string?>>? configure = null, string? root = null)
    {
        root ??= NewRoot();
        var settings = new Dictionary<string, string?>
        {
            ["PmemService:PoolPath"] = Path.Combine(root, "pool"),
            ["PmemService:UnixSocketPath"] = Path.Combine(root, "pmem.sock"),
            ["PmemService:TcpEndpoint"] = "127.0.0.1:0",
            // TCP is a second data-plane transport in these tests (the service default is Unix socket only;
            // SecurityTests cover the default).
            ["PmemService:AllowDataPlaneOverTcp"] = "true",
            ["PmemService:MaxRegionSize"] = (512L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["PmemService:MaxMappedBytes"] = (2L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Serilog:MinimumLevel:Override:PmemService"] = "Information",
            ["Serilog:MinimumLevel:Override:Serilog.AspNetCore"] = "Verbose",
        };
        configure?.Invoke(settings);
        var server = new PmemTestServer(root, settings["PmemService:PoolPath"]!, settings);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts (or restarts, after <see cref="StopAsync"/>) the host on the same pool.</summary>
    public async Task StartAgainAsync()
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Configuration.AddInMemoryCollection(Settings);
        builder.Services.AddPmem(builder.Configuration);
        builder.Services.AddSingleton<ILogEventSink>(Logs);
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var app = builder.Build();
        app.UsePmemRequestLogging();
        app.MapPmemServices();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        _app = app;

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        var tcp = addresses.FirstOrDefault(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        TcpPort = tcp is null ? 0 : new Uri(tcp).Port;
        UdsChannel = CreateUdsChannel(SocketPath);
        _channels.Add(UdsChannel);
        if (TcpPort != 0)
        {
            TcpChannel = GrpcChannel.ForAddress($"http://127.0.0.1:{TcpPort}", new GrpcChannelOptions { MaxReceiveMessageSize = 8 << 20 });
            _channels.Add(TcpChannel);
        }
    }

    public static GrpcChannel CreateUdsChannel(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = 8 << 20 });
    }

    /// <summary>Stops the host (graceful shutdown) but keeps the pool.</summary>
    public async Task StopAsync()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        _channels.Clear();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }
    }

    /// <summary>Stops the host via the lifetime (as SIGTERM would) and returns the stop task.</summary>
    public Task StopViaLifetimeAsync() => _app!.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Collects Serilog events in memory.</summary>
public sealed class CapturingSink : ILogEventSink
{
    public ConcurrentQueue<LogEvent> Events { get; } = new();

    public void Emit(LogEvent logEvent) => Events.Enqueue(logEvent);

    public IEnumerable<LogEvent> WithEventName(string name) =>
        Events.Where(e => e.Properties.TryGetValue("EventId", out var id) && id.ToString().Contains($"\"{name}\"", StringComparison.Ordinal));
}

/// <summary>One server per test class.</summary>
public sealed class SharedServerFixture : IAsyncLifetime
{
    public PmemTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PmemTestServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
