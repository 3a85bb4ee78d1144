using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace PmemService.Server.Tests;

/// <summary>Test CAs, certificates and tokens made in the test (CertificateRequest, JsonWebTokenHandler); nothing is checked in.</summary>
internal static class TestPki
{
    /// <summary>The JwtAudience and JwtIssuer of <see cref="StartTcpAuthenticatedAsync"/>'s servers.</summary>
    public const string Audience = "pmem-service";

    /// <inheritdoc cref="Audience"/>
    public const string Issuer = "https://issuer.test";

    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    public static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    public static X509Certificate2 Issue(X509Certificate2 ca, string subject, bool server, DateTimeOffset? notAfter = null)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(server ? ServerAuth : ClientAuth)], false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
            request.CertificateExtensions.Add(san.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(12);
        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter ?? DateTimeOffset.UtcNow.AddHours(12), serial);
        return issued.CopyWithPrivateKey(key);
    }

    public static void WritePem(X509Certificate2 certificate, string certificatePath, string? keyPath = null)
    {
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        if (keyPath is not null)
        {
            File.WriteAllText(keyPath, certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        }
    }

    public static (RSA Key, string PublicPem) CreateSigningKey()
    {
        var rsa = RSA.Create(2048);
        return (rsa, rsa.ExportSubjectPublicKeyInfoPem());
    }

    public static string Token(RSA key, string kid, string subject, string audience, string issuer, DateTime? expires = null, DateTime? notBefore = null)
    {
        var descriptor = new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity([new Claim("sub", subject)]),
            Audience = audience,
            Issuer = issuer,
            NotBefore = notBefore ?? DateTime.UtcNow.AddMinutes(-10),
            IssuedAt = notBefore ?? DateTime.UtcNow.AddMinutes(-10),
            Expires = expires ?? DateTime.UtcNow.AddMinutes(30),
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(key) { KeyId = kid }, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    /// <summary>
    /// A test server whose TCP endpoint is HTTPS (a localhost certificate issued by <paramref name="ca"/>) with
    /// PmemService:TcpAuthentication: client certificates chained to <paramref name="ca"/> when
    /// <paramref name="certificates"/>, bearer tokens signed by the key of <paramref name="signingPublicPem"/>
    /// (key id "k1", <see cref="Audience"/>, <see cref="Issuer"/>) when <paramref name="tokens"/>. The files live
    /// in the server's root; the JWT key directory is returned so a test can rotate keys.
    /// </summary>
    public static async Task<(PmemTestServer Server, string KeysDirectory)> StartTcpAuthenticatedAsync(
        X509Certificate2 ca, string signingPublicPem, bool certificates = true, bool tokens = true, Action<Dictionary<string, string?>>? configure = null)
    {
        var root = PmemTestServer.NewRoot();
        using (var serverCert = Issue(ca, "localhost", server: true))
        {
            WritePem(serverCert, Path.Combine(root, "tls.crt"), Path.Combine(root, "tls.key"));
        }

        var caPath = Path.Combine(root, "client-ca.crt");
        WritePem(ca, caPath);
        var keys = Path.Combine(root, "jwt-keys");
        Directory.CreateDirectory(keys);
        await File.WriteAllTextAsync(Path.Combine(keys, "k1.pem"), signingPublicPem);
        var server = await PmemTestServer.StartAsync(s =>
        {
            s.Remove("PmemService:AllowDataPlaneOverTcp");
            s["PmemService:TcpAuthentication:ServerCertificatePath"] = Path.Combine(root, "tls.crt");
            s["PmemService:TcpAuthentication:ServerKeyPath"] = Path.Combine(root, "tls.key");
            if (certificates)
            {
                s["PmemService:TcpAuthentication:ClientCaPath"] = caPath;
            }

            if (tokens)
            {
                s["PmemService:TcpAuthentication:JwtKeysPath"] = keys;
                s["PmemService:TcpAuthentication:JwtAudience"] = Audience;
                s["PmemService:TcpAuthentication:JwtIssuer"] = Issuer;
            }

            configure?.Invoke(s);
        }, root);
        return (server, keys);
    }

    /// <summary>The server's https://127.0.0.1:PORT address.</summary>
    public static string HttpsAddress(PmemTestServer server) =>
        server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Single(a => a.StartsWith("https://127.0.0.1:", StringComparison.Ordinal));

    /// <summary>A handler that trusts server certificates chained to <paramref name="ca"/> only, presenting <paramref name="clientCertificate"/> when given.</summary>
    public static SocketsHttpHandler TrustingHandler(X509Certificate2 ca, X509Certificate2? clientCertificate = null)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return certificate is X509Certificate2 c && chain.Build(c);
        };
        if (clientCertificate is not null)
        {
            handler.SslOptions.ClientCertificates = [clientCertificate];
        }

        return handler;
    }
}
