using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace PmemService.Server.Internal;

/// <summary>HTTPS of the TCP endpoint when PmemService:TcpAuthentication is configured.</summary>
internal static class PmemTls
{
    public static HttpsConnectionAdapterOptions HttpsOptions(PmemTcpAuthenticationOptions options) => new()
    {
        ServerCertificate = X509Certificate2.CreateFromPemFile(Path.GetFullPath(options.ServerCertificatePath!), Path.GetFullPath(options.ServerKeyPath!)),
        SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        // Certificate only: the handshake requires one. With bearer tokens too: it asks for one.
        ClientCertificateMode = options.CertificatesEnabled
            ? (options.JwtEnabled ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.RequireCertificate)
            : ClientCertificateMode.NoCertificate,
        // The chain is built against PmemService:TcpAuthentication:ClientCaPath (and only it) by the
        // Certificate authentication handler on every pmem.v1 call, which answers INVALID_CREDENTIALS
        // with a reason instead of a bare handshake failure.
        ClientCertificateValidation = static (_, _, _) => true,
    };
}
