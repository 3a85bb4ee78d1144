using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.FaultTests;

/// <summary>
/// The real service executable (PmemService.dll, run with dotnet) as a child process on a pool
/// directory and a Unix socket, optionally under a wrapper command (strace). Kill() is SIGKILL.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly StringBuilder _output = new();
    private Process? _process;
    private GrpcChannel? _channel;

    public ServiceProcess(string poolPath, string socketPath, IReadOnlyList<string>? wrapper = null, IDictionary<string, string>? environment = null)
    {
        PoolPath = poolPath;
        SocketPath = socketPath;
        Wrapper = wrapper ?? [];
        Environment = environment ?? new Dictionary<string, string>();
    }

    public string PoolPath { get; }

    public string SocketPath { get; }

    public IReadOnlyList<string> Wrapper { get; }

    public IDictionary<string, string> Environment { get; }

    /// <summary>Pid of the started process (the wrapper's, when there is one).</summary>
    public int Pid => _process?.Id ?? 0;

    /// <summary>Pid of the service itself: the started process, or the wrapper's (strace's) child.</summary>
    public int ServicePid
    {
        get
        {
            if (Wrapper.Count == 0 || _process is null)
            {
                return Pid;
            }

            var children = File.ReadAllText($"/proc/{Pid}/task/{Pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return children.Length == 1
                ? int.Parse(children[0], System.Globalization.CultureInfo.InvariantCulture)
                : throw new InvalidOperationException($"the wrapper {Pid} has {children.Length} children");
        }
    }

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "PmemService.dll");

    public PmemRpcClient Client => new(_channel ?? throw new InvalidOperationException("not started"));

    public GrpcChannel Channel => _channel ?? throw new InvalidOperationException("not started");

    /// <summary>Everything the process printed (compact JSON logs), for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the process and waits until the readiness health check answers SERVING.</summary>
    public async Task StartAsync(TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(Wrapper.Count > 0 ? Wrapper[0] : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in Wrapper.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }

        if (Wrapper.Count > 0)
        {
            psi.ArgumentList.Add("dotnet");
        }

        psi.ArgumentList.Add(Dll);
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment["PmemService__PoolPath"] = PoolPath;
        psi.Environment["PmemService__UnixSocketPath"] = SocketPath;
        psi.Environment["PmemService__TcpEndpoint"] = string.Empty;
        psi.Environment["PmemService__MaxRegionSize"] = (256L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["Serilog__MinimumLevel__Default"] = "Warning";
        psi.Environment["Serilog__MinimumLevel__Override__PmemService"] = "Information";
        foreach (var (k, v) in Environment)
        {
            psi.Environment[k] = v;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the service");
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        _channel = CreateUdsChannel(SocketPath);

        var health = new Health.HealthClient(_channel);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the service exited with {process.ExitCode} during start-up:\n{Output}");
            }

            if (File.Exists(SocketPath))
            {
                try
                {
                    var reply = await health.CheckAsync(new HealthCheckRequest { Service = "readiness" }, deadline: DateTime.UtcNow.AddSeconds(5));
                    if (reply.Status == HealthCheckResponse.Types.ServingStatus.Serving)
                    {
                        return;
                    }
                }
                catch (RpcException)
                {
                }
            }

            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"the service was not SERVING within {timeout}:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    /// <summary>SIGKILL (the whole tree when wrapped) and wait for the exit.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(30_000);
        }

        DisposeChannel();
    }

    /// <summary>SIGTERM (graceful shutdown) and wait for the exit; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        DisposeChannel();
        if (_process is not { } p)
        {
            return 0;
        }

        if (!p.HasExited)
        {
            // The service, not its wrapper: strace then exits when its tracee has exited.
            using var kill = Process.Start("kill", ["-TERM", ServicePid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"the service did not stop within {timeout} of SIGTERM:\n{Output}");
        }

        return p.ExitCode;
    }

    private void DisposeChannel()
    {
        _channel?.Dispose();
        _channel = null;
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

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            try
            {
                await StopAsync(TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException)
            {
            }
        }

        DisposeChannel();
        _process?.Dispose();
        _process = null;
    }
}
