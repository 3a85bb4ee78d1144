using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using PmemCtl;
using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>
/// Issue 12 item 3 from the client side: PmemClientOptions (ClientCertificate, TrustedCertificateAuthorities,
/// BearerToken / BearerTokenProvider) and pmemctl (--cert/--key, --ca, --token-file) against a real
/// service whose TCP endpoint is HTTPS with mutual TLS and bearer tokens. CAs, certificates and keys
/// are made in the test.
/// </summary>
public sealed class ClientSecurityTests : IAsyncLifetime
{
    private const string Audience = "pmem-service";
    private const string Issuer = "https://issuer.test";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "pmemc-tls-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly X509Certificate2 _ca = CreateCa();
    private readonly RSA _signing = RSA.Create(2048);
    private PmemServer _server = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        using var serverCert = Issue(_ca, "localhost", server: true);
        await File.WriteAllTextAsync(Path.Combine(_dir, "tls.crt"), serverCert.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(_dir, "tls.key"), serverCert.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        await File.WriteAllTextAsync(Path.Combine(_dir, "ca.crt"), _ca.ExportCertificatePem());
        Directory.CreateDirectory(Path.Combine(_dir, "keys"));
        await File.WriteAllTextAsync(Path.Combine(_dir, "keys", "k1.pem"), _signing.ExportSubjectPublicKeyInfoPem());
        _server = await PmemServer.StartAsync(new Dictionary<string, string?>
        {
            ["PmemService:AllowDataPlaneOverTcp"] = "false",
            ["PmemService:TcpAuthentication:ServerCertificatePath"] = Path.Combine(_dir, "tls.crt"),
            ["PmemService:TcpAuthentication:ServerKeyPath"] = Path.Combine(_dir, "tls.key"),
            ["PmemService:TcpAuthentication:ClientCaPath"] = Path.Combine(_dir, "ca.crt"),
            ["PmemService:TcpAuthentication:JwtKeysPath"] = Path.Combine(_dir, "keys"),
            ["PmemService:TcpAuthentication:JwtAudience"] = Audience,
            ["PmemService:TcpAuthentication:JwtIssuer"] = Issuer,
        });
        Assert.StartsWith("https://", _server.TcpAddress, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static X509Certificate2 CreateCa()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=pmem client test CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string subject, bool server)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
        }

        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), RandomNumberGenerator.GetBytes(12));
        return issued.CopyWithPrivateKey(key);
    }

    private string Token(string subject, DateTime? expires = null) => new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
    {
        Subject = new ClaimsIdentity([new Claim("sub", subject)]),
        Audience = Audience,
        Issuer = Issuer,
        NotBefore = DateTime.UtcNow.AddMinutes(-10),
        Expires = expires ?? DateTime.UtcNow.AddMinutes(30),
        SigningCredentials = new SigningCredentials(new RsaSecurityKey(_signing) { KeyId = "k1" }, SecurityAlgorithms.RsaSha256),
    });

    [Fact]
    public async Task Sdk_takes_a_certificate_or_a_token_and_checks_the_service_certificate()
    {
        var roots = new X509Certificate2Collection(_ca);
        using var cert = Issue(_ca, "sdk-app", server: false);
        var name = TestData.Name("tls");
        using (var byCert = new PmemClient(_server.TcpAddress, new PmemClientOptions { ClientCertificate = cert, TrustedCertificateAuthorities = roots }))
        {
            await byCert.MapRegionAsync(name, 4096, createIfMissing: true);
            Assert.Equal(4096UL, (await byCert.GetRegionAsync(name)).Size);
        }

        var calls = 0;
        using (var byToken = new PmemClient(_server.TcpAddress, new PmemClientOptions
        {
            TrustedCertificateAuthorities = roots,
            BearerTokenProvider = _ => { Interlocked.Increment(ref calls); return ValueTask.FromResult<string?>(Token("sdk-app")); },
        }))
        {
            await byToken.GetRegionAsync(name);
            await byToken.GetRegionAsync(name);
        }

        Assert.Equal(2, calls); // asked before every call (rotation)

        using (var noCreds = new PmemClient(_server.TcpAddress, new PmemClientOptions { TrustedCertificateAuthorities = roots }))
        {
            var e = await Assert.ThrowsAsync<PmemException>(async () => await noCreds.GetRegionAsync(name));
            Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
            Assert.Equal("UNAUTHENTICATED", e.Reason);
        }

        using (var expired = new PmemClient(_server.TcpAddress, new PmemClientOptions { TrustedCertificateAuthorities = roots, BearerToken = Token("sdk-app", DateTime.UtcNow.AddMinutes(-5)) }))
        {
            var e = await Assert.ThrowsAsync<PmemException>(async () => await expired.GetRegionAsync(name));
            Assert.Equal("TOKEN_EXPIRED", e.Reason);
        }

        // The service's certificate must chain to the given roots.
        using var rogueCa = CreateCa();
        using (var otherRoots = new PmemClient(_server.TcpAddress, new PmemClientOptions { ClientCertificate = cert, TrustedCertificateAuthorities = [rogueCa] }))
        {
            var e = await Assert.ThrowsAsync<PmemException>(async () => await otherRoots.GetRegionAsync(name));
            Assert.Contains(e.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal }); // the TLS handshake is refused by the client
            Assert.Null(e.Reason); // no answer from the service
        }

        Assert.Throws<ArgumentException>(() => new PmemClient("http://127.0.0.1:1", new PmemClientOptions { BearerToken = "x" }));
    }

    [Fact]
    public async Task Pmemctl_takes_a_certificate_or_a_token_file()
    {
        using var cert = Issue(_ca, "ctl-app", server: false);
        var certPath = Path.Combine(_dir, "client.crt");
        var keyPath = Path.Combine(_dir, "client.key");
        await File.WriteAllTextAsync(certPath, cert.ExportCertificatePem());
        await File.WriteAllTextAsync(keyPath, cert.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var tokenPath = Path.Combine(_dir, "token");
        await File.WriteAllTextAsync(tokenPath, Token("ctl-app") + "\n");
        var ca = Path.Combine(_dir, "ca.crt");
        var name = TestData.Name("ctl");

        (await CliRun.RunAsync(["--address", _server.TcpAddress, "--ca", ca, "--cert", certPath, "--key", keyPath, "map", name, "--size", "4KiB", "--create"])).AssertOk();
        (await CliRun.RunAsync(["--address", _server.TcpAddress, "--ca", ca, "--token-file", tokenPath, "write", name + "@0", "--text", "hi"])).AssertOk();
        var read = await CliRun.RunAsync(["--address", _server.TcpAddress, "--ca", ca, "--token-file", tokenPath, "read", name + "@0:2", "--format", "text"]);
        read.AssertOk();
        Assert.Contains("hi", read.Out, StringComparison.Ordinal);

        var none = await CliRun.RunAsync(["--address", _server.TcpAddress, "--ca", ca, "regions", "ls"]);
        Assert.Equal(ExitCodes.PermissionDenied, none.Code);
        Assert.StartsWith("error: UNAUTHENTICATED: ", none.Err, StringComparison.Ordinal);

        await File.WriteAllTextAsync(tokenPath, Token("ctl-app", DateTime.UtcNow.AddMinutes(-5)));
        var expired = await CliRun.RunAsync(["--address", _server.TcpAddress, "--ca", ca, "--token-file", tokenPath, "regions", "ls"]);
        Assert.StartsWith("error: TOKEN_EXPIRED: ", expired.Err, StringComparison.Ordinal);

        var usage = await CliRun.RunAsync(["--address", _server.TcpAddress, "--cert", certPath, "regions", "ls"]);
        Assert.Equal(ExitCodes.Usage, usage.Code);
    }

    private PmemClient Sdk(string subject) => new(_server.TcpAddress, new PmemClientOptions
    {
        TrustedCertificateAuthorities = [_ca],
        BearerTokenProvider = _ => ValueTask.FromResult<string?>(Token(subject)),
    });

    [Fact]
    public async Task Sdk_reads_and_changes_the_access_list_and_the_grantee_gets_exactly_its_rights()
    {
        using var alice = Sdk("alice");
        using var bob = Sdk("bob");
        var name = TestData.Name("acl");
        var created = await alice.MapRegionAsync(name, 4096, Granularity.Unspecified, createIfMissing: true);
        Assert.Equal("sub:alice", created.Owner);
        Assert.True(created.CallerRights.Admin);
        await alice.WriteAsync(name, 0, new byte[] { 1, 2, 3 });

        var missing = await Assert.ThrowsAsync<PmemException>(() => bob.GetRegionAsync(name));
        Assert.Equal(PmemErrorKind.RegionNotFound, missing.Kind);

        var access = await alice.SetRegionAccessAsync(name, [PmemClient.ParseAccessEntry("sub:bob=r")]);
        Assert.Equal("sub:alice", access.Owner);
        Assert.Equal("r", PmemClient.FormatRights(Assert.Single(access.Entries).Rights));
        Assert.Equal(new byte[] { 1, 2, 3 }, (await bob.ReadAsync(name, 0, 3)).ToArray());
        var denied = await Assert.ThrowsAsync<PmemException>(() => bob.WriteAsync(name, 0, new byte[] { 9 }));
        Assert.Equal(PmemErrorKind.PermissionDenied, denied.Kind);
        Assert.Equal("REGION_ACCESS_DENIED", denied.Reason);
        Assert.Equal("REGION_ACCESS_DENIED", (await Assert.ThrowsAsync<PmemException>(() => bob.GetRegionAccessAsync(name))).Reason);
        Assert.Equal("rwa", PmemClient.FormatRights(PmemClient.ParseAccessEntry("gid:5=a").Rights));
        Assert.Throws<FormatException>(() => PmemClient.ParseAccessEntry("bob=r"));
        Assert.Throws<FormatException>(() => PmemClient.ParseAccessEntry("uid:1=x"));
        await alice.DeleteRegionAsync(name, force: true);
    }

    [Fact]
    public async Task Pmemctl_access_get_set_grant_and_revoke()
    {
        var ca = Path.Combine(_dir, "ca.crt");
        var aliceToken = Path.Combine(_dir, "alice.token");
        var bobToken = Path.Combine(_dir, "bob.token");
        await File.WriteAllTextAsync(aliceToken, Token("alice"));
        await File.WriteAllTextAsync(bobToken, Token("bob"));
        string[] As(string token, params string[] args) => ["--address", _server.TcpAddress, "--ca", ca, "--token-file", token, .. args];
        var name = TestData.Name("ctlacl");
        (await CliRun.RunAsync(As(aliceToken, "map", name, "--size", "4KiB", "--create"))).AssertOk();

        var get = await CliRun.RunAsync(As(aliceToken, "--output", "json", "access", "get", name));
        get.AssertOk();
        using (var json = System.Text.Json.JsonDocument.Parse(get.Out))
        {
            Assert.Equal("sub:alice", json.RootElement.GetProperty("owner").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("entries").GetArrayLength());
        }

        var bobStat = await CliRun.RunAsync(As(bobToken, "regions", "stat", name));
        Assert.Equal(ExitCodes.NotFound, bobStat.Code);

        (await CliRun.RunAsync(As(aliceToken, "access", "grant", name, "sub:bob=r", "uid:1000=rw"))).AssertOk();
        var stat = await CliRun.RunAsync(As(bobToken, "--output", "json", "regions", "stat", name));
        stat.AssertOk();
        using (var json = System.Text.Json.JsonDocument.Parse(stat.Out))
        {
            Assert.Equal("sub:alice", json.RootElement.GetProperty("owner").GetString());
            Assert.Equal("r", json.RootElement.GetProperty("callerRights").GetString());
        }

        var write = await CliRun.RunAsync(As(bobToken, "write", name + "@0", "--text", "no"));
        Assert.Equal(ExitCodes.PermissionDenied, write.Code);
        Assert.StartsWith("error: REGION_ACCESS_DENIED: ", write.Err, StringComparison.Ordinal);

        (await CliRun.RunAsync(As(aliceToken, "access", "revoke", name, "sub:bob"))).AssertOk();
        var text = await CliRun.RunAsync(As(aliceToken, "access", "get", name));
        text.AssertOk();
        Assert.Contains("uid:1000", text.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("sub:bob", text.Out, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.NotFound, (await CliRun.RunAsync(As(bobToken, "regions", "stat", name))).Code);

        var set = await CliRun.RunAsync(As(aliceToken, "--output", "json", "access", "set", name, "--owner", "sub:bob", "--clear"));
        set.AssertOk();
        using (var json = System.Text.Json.JsonDocument.Parse(set.Out))
        {
            Assert.Equal("sub:bob", json.RootElement.GetProperty("owner").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("entries").GetArrayLength());
        }

        (await CliRun.RunAsync(As(bobToken, "regions", "stat", name))).AssertOk();
        Assert.Equal(ExitCodes.Usage, (await CliRun.RunAsync(As(bobToken, "access", "set", name))).Code);
        Assert.Equal(ExitCodes.Usage, (await CliRun.RunAsync(As(bobToken, "access", "set", name, "bob=r"))).Code);
        (await CliRun.RunAsync(As(bobToken, "rm", name, "--force"))).AssertOk();
    }
}
