using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using PmemService.Contracts.V1;
using static PmemService.Server.Tests.TestHelpers;
using PmemRpcClient = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Server.Tests;

/// <summary>
/// Issue 12 item 3: the TCP endpoint with PmemService:TcpAuthentication — HTTPS, mutual TLS
/// (Microsoft.AspNetCore.Authentication.Certificate) and bearer tokens (JwtBearer, keys from a
/// directory re-read on change). Every CA, certificate and key is made in the test.
/// </summary>
public sealed class TcpAuthenticationTests : IAsyncLifetime
{
    private readonly X509Certificate2 _ca = TestPki.CreateCa("pmem test CA");
    private readonly X509Certificate2 _rogueCa = TestPki.CreateCa("pmem test CA"); // same name, other key
    private readonly (RSA Key, string PublicPem) _signing = TestPki.CreateSigningKey();
    private PmemTestServer _server = null!;
    private string _keysDir = null!;

    public async Task InitializeAsync() => _server = await StartAsync(certificates: true, tokens: true);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<PmemTestServer> StartAsync(bool certificates, bool tokens)
    {
        var (server, keys) = await TestPki.StartTcpAuthenticatedAsync(_ca, _signing.PublicPem, certificates, tokens);
        _keysDir = keys;
        return server;
    }

    private GrpcChannel Channel(PmemTestServer server, X509Certificate2? clientCertificate = null) =>
        GrpcChannel.ForAddress(TestPki.HttpsAddress(server), new GrpcChannelOptions { HttpHandler = TestPki.TrustingHandler(_ca, clientCertificate), DisposeHttpClient = true });

    private static Metadata Bearer(string token) => new() { { "authorization", "Bearer " + token } };

    private string Token(string subject = "app-1", DateTime? expires = null, RSA? key = null, string kid = "k1", string audience = TestPki.Audience) =>
        TestPki.Token(key ?? _signing.Key, kid, subject, audience, TestPki.Issuer, expires);

    /// <summary>One call of every pmem.v1 RPC (unary, server streaming, client streaming) with the given headers.</summary>
    private static IEnumerable<(string Rpc, Func<Task> Call)> EveryRpc(PmemRpcClient client, string name, Metadata? headers = null)
    {
        yield return ("MapRegion", async () => await client.MapRegionAsync(new MapRegionRequest { Name = name, Size = 4096, CreateIfMissing = true }, headers));
        yield return ("GetRegion", async () => await client.GetRegionAsync(new GetRegionRequest { Name = name }, headers));
        yield return ("ListRegions", async () => await client.ListRegionsAsync(new ListRegionsRequest(), headers));
        yield return ("WriteRegion", async () => await client.WriteRegionAsync(new WriteRegionRequest { Name = name, Data = ByteString.CopyFromUtf8("x") }, headers));
        yield return ("ReadRegion", async () => await client.ReadRegionAsync(new ReadRegionRequest { Name = name, Length = 1 }, headers));
        yield return ("PersistRegion", async () => await client.PersistRegionAsync(new PersistRegionRequest { Name = name }, headers));
        yield return ("StreamReadRegion", async () =>
        {
            using var call = client.StreamReadRegion(new StreamReadRegionRequest { Name = name }, headers);
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        });
        yield return ("StreamWriteRegion", async () =>
        {
            using var call = client.StreamWriteRegion(headers);
            try
            {
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = name } });
                await call.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // The service answered before the request stream was written: its status is the call's (below).
            }

