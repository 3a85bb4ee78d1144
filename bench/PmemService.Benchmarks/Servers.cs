using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using PmemService.Contracts.V1;
using PmemService.Server;

namespace PmemService.Benchmarks;

/// <summary>The child-process side: the real service, or the transport-only sink, then a tiny stdin/stdout control loop.</summary>
internal static class Servers
{
    /// <summary>"serve service ROOT" / "serve sink ROOT": binds ROOT/pmem.sock and 127.0.0.1:0, prints "BENCH READY port".</summary>
    public static async Task<int> ServeAsync(string kind, string root, string pool)
    {
        var socket = Path.Combine(root, "pmem.sock");
        WebApplication app;
        if (kind is "service" or "service-bare")
        {
            // Exactly what src/PmemService/Program.cs does, with Production logging (compact JSON to stdout).
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production", ContentRootPath = AppContext.BaseDirectory });
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["PmemService:PoolPath"] = pool,
                ["PmemService:UnixSocketPath"] = socket,
                ["PmemService:TcpEndpoint"] = "127.0.0.1:0",
                // The TCP rows compare transports with the plaintext sink, so the service serves the data
                // plane on loopback TCP without authentication here (never the default; see README Security).
                ["PmemService:AllowDataPlaneOverTcp"] = "true",
                ["PmemService:MaxRegionSize"] = (4L << 30).ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Serilog:MinimumLevel:Default"] = "Information",
                ["Serilog:MinimumLevel:Override:Microsoft.AspNetCore"] = "Warning",
            });
            if (kind == "service-bare")
            {
                // Overhead baseline: no request logging middleware and no log output at all.
                builder.Configuration["Serilog:MinimumLevel:Default"] = "Fatal";
            }

            builder.Services.AddPmem(builder.Configuration);
            app = builder.Build();
            if (kind == "service")
            {
                app.UsePmemRequestLogging();
            }

            app.MapPmemServices();
        }
        else
        {
            // The ceiling: the same Kestrel listeners, HTTP/2 windows and message limits, generated
            // protobuf marshallers (each message parsed into a ByteString), and no work at all.
            var defaults = new PmemServiceOptions();
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production", ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.Limits.Http2.InitialConnectionWindowSize = defaults.Http2ConnectionWindowSize;
                kestrel.Limits.Http2.InitialStreamWindowSize = defaults.Http2StreamWindowSize;
                kestrel.ListenUnixSocket(socket, listen => listen.Protocols = HttpProtocols.Http2);
                kestrel.Listen(System.Net.IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
            });
            builder.Services.AddGrpc(grpc =>
            {
                grpc.MaxReceiveMessageSize = defaults.MaxReceiveMessageSize;
                grpc.MaxSendMessageSize = defaults.MaxSendMessageSize;
            });
            if (kind == "nullsink")
            {
                builder.Services.AddSingleton<NullSinkService>();
                builder.Services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<NullSinkService>, NullSinkMethodProvider>();
            }

            app = builder.Build();
            if (kind == "nullsink")
            {
                app.MapGrpcService<NullSinkService>();
            }
            else
            {
                app.MapGrpcService<SinkService>();
            }
        }

        await app.StartAsync();
        var addresses = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses;
        var tcp = addresses.First(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        Console.Out.WriteLine($"BENCH READY {new Uri(tcp).Port}");
        Console.Out.Flush();
        string? line;
        while ((line = await Console.In.ReadLineAsync()) is not null && line != "quit")
        {
            if (line == "alloc")
            {
                Console.Out.WriteLine($"BENCH ALLOC {GC.GetTotalAllocatedBytes(precise: true)} {GC.CollectionCount(0)}");
                Console.Out.Flush();
            }
        }

        await app.StopAsync();
        return 0;
    }
}

/// <summary>Transport-only pmem.v1: accepts and answers, never touches memory beyond protobuf's own parse.</summary>
internal sealed class SinkService : Contracts.V1.PmemService.PmemServiceBase
{
    private static readonly byte[] Source = new byte[4 << 20];

    public override Task<MapRegionResponse> MapRegion(MapRegionRequest request, ServerCallContext context) =>
        Task.FromResult(new MapRegionResponse { Region = new RegionInfo { Name = request.Name, Size = request.Size, Mapped = true, MapReferences = 1 } });

    public override Task<WriteRegionResponse> WriteRegion(WriteRegionRequest request, ServerCallContext context) =>
        Task.FromResult(new WriteRegionResponse { BytesWritten = (ulong)request.Data.Length, Persisted = true });

    public override Task<CompareAndSwapResponse> CompareAndSwap(CompareAndSwapRequest request, ServerCallContext context) =>
        Task.FromResult(new CompareAndSwapResponse { Swapped = true, Previous = request.Expected });

    public override Task<FetchAddResponse> FetchAdd(FetchAddRequest request, ServerCallContext context) =>
        Task.FromResult(new FetchAddResponse { Previous = 0, Value = request.Delta });

