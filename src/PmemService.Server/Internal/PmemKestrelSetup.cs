using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>Kestrel listeners from <see cref="PmemServiceOptions"/>: HTTP/2 (plaintext, prior knowledge) on the Unix socket and on TCP.</summary>
internal sealed class PmemKestrelSetup : IConfigureOptions<KestrelServerOptions>
{
    private readonly IOptions<PmemServiceOptions> _options;
    private readonly IOptions<PmemTcpAuthenticationOptions> _tcpAuthentication;
    private readonly ILogger<PmemKestrelSetup> _logger;

    public PmemKestrelSetup(IOptions<PmemServiceOptions> options, IOptions<PmemTcpAuthenticationOptions> tcpAuthentication, ILogger<PmemKestrelSetup> logger)
    {
        _options = options;
        _tcpAuthentication = tcpAuthentication;
        _logger = logger;
    }

    public void Configure(KestrelServerOptions kestrel)
    {
        var options = _options.Value;
        kestrel.Limits.Http2.InitialConnectionWindowSize = options.Http2ConnectionWindowSize;
        kestrel.Limits.Http2.InitialStreamWindowSize = options.Http2StreamWindowSize;

        var socket = options.FullUnixSocketPath;
        if (socket is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
            RemoveStaleSocket(socket);
            kestrel.ListenUnixSocket(socket, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.Use(PeerIdentity.ConnectionMiddleware(_logger)); // SO_PEERCRED once per connection
            });
        }

        if (!string.IsNullOrWhiteSpace(options.TcpEndpoint)
            && PmemServiceOptions.TryParseTcpEndpoint(options.TcpEndpoint, out var endpoint, out var isLocalhost, out var port))
        {
            var tcp = _tcpAuthentication.Value;
            void Configure(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http2;
                if (tcp.TlsEnabled)
                {
                    listen.UseHttps(PmemTls.HttpsOptions(tcp));
                }
            }

            if (isLocalhost)
            {
                kestrel.ListenLocalhost(port, Configure);
            }
            else
            {
                kestrel.Listen(endpoint!, Configure);
            }

            if (tcp.Enabled)
            {
                PmemLog.TcpAuthenticationEnabled(_logger, options.TcpEndpoint, tcp.CertificatesEnabled, tcp.JwtEnabled);
            }
            else if (options.AllowDataPlaneOverTcp)
            {
                PmemLog.DataPlaneOverTcpUnauthenticated(_logger, options.TcpEndpoint);
            }
        }

        if (!string.IsNullOrWhiteSpace(options.MetricsEndpoint)
            && PmemServiceOptions.TryParseTcpEndpoint(options.MetricsEndpoint, out var metricsEndpoint, out var metricsLocalhost, out var metricsPort))
        {
            if (metricsLocalhost)
            {
                kestrel.ListenLocalhost(metricsPort, PmemPrometheus.ConfigureListener);
            }
            else
            {
                kestrel.Listen(metricsEndpoint!, PmemPrometheus.ConfigureListener);
            }
        }
    }

    /// <summary>Deletes a socket file left by a crashed server, but never one a live server answers on.</summary>
    private void RemoveStaleSocket(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new InvalidOperationException($"Another process is listening on the Unix socket '{path}' (PmemService:UnixSocketPath).");
            }
            catch (SocketException)
            {
                // Nobody listens: the file is stale.
            }
        }

        File.Delete(path);
        PmemLog.StaleSocketRemoved(_logger, path);
    }
}
