using Grpc.Net.ClientFactory;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using PmemService.Client;
using PmemGrpc = PmemService.Contracts.V1.PmemService;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Dependency-injection registration of the PmemService client (grpc-dotnet <c>AddGrpcClient</c> shape).</summary>
public static class PmemClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the generated <see cref="PmemGrpc.PmemServiceClient"/> through <c>Grpc.Net.ClientFactory</c>
    /// (a typed gRPC client over a factory-managed handler that dials the Unix socket or TCP address),
    /// and a singleton <see cref="PmemClient"/> (the SDK: uploads, downloads, typed errors) for the same
    /// address and options.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="address">A PmemService address (<c>unix:///run/pmem/pmem.sock</c>, <c>unix:data/pmem.sock</c>, <c>http://127.0.0.1:5001</c>).</param>
    /// <param name="configure">Optional SDK options (deadlines, chunk sizes, retries).</param>
    /// <returns>The factory's builder, for interceptors or more handler configuration of the generated client.</returns>
    public static IHttpClientBuilder AddPmemClient(this IServiceCollection services, string address, Action<PmemClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(address);
        var endpoint = PmemEndpoint.Parse(address);

        var options = services.AddOptions<PmemClientOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(provider => new PmemClient(endpoint, provider.GetRequiredService<IOptions<PmemClientOptions>>().Value));

        return services
            .AddGrpcClient<PmemGrpc.PmemServiceClient>(factory => factory.Address = endpoint.ChannelAddress)
            .ConfigurePrimaryHttpMessageHandler(endpoint.CreateHttpHandler)
            .ConfigureChannel((provider, channel) =>
            {
                var sdk = provider.GetRequiredService<IOptions<PmemClientOptions>>().Value;
                channel.MaxReceiveMessageSize = sdk.MaxReceiveMessageSize ?? Math.Max(4 * 1024 * 1024, Math.Max(sdk.ChunkSize, sdk.ReadChunkSize) + 64 * 1024);
                channel.MaxSendMessageSize = sdk.MaxSendMessageSize;
            });
    }
}
