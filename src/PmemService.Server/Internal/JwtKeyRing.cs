using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace PmemService.Server.Internal;

/// <summary>
/// Token signing keys from PmemService:TcpAuthentication:JwtKeysPath (a PEM public key file or a
/// directory of them, such as a mounted Kubernetes Secret, whose files are symlinks that the kubelet
/// swaps atomically). Before each use the entries' identity (resolved path, size, mtime) is compared
/// with the last load, and the keys are re-read when it changed: rotation needs no restart.
/// </summary>
internal sealed class JwtKeyRing
{
    private readonly string? _path;
    private readonly Lock _gate = new();
    private string _fingerprint = string.Empty;
    private IReadOnlyList<SecurityKey> _keys = [];

    public JwtKeyRing(IOptions<PmemTcpAuthenticationOptions> options)
    {
        _path = string.IsNullOrWhiteSpace(options.Value.JwtKeysPath) ? null : Path.GetFullPath(options.Value.JwtKeysPath);
    }

    /// <summary>The current keys; those whose id is <paramref name="kid"/> first when a kid is given.</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid)
    {
        var keys = Current();
        if (string.IsNullOrEmpty(kid))
        {
            return keys;
        }

        var match = keys.Where(k => k.KeyId == kid).ToList();
        return match.Count > 0 ? match : keys;
    }

    public IReadOnlyList<SecurityKey> Current()
    {
        if (_path is null)
        {
            return [];
        }

        var files = Files(_path);
        var fingerprint = string.Join('|', files.Select(f =>
        {
            var info = new FileInfo(f);
            var target = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
            return target.Exists ? $"{f}>{target.FullName}:{target.Length}:{target.LastWriteTimeUtc.Ticks}" : f;
        }));
        lock (_gate)
        {
            if (fingerprint != _fingerprint)
            {
                _keys = Load(files);
                _fingerprint = fingerprint;
            }

            return _keys;
        }
    }

    private static List<string> Files(string path)
    {
        if (File.Exists(path))
        {
            return [path];
        }

        if (!Directory.Exists(path))
        {
            return [];
        }

        // Kubernetes Secret volumes hold "..data" and "..<timestamp>" entries next to the key links: skip dot entries.
        return [.. Directory.EnumerateFiles(path).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal)];
    }

    private static List<SecurityKey> Load(List<string> files)
    {
        var keys = new List<SecurityKey>();
        foreach (var file in files)
        {
            string pem;
            try
            {
                pem = File.ReadAllText(file);
            }
            catch (IOException)
            {
                continue; // swapped away while reading: the next call sees the new set
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            var kid = Path.GetFileNameWithoutExtension(file);
            if (TryRsa(pem) is { } rsa)
            {
                keys.Add(new RsaSecurityKey(rsa) { KeyId = kid });
            }
            else if (TryEc(pem) is { } ec)
            {
                keys.Add(new ECDsaSecurityKey(ec) { KeyId = kid });
            }
        }

        return keys;
    }

    private static RSA? TryRsa(string pem)
    {
        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(pem);
            return rsa;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            rsa.Dispose();
            return null;
        }
    }

    private static ECDsa? TryEc(string pem)
    {
        var ec = ECDsa.Create();
        try
        {
            ec.ImportFromPem(pem);
            return ec;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            ec.Dispose();
            return null;
        }
    }
}