    public override Task<ReadRegionResponse> ReadRegion(ReadRegionRequest request, ServerCallContext context) =>
        Task.FromResult(new ReadRegionResponse { Data = UnsafeByteOperations.UnsafeWrap(Source.AsMemory(0, (int)request.Length)) });

    public override async Task StreamReadRegion(StreamReadRegionRequest request, IServerStreamWriter<StreamReadRegionResponse> responseStream, ServerCallContext context)
    {
        var offset = request.Offset;
        var end = request.Offset + request.Length;
        while (offset < end)
        {
            var n = (int)Math.Min(request.ChunkSize, end - offset);
            await responseStream.WriteAsync(new StreamReadRegionResponse { Offset = offset, Data = UnsafeByteOperations.UnsafeWrap(Source.AsMemory(0, n)) });
            offset += (ulong)n;
        }
    }

    public override async Task<StreamWriteRegionResponse> StreamWriteRegion(IAsyncStreamReader<StreamWriteRegionRequest> requestStream, ServerCallContext context)
    {
        ulong bytes = 0, offset = 0;
        while (await requestStream.MoveNext())
        {
            var message = requestStream.Current;
            if (message.PayloadCase == StreamWriteRegionRequest.PayloadOneofCase.Header)
            {
                offset = message.Header.Offset;
            }
            else
            {
                bytes += (ulong)message.Data.Length;
            }
        }

        return new StreamWriteRegionResponse { BytesPersisted = bytes, PersistedOffset = offset + bytes };
    }
}

/// <summary>A child server process, its CPU time from /proc and its allocation counter over stdin/stdout.</summary>
internal sealed class ChildServer : IAsyncDisposable
{
    /// <summary>The environment of a CACHE_LINE service: pmem2's switch (CPU flushes, no msync); its pool is on tmpfs.</summary>
    public static Dictionary<string, string> CacheLine() => new() { ["PMEM2_FORCE_GRANULARITY"] = "CACHE_LINE" };

    private readonly Process _process;
    private readonly System.Threading.Channels.Channel<string> _replies = System.Threading.Channels.Channel.CreateUnbounded<string>();

    private ChildServer(string name, string root, Process process)
    {
        Name = name;
        Root = root;
        _process = process;
    }

    public string Name { get; }

    public string Root { get; }

    public string SocketPath => Path.Combine(Root, "pmem.sock");

    public int TcpPort { get; private set; }

    /// <param name="benchDll">Another build of this benchmark (e.g. of the baseline commit) to run the server from; null = this one.</param>
    public static async Task<ChildServer> StartAsync(string name, string kind, string root, string? pool, IDictionary<string, string> environment, string? benchDll = null)
    {
        Directory.CreateDirectory(root);
        var self = Environment.ProcessPath!;
        ProcessStartInfo info;
        if (benchDll is not null)
        {
            info = new ProcessStartInfo("dotnet");
            info.ArgumentList.Add(benchDll);
        }
        else
        {
            info = new ProcessStartInfo(self);
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                info.ArgumentList.Add(typeof(ChildServer).Assembly.Location);
            }
        }

        info.RedirectStandardInput = true;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;

        info.ArgumentList.Add("serve");
        info.ArgumentList.Add(kind);
        info.ArgumentList.Add(root);
        if (pool is not null)
        {
            info.ArgumentList.Add(pool);
        }
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info)!;
        var child = new ChildServer(name, root, process);
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = Task.Run(async () =>
        {
            string? line;
            while ((line = await process.StandardOutput.ReadLineAsync()) is not null)
            {
                if (line.StartsWith("BENCH READY ", StringComparison.Ordinal))
                {
                    ready.TrySetResult(int.Parse(line["BENCH READY ".Length..], System.Globalization.CultureInfo.InvariantCulture));
                }
                else if (line.StartsWith("BENCH ", StringComparison.Ordinal))
                {
                    await child._replies.Writer.WriteAsync(line);
                }
            }

            ready.TrySetException(new InvalidOperationException($"{name} exited before it was ready"));
        });
        _ = Task.Run(async () =>
        {
            string? line;
            while ((line = await process.StandardError.ReadLineAsync()) is not null)
            {
                Console.Error.WriteLine($"[{name}] {line}");
            }
        });
        child.TcpPort = await ready.Task.WaitAsync(TimeSpan.FromSeconds(120));
        return child;
    }

    /// <summary>User + system CPU seconds of the child so far (/proc/PID/stat, clock ticks of 1/100 s).</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        return (long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>Bytes the child's managed heap allocated so far.</summary>
    public async Task<long> AllocatedBytesAsync()
    {
        await _process.StandardInput.WriteLineAsync("alloc");
        await _process.StandardInput.FlushAsync();
        var reply = await _replies.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        return long.Parse(reply.Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _process.StandardInput.WriteLineAsync("quit");
            await _process.StandardInput.FlushAsync();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }
}
