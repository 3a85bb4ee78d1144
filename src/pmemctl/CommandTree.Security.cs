using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using PmemService.Client;

namespace PmemCtl;

/// <summary>Credentials for an https:// address: --cert/--key (mutual TLS), --ca (private roots), --token-file (bearer token).</summary>
internal sealed partial class CommandTree
{
    private readonly Option<string?> _cert = new("--cert")
    {
        Description = "PEM client certificate for mutual TLS on an https:// address (with --key)",
        Recursive = true,
    };

    private readonly Option<string?> _key = new("--key")
    {
        Description = "PEM private key of --cert",
        Recursive = true,
    };

    private readonly Option<string?> _ca = new("--ca")
    {
        Description = "PEM bundle of the roots the service's TLS certificate must chain to [default: the system trust store]",
        Recursive = true,
    };

    private readonly Option<string?> _tokenFile = new("--token-file")
    {
        Description = "File holding a bearer token (JWT), re-read before every call (rotation); needs an https:// address",
        Recursive = true,
    };

    private void AddSecurityOptions(RootCommand root)
    {
        root.Add(_cert);
        root.Add(_key);
        root.Add(_ca);
        root.Add(_tokenFile);
    }

    /// <summary>The client options the credential flags ask for, applied before the embedder's own.</summary>
    private Action<PmemClientOptions>? ClientConfiguration(ParseResult parseResult)
    {
        var cert = parseResult.GetValue(_cert);
        var key = parseResult.GetValue(_key);
        var ca = parseResult.GetValue(_ca);
        var tokenFile = parseResult.GetValue(_tokenFile);
        if ((cert is null) != (key is null))
        {
            throw new UsageException("--cert and --key go together");
        }

        if (cert is null && ca is null && tokenFile is null)
        {
            return _configureClient;
        }

        X509Certificate2? certificate = null;
        X509Certificate2Collection? roots = null;
        try
        {
            if (cert is not null)
            {
                certificate = X509Certificate2.CreateFromPemFile(cert, key);
            }

            if (ca is not null)
            {
                roots = [];
                roots.ImportFromPemFile(ca);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new UsageException($"cannot load credentials: {e.Message}");
        }

        return options =>
        {
            options.ClientCertificate = certificate;
            options.TrustedCertificateAuthorities = roots;
            if (tokenFile is not null)
            {
                options.BearerTokenProvider = async cancellationToken => (await File.ReadAllTextAsync(tokenFile, cancellationToken).ConfigureAwait(false)).Trim();
            }

            _configureClient?.Invoke(options);
        };
    }
}
