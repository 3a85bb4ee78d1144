using System.Globalization;
using System.Net.Sockets;

namespace PmemService.Client;

/// <summary>
/// A parsed PmemService address: either a Unix domain socket path or an <c>http://</c> /
/// <c>https://</c> TCP endpoint.
/// </summary>
/// <remarks>
/// Accepted forms:
/// <list type="bullet">
/// <item><c>unix:///run/pmem/pmem.sock</c> — absolute socket path.</item>
/// <item><c>unix:relative/path.sock</c> or <c>unix:/abs/path.sock</c> — resolved against the
/// current directory when the endpoint is parsed.</item>
/// <item><c>http://host:port</c> (plaintext HTTP/2) or <c>https://host:port</c>.</item>
/// <item>A bare path containing a <c>/</c> or ending with <c>.sock</c> is taken as a socket path;
/// a bare <c>host:port</c> as <c>http://host:port</c>.</item>
/// </list>
/// </remarks>
public sealed class PmemEndpoint
{
    private PmemEndpoint(string original, string? socketPath, Uri? httpAddress)
    {
        Original = original;
        SocketPath = socketPath;
        HttpAddress = httpAddress;
    }

    /// <summary>The address exactly as given.</summary>
    public string Original { get; }

    /// <summary>The absolute Unix socket path, or <see langword="null"/> for a TCP endpoint.</summary>
    public string? SocketPath { get; }

    /// <summary>The HTTP address for a TCP endpoint, or <see langword="null"/> for a Unix socket.</summary>
    public Uri? HttpAddress { get; }

    /// <summary>Whether this endpoint is a Unix domain socket.</summary>
    public bool IsUnixSocket => SocketPath is not null;

    /// <summary>Parses an address (see the type remarks for the accepted forms).</summary>
    /// <exception cref="FormatException">The address is empty or malformed.</exception>
    public static PmemEndpoint Parse(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var text = address.Trim();
        if (text.Length == 0)
        {
            throw new FormatException("The PmemService address is empty.");
        }

        if (text.StartsWith("unix:", StringComparison.OrdinalIgnoreCase))
        {
            var rest = text["unix:".Length..];
            // unix:///abs/path (URI form with empty authority) or unix:path (relative or absolute).
            if (rest.StartsWith("//", StringComparison.Ordinal))
            {
                rest = rest[2..];
                if (!rest.StartsWith('/'))
                {
                    throw new FormatException(
                        $"Invalid Unix socket address '{address}': use unix:///absolute/path or unix:relative/path.");
                }
            }

            return FromSocketPath(address, Uri.UnescapeDataString(rest));
        }

        if (text.StartsWith("http://", StringComparison.OrdinalIgnoreCase) ||
            text.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
            {
                throw new FormatException($"Invalid PmemService address '{address}'.");
            }

            return new PmemEndpoint(address, null, new Uri(uri.GetLeftPart(UriPartial.Authority)));
        }

        if (text.Contains("://", StringComparison.Ordinal))
        {
            throw new FormatException(
                $"Unsupported scheme in address '{address}': use unix://, unix:, http:// or https://.");
        }

        if (text.Contains('/') || text.EndsWith(".sock", StringComparison.OrdinalIgnoreCase))
        {
            return FromSocketPath(address, text);
        }

        // host:port shorthand for plaintext HTTP/2.
        var colon = text.LastIndexOf(':');
        if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) &&
            port is > 0 and <= 65535 &&
            Uri.TryCreate("http://" + text, UriKind.Absolute, out var shorthand))
        {
            return new PmemEndpoint(address, null, new Uri(shorthand.GetLeftPart(UriPartial.Authority)));
        }

        throw new FormatException(
            $"Invalid PmemService address '{address}': expected unix:///path, unix:path, http://host:port or host:port.");
    }

    /// <summary>Parses an address, returning <see langword="false"/> instead of throwing.</summary>
    public static bool TryParse(string? address, out PmemEndpoint? endpoint)
    {
        endpoint = null;
        if (address is null)
        {
            return false;
        }

        try
        {
            endpoint = Parse(address);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>An endpoint for a Unix socket path (relative paths resolve against the current directory).</summary>
    public static PmemEndpoint ForUnixSocket(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return FromSocketPath("unix:" + path, path);
    }

    private static PmemEndpoint FromSocketPath(string original, string path)
    {
        if (path.Length == 0)
        {
            throw new FormatException($"Invalid Unix socket address '{original}': the path is empty.");
        }

        return new PmemEndpoint(original, Path.GetFullPath(path), null);
    }

    /// <summary>
    /// The address to give <c>GrpcChannel.ForAddress</c> (or a gRPC client factory): the HTTP address of a
    /// TCP endpoint; for a Unix socket <c>http://localhost</c> (the authority is arbitrary; the handler from
    /// <see cref="CreateHttpHandler"/> dials the socket).
    /// </summary>
    public Uri ChannelAddress => HttpAddress ?? new Uri("http://localhost");

    /// <summary>
    /// The HTTP handler every PmemService channel uses (the SDK, pmemctl, <c>PmemService health</c>,
    /// <c>AddPmemClient</c>): HTTP/2 keep-alive pings, several connections beyond 100 concurrent
    /// calls, and for a Unix socket a <see cref="SocketsHttpHandler.ConnectCallback"/> that dials it
    /// (with a clear error when the socket file does not exist).
    /// </summary>
    public SocketsHttpHandler CreateHttpHandler()
    {
        var handler = new SocketsHttpHandler
        {
            // Kestrel allows 100 concurrent streams per connection: open more connections beyond that.
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };

        if (SocketPath is { } socketPath)
        {
            var socketEndPoint = new UnixDomainSocketEndPoint(socketPath);
            handler.ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(socketEndPoint, cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch (SocketException ex) when (!File.Exists(socketPath))
                {
                    socket.Dispose();
                    throw new IOException($"the Unix socket {socketPath} does not exist (is PmemService running?)", ex);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return handler;
    }

    /// <summary>The canonical form: <c>unix:///abs/path</c> or <c>http://host:port</c>.</summary>
    public override string ToString() =>
        SocketPath is not null ? "unix://" + SocketPath : HttpAddress!.GetLeftPart(UriPartial.Authority);
}
