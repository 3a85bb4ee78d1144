using System.Net.Sockets;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace PmemService;

/// <summary>
/// <c>PmemService health [--address http://127.0.0.1:5001 | unix:/run/pmem/pmem.sock] [--service readiness] [--timeout 5]</c>:
/// asks grpc.health.v1.Health/Check and exits 0 when SERVING, 1 otherwise, with one line of output.
/// Chiseled images have no shell or curl, so the image's own binary is the healthcheck.
/// </summary>
internal static class HealthCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var address = "http://127.0.0.1:5001";
        var service = string.Empty;
        var timeout = TimeSpan.FromSeconds(5);
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--address" when value is not null:
                    address = value;
                    i++;
                    break;
                case "--service" when value is not null:
                    service = value;
                    i++;
                    break;
                case "--timeout" when value is not null && double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    timeout = TimeSpan.FromSeconds(seconds);
                    i++;
                    break;
                case "-h" or "--help":
                    Console.WriteLine("usage: PmemService health [--address http://127.0.0.1:5001 | unix:/path/pmem.sock] [--service readiness] [--timeout 5]");
                    return 0;
                default:
                    Console.Error.WriteLine($"health: unknown argument '{args[i]}' (see --help)");
                    return 1;
            }
        }

        var shown = string.IsNullOrEmpty(service) ? "\"\"" : service;
        try
        {
            using var channel = CreateChannel(address);
            var client = new Health.HealthClient(channel);
            var response = await client.CheckAsync(new HealthCheckRequest { Service = service }, deadline: DateTime.UtcNow + timeout);
            var serving = response.Status == HealthCheckResponse.Types.ServingStatus.Serving;
            Console.WriteLine($"{response.Status.ToString().ToUpperInvariant()}: service {shown} at {address}");
            return serving ? 0 : 1;
        }
        catch (RpcException e)
        {
            Console.WriteLine($"NOT SERVING: service {shown} at {address}: {e.StatusCode} {e.Status.Detail}");
            return 1;
        }
        catch (Exception e) when (e is UriFormatException or ArgumentException or InvalidOperationException)
        {
            Console.WriteLine($"NOT SERVING: bad address '{address}': {e.Message}");
            return 1;
        }
    }

    private static GrpcChannel CreateChannel(string address)
    {
        if (!address.StartsWith("unix:", StringComparison.Ordinal))
        {
            return GrpcChannel.ForAddress(address);
        }

        var path = address["unix:".Length..];
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler });
    }
}
