using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Authentication.Certificate;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace PmemService.Server.Internal;

/// <summary>Authentication schemes of the TCP endpoint and the caller-identity plumbing (issue 12).</summary>
internal static class PmemSecurityRegistration
{
    /// <summary>Scheme name of mutual TLS.</summary>
    public const string CertificateScheme = CertificateAuthenticationDefaults.AuthenticationScheme;

    /// <summary>Scheme name of bearer tokens.</summary>
    public const string BearerScheme = JwtBearerDefaults.AuthenticationScheme;

    public static IServiceCollection AddPmemSecurity(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PmemTcpAuthenticationOptions>()
            .Bind(configuration.GetSection(PmemTcpAuthenticationOptions.SectionName))
            .Validate(o => !o.Enabled || (!string.IsNullOrWhiteSpace(o.ServerCertificatePath) && !string.IsNullOrWhiteSpace(o.ServerKeyPath)),
                "PmemService:TcpAuthentication needs ServerCertificatePath and ServerKeyPath (HTTPS) when ClientCaPath or JwtKeysPath is set: credentials never travel in plaintext.")
            .Validate(o => !o.CertificatesEnabled || File.Exists(o.ClientCaPath), "PmemService:TcpAuthentication:ClientCaPath does not exist.")
            .ValidateOnStart();
        services.TryAddSingleton<JwtKeyRing>();
        services.TryAddSingleton<StreamLimiter>();
        services.TryAddSingleton<UnixPeerAdmission>();
        services.TryAddEnumerable(ServiceDescriptor.Transient<IStartupFilter, PeerIdentityStartupFilter>());

        services.AddAuthentication()
            .AddCertificate(CertificateScheme)
            .AddJwtBearer(BearerScheme);

        services.AddOptions<CertificateAuthenticationOptions>(CertificateScheme)
            .Configure<IOptions<PmemTcpAuthenticationOptions>>((certificate, tcp) =>
            {
                certificate.AllowedCertificateTypes = CertificateTypes.Chained;
                certificate.ChainTrustValidationMode = X509ChainTrustMode.CustomRootTrust;
                certificate.RevocationMode = X509RevocationMode.NoCheck; // offline CAs; short-lived certificates instead
                certificate.ValidateCertificateUse = true; // client authentication EKU
                certificate.ValidateValidityPeriod = true;
                if (tcp.Value.CertificatesEnabled)
                {
                    var roots = new X509Certificate2Collection();
                    roots.ImportFromPemFile(Path.GetFullPath(tcp.Value.ClientCaPath!));
                    certificate.CustomTrustStore.AddRange(roots);
                }
            });

        services.AddOptions<JwtBearerOptions>(BearerScheme)
            .Configure<IOptions<PmemTcpAuthenticationOptions>, JwtKeyRing>((jwt, tcp, keys) =>
            {
                var o = tcp.Value;
                jwt.MapInboundClaims = false;
                jwt.RequireHttpsMetadata = true;
                jwt.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidateIssuer = !string.IsNullOrWhiteSpace(o.JwtIssuer),
                    ValidIssuer = o.JwtIssuer,
                    ValidateAudience = !string.IsNullOrWhiteSpace(o.JwtAudience),
                    ValidAudience = o.JwtAudience,
                    ValidateLifetime = true,
                    RequireExpirationTime = true,
                    RequireSignedTokens = true,
                    ValidateIssuerSigningKey = true,
                    ClockSkew = o.JwtClockSkew,
                    IssuerSigningKeyResolver = (_, _, kid, _) => keys.Resolve(kid),
                    NameClaimType = "sub",
                };
            });

        return services;
    }
}
