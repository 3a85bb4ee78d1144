using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;

namespace PmemService.Client;

/// <summary>TLS and bearer-token plumbing of <see cref="PmemClient"/> (client certificate, private roots, token per call).</summary>
internal static class PmemClientSecurity
{
    public static void ConfigureTls(SocketsHttpHandler handler, PmemClientOptions options)
    {
        if (options.ClientCertificate is { } certificate)
        {
            handler.SslOptions.ClientCertificates = [certificate];
        }

        if (options.TrustedCertificateAuthorities is { Count: > 0 } roots)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, errors) =>
                presented is X509Certificate2 leaf && ChainsTo(leaf, roots, errors);
        }
    }

    /// <summary>Only name mismatches and "untrusted root" are re-judged; the chain must end at one of <paramref name="roots"/>.</summary>
    private static bool ChainsTo(X509Certificate2 leaf, X509Certificate2Collection roots, SslPolicyErrors errors)
    {
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1")); // serverAuth
        return chain.Build(leaf);
    }

    public static CallCredentials BearerCredentials(PmemClientOptions options) =>
        CallCredentials.FromInterceptor(async (context, metadata) =>
        {
            var token = options.BearerTokenProvider is { } provider
                ? await provider(context.CancellationToken).ConfigureAwait(false)
                : options.BearerToken;
            if (!string.IsNullOrEmpty(token))
            {
                metadata.Add("authorization", "Bearer " + token.Trim());
            }
        });
}