            await call;
        });
        yield return ("UnmapRegion", async () => await client.UnmapRegionAsync(new UnmapRegionRequest { Name = name }, headers));
        yield return ("DeleteRegion", async () => await client.DeleteRegionAsync(new DeleteRegionRequest { Name = name, Force = true }, headers));
    }

    private async Task AssertEveryRpcRefused(PmemRpcClient client, Metadata? headers, string reason)
    {
        var name = UniqueName("victim");
        await CreateAsync(_server.Uds, name, 4096); // exists, owned by the socket caller
        foreach (var (rpc, call) in EveryRpc(client, name, headers))
        {
            var (exception, _, _) = await AssertError(call, StatusCode.Unauthenticated, reason);
            Assert.False(string.IsNullOrEmpty(exception.Status.Detail), rpc);
        }

        Assert.True((await _server.Uds.GetRegionAsync(new GetRegionRequest { Name = name })).Region.Mapped); // untouched
    }

    [Fact]
    public async Task No_credentials_every_rpc_is_unauthenticated_and_health_is_served()
    {
        using var channel = Channel(_server);
        await AssertEveryRpcRefused(new PmemRpcClient(channel), null, "UNAUTHENTICATED");
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving,
            (await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "readiness" })).Status);
        Assert.Contains(_server.Logs.WithEventName("TcpCallerUnauthenticated"), e => e.Properties["Reason"].ToString() == "\"UNAUTHENTICATED\"");
    }

    [Fact]
    public async Task Certificate_from_an_unknown_ca_is_invalid_credentials()
    {
        using var rogue = TestPki.Issue(_rogueCa, "app-1", server: false);
        using var channel = Channel(_server, rogue);
        await AssertEveryRpcRefused(new PmemRpcClient(channel), null, "INVALID_CREDENTIALS");
    }

    [Fact]
    public async Task Server_certificate_presented_as_client_certificate_is_invalid_credentials()
    {
        using var wrongUse = TestPki.Issue(_ca, "app-1", server: true); // right CA, no clientAuth EKU
        using var channel = Channel(_server, wrongUse);
        await AssertError(async () => await new PmemRpcClient(channel).ListRegionsAsync(new ListRegionsRequest()), StatusCode.Unauthenticated, "INVALID_CREDENTIALS");
    }

    [Fact]
    public async Task Wrong_token_signature_audience_and_expired_token_are_refused()
    {
        using var channel = Channel(_server);
        var client = new PmemRpcClient(channel);
        using var other = RSA.Create(2048);
        await AssertEveryRpcRefused(client, Bearer(Token(key: other)), "INVALID_CREDENTIALS");
        await AssertError(async () => await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token(audience: "someone-else"))), StatusCode.Unauthenticated, "INVALID_CREDENTIALS");
        await AssertError(async () => await client.ListRegionsAsync(new ListRegionsRequest(), Bearer("not.a.jwt")), StatusCode.Unauthenticated, "INVALID_CREDENTIALS");
        await AssertEveryRpcRefused(client, Bearer(Token(expires: DateTime.UtcNow.AddMinutes(-5))), "TOKEN_EXPIRED");
    }

    [Fact]
    public async Task Valid_certificate_or_token_may_use_every_rpc()
    {
        using var cert = TestPki.Issue(_ca, "app-1", server: false);
        using var certChannel = Channel(_server, cert);
        using var plainChannel = Channel(_server);
        foreach (var (client, headers) in new[] { (new PmemRpcClient(certChannel), (Metadata?)null), (new PmemRpcClient(plainChannel), Bearer(Token())) })
        {
            var name = UniqueName("ok");
            foreach (var (rpc, call) in EveryRpc(client, name, headers))
            {
                try
                {
                    await call();
                }
                catch (RpcException e)
                {
                    Assert.Fail($"{rpc}: {e.Status}");
                }
            }

            Assert.False(File.Exists(Path.Combine(_server.PoolPath, name))); // DeleteRegion ran
        }
    }

    [Fact]
    public async Task Signing_keys_rotate_without_a_restart()
    {
        using var channel = Channel(_server);
        var client = new PmemRpcClient(channel);
        using var next = RSA.Create(2048);
        await AssertError(async () => await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token(key: next, kid: "k2"))), StatusCode.Unauthenticated, "INVALID_CREDENTIALS");

        // Kubernetes Secret style: the new key appears, later the old one goes.
        await File.WriteAllTextAsync(Path.Combine(_keysDir, "k2.pem"), next.ExportSubjectPublicKeyInfoPem());
        await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token(key: next, kid: "k2")));
        await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token()));
        File.Delete(Path.Combine(_keysDir, "k1.pem"));
        await AssertError(async () => await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token())), StatusCode.Unauthenticated, "INVALID_CREDENTIALS");
        await client.ListRegionsAsync(new ListRegionsRequest(), Bearer(Token(key: next, kid: "k2")));
    }

    [Fact]
    public async Task Certificate_only_requires_a_client_certificate_in_the_handshake()
    {
        await using var server = await StartAsync(certificates: true, tokens: false);
        using (var channel = Channel(server))
        {
            var e = await Assert.ThrowsAsync<RpcException>(async () => await new PmemRpcClient(channel).ListRegionsAsync(new ListRegionsRequest()));
            // The TLS handshake fails: a transport error, no status from the service.
            Assert.Contains(e.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
            Assert.Null(e.GetRpcStatus());
        }

        using var cert = TestPki.Issue(_ca, "app-1", server: false);
        using (var channel = Channel(server, cert))
        {
            await new PmemRpcClient(channel).ListRegionsAsync(new ListRegionsRequest());
        }
    }

    [Fact]
    public async Task Unix_socket_callers_need_no_tcp_credentials()
    {
        var name = UniqueName("uds");
        await CreateAsync(_server.Uds, name, 4096);
        Assert.Contains((await _server.Uds.ListRegionsAsync(new ListRegionsRequest())).Regions, r => r.Name == name);
    }
}
