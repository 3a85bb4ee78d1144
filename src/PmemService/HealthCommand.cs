using System.CommandLine;
using System.Globalization;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using PmemService.Client;

namespace PmemService;

/// <summary>
/// <c>PmemService health [--address http://127.0.0.1:5001 | unix:/run/pmem/pmem.sock] [--service readiness] [--timeout 5]</c>:
/// asks grpc.health.v1.Health/Check and exits 0 when SERVING, 1 otherwise (usage errors included: Docker
/// reserves exit code 2), with one line of output. Chiseled images have no shell or curl, so the image's
/// own binary is the healthcheck. Parsed with System.CommandLine, like pmemctl; the channel comes from the
/// SDK's <see cref="PmemEndpoint"/> (the one Unix-socket dialler shared by the SDK, pmemctl and this probe).
/// </summary>
internal static class HealthCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var address = new Option<string>("--address", "-a")
        {
            Description = "Address to probe: http://host:port, unix:/path/pmem.sock or unix:///path/pmem.sock",
            DefaultValueFactory = _ => "http://127.0.0.1:5001",
        };
        var service = new Option<string>("--service", "-s")
        {
            Description = "gRPC health service name (\"\" = liveness, readiness = pool usable and not draining)",
            DefaultValueFactory = _ => string.Empty,
        };
        var timeout = new Option<double>("--timeout", "-t")
        {
            Description = "Deadline of the check in seconds",
            DefaultValueFactory = _ => 5,
        };
        timeout.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() is not > 0)
            {
                result.AddError("--timeout must be a positive number of seconds");
            }
        });

        var command = new RootCommand("PmemService health: exit 0 when the gRPC health service is SERVING, 1 otherwise.")
        {
            address,
            service,
            timeout,
        };
        command.SetAction((parseResult, cancellationToken) =>
            CheckAsync(parseResult.GetValue(address)!, parseResult.GetValue(service) ?? string.Empty, parseResult.GetValue(timeout), cancellationToken));

        var parsed = command.Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var error in parsed.Errors)
            {
                Console.Error.WriteLine($"health: {error.Message} (see PmemService health --help)");
            }

            return 1;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
    }

    private static async Task<int> CheckAsync(string address, string service, double timeoutSeconds, CancellationToken cancellationToken)
    {
        var shown = string.IsNullOrEmpty(service) ? "\"\"" : service;
        try
        {
            var endpoint = PmemEndpoint.Parse(address);
            using var channel = GrpcChannel.ForAddress(endpoint.ChannelAddress, new GrpcChannelOptions { HttpHandler = endpoint.CreateHttpHandler() });
            var client = new Health.HealthClient(channel);
            var response = await client.CheckAsync(new HealthCheckRequest { Service = service },
                deadline: DateTime.UtcNow.AddSeconds(timeoutSeconds), cancellationToken: cancellationToken).ConfigureAwait(false);
            var serving = response.Status == HealthCheckResponse.Types.ServingStatus.Serving;
            Console.WriteLine($"{response.Status.ToString().ToUpperInvariant()}: service {shown} at {address}");
            return serving ? 0 : 1;
        }
        catch (RpcException e)
        {
            Console.WriteLine($"NOT SERVING: service {shown} at {address}: {e.StatusCode} {e.Status.Detail}");
            return 1;
        }
        catch (Exception e) when (e is FormatException or UriFormatException or ArgumentException or InvalidOperationException)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"NOT SERVING: bad address '{address}': {e.Message}"));
            return 1;
        }
    }
}
