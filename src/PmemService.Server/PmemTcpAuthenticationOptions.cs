namespace PmemService.Server;

/// <summary>
/// Authentication of TCP callers, bound from "PmemService:TcpAuthentication" (environment:
/// <c>PmemService__TcpAuthentication__Key</c>). When <see cref="ClientCaPath"/> or
/// <see cref="JwtKeysPath"/> is set, the TCP endpoint is HTTPS (<see cref="ServerCertificatePath"/> /
/// <see cref="ServerKeyPath"/> are then required) and serves the region RPCs to authenticated callers
/// only (UNAUTHENTICATED otherwise); health and reflection stay open.
/// </summary>
public sealed class PmemTcpAuthenticationOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "PmemService:TcpAuthentication";

    /// <summary>PEM certificate (leaf first, then intermediates) of the HTTPS TCP endpoint.</summary>
    public string? ServerCertificatePath { get; set; }

    /// <summary>PEM private key of <see cref="ServerCertificatePath"/>.</summary>
    public string? ServerKeyPath { get; set; }

    /// <summary>
    /// PEM bundle of the CA certificates that issue client certificates: turns on mutual TLS
    /// (Microsoft.AspNetCore.Authentication.Certificate, chain built to these roots only, client
    /// authentication EKU required). Without <see cref="JwtKeysPath"/> a client certificate is required
    /// by the TLS handshake; with it, the handshake asks for one and a bearer token may stand in.
    /// </summary>
    public string? ClientCaPath { get; set; }

    /// <summary>
    /// A PEM public key file (RSA or EC, "BEGIN PUBLIC KEY") or a directory of them (a mounted
    /// Kubernetes Secret): turns on bearer tokens (Microsoft.AspNetCore.Authentication.JwtBearer).
    /// The key id of a file is its name without extension. Files are re-read when they change,
    /// so keys rotate without a restart.
    /// </summary>
    public string? JwtKeysPath { get; set; }

    /// <summary>Required "iss" of tokens (unchecked when empty).</summary>
    public string? JwtIssuer { get; set; }

    /// <summary>Required "aud" of tokens (unchecked when empty).</summary>
    public string? JwtAudience { get; set; }

    /// <summary>Clock skew allowed on "exp" / "nbf".</summary>
    public TimeSpan JwtClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether mutual TLS is configured.</summary>
    public bool CertificatesEnabled => !string.IsNullOrWhiteSpace(ClientCaPath);

    /// <summary>Whether bearer tokens are configured.</summary>
    public bool JwtEnabled => !string.IsNullOrWhiteSpace(JwtKeysPath);

    /// <summary>Whether TCP authentication (either mechanism) is configured.</summary>
    public bool Enabled => CertificatesEnabled || JwtEnabled;

    /// <summary>Whether the TCP endpoint is HTTPS.</summary>
    public bool TlsEnabled => !string.IsNullOrWhiteSpace(ServerCertificatePath);
}
