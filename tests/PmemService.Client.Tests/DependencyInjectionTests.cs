using Microsoft.Extensions.DependencyInjection;
using PmemService.Contracts.V1;
using PmemGrpc = PmemService.Contracts.V1.PmemService;

namespace PmemService.Client.Tests;

/// <summary>services.AddPmemClient(...) on Grpc.Net.ClientFactory against a real server.</summary>
public sealed class DependencyInjectionTests : IClassFixture<ServerFixture>
{
    private readonly PmemServer _server;

    public DependencyInjectionTests(ServerFixture fixture) => _server = fixture.Server;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AddPmemClient_registers_the_generated_client_and_the_sdk(bool tcp)
    {
        var services = new ServiceCollection();
        services.AddPmemClient(tcp ? _server.TcpAddress : _server.UnixAddress, o => o.DefaultDeadline = TimeSpan.FromSeconds(20));
        await using var provider = services.BuildServiceProvider();

        var name = TestData.Name("di");
        var generated = provider.GetRequiredService<PmemGrpc.PmemServiceClient>();
        var mapped = await generated.MapRegionAsync(new MapRegionRequest { Name = name, Size = 1 << 16, CreateIfMissing = true });
        Assert.True(mapped.Region.Created);

        var sdk = provider.GetRequiredService<PmemClient>();
        Assert.Same(sdk, provider.GetRequiredService<PmemClient>());
        Assert.Equal(TimeSpan.FromSeconds(20), sdk.Options.DefaultDeadline);
        await sdk.WriteAsync(name, 0, "hello"u8.ToArray());
        Assert.Equal("hello"u8.ToArray(), (await sdk.ReadAsync(name, 0, 5)).ToArray());
        await sdk.DeleteRegionAsync(name, force: true);
    }
}
