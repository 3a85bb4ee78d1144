using System.Text;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>Validates <see cref="PmemServiceOptions"/> at start-up (ValidateOnStart) with messages that say what to fix.</summary>
internal sealed class PmemServiceOptionsValidator : IValidateOptions<PmemServiceOptions>
{
    // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
    private const int MaxSocketPathBytes = 107;

    public ValidateOptionsResult Validate(string? name, PmemServiceOptions options)
    {
        var errors = new List<string>();
        var section = PmemServiceOptions.SectionName;

        if (string.IsNullOrWhiteSpace(options.PoolPath))
        {
            errors.Add($"{section}:PoolPath must name the pool directory.");
        }

        var socket = options.FullUnixSocketPath;
        if (socket is not null && Encoding.UTF8.GetByteCount(socket) > MaxSocketPathBytes)
        {
            errors.Add($"{section}:UnixSocketPath '{socket}' is longer than the {MaxSocketPathBytes} bytes a Unix socket path may have.");
        }

        if (socket is not null && !PmemServiceOptions.TryParseMode(options.UnixSocketMode, out _))
        {
            errors.Add($"{section}:UnixSocketMode '{options.UnixSocketMode}' is not an octal file mode such as 0660.");
        }

        if (!string.IsNullOrWhiteSpace(options.TcpEndpoint) && !PmemServiceOptions.TryParseTcpEndpoint(options.TcpEndpoint, out _, out _, out _))
        {
            errors.Add($"{section}:TcpEndpoint '{options.TcpEndpoint}' is not 'address:port' (for example 127.0.0.1:5001 or [::]:5001).");
        }

        if (!string.IsNullOrWhiteSpace(options.MetricsEndpoint) && !PmemServiceOptions.TryParseTcpEndpoint(options.MetricsEndpoint, out _, out _, out _))
        {
            errors.Add($"{section}:MetricsEndpoint '{options.MetricsEndpoint}' is not 'address:port' (for example 127.0.0.1:9464 or 0.0.0.0:9464).");
        }

        if (socket is null && string.IsNullOrWhiteSpace(options.TcpEndpoint))
        {
            errors.Add($"{section}: both UnixSocketPath and TcpEndpoint are empty; at least one listener is required.");
        }

        if (options.WatchHistoryLength is < 1 or > 1 << 20 || options.WatchBufferLength is < 1 or > 1 << 20)
        {
            errors.Add($"{section}:WatchHistoryLength and WatchBufferLength must be between 1 and 1048576.");
        }

        if (options.MaxUploadsPerRegion is < 1 or > 16 || options.UploadRecordTtl <= TimeSpan.Zero || options.UploadCheckpointBytes < 0)
        {
            errors.Add($"{section}:MaxUploadsPerRegion must be between 1 and 16 (one extended attribute holds them), UploadRecordTtl positive and UploadCheckpointBytes not negative.");
        }

        if (options.MaxRegionSize <= 0)
        {
            errors.Add($"{section}:MaxRegionSize must be positive.");
        }

        if (options.MaxMappedBytes <= 0)
        {
            errors.Add($"{section}:MaxMappedBytes must be positive.");
        }

        if (options.PageSyncParallelism is < 1 or > 1024)
        {
            errors.Add($"{section}:PageSyncParallelism must be between 1 and 1024.");
        }

        if (!Enum.IsDefined(options.RegionAccess))
        {
            errors.Add($"{section}:RegionAccess must be Isolated or Shared.");
        }

        if (options.MaxRegionsPerIdentity < 0)
        {
            errors.Add($"{section}:MaxRegionsPerIdentity must not be negative (0 = unlimited).");
        }

        if (options.MaxMappedBytesPerIdentity < 0)
        {
            errors.Add($"{section}:MaxMappedBytesPerIdentity must not be negative (0 = only MaxMappedBytes).");
        }

        foreach (var superuser in options.RegionSuperusers)
        {
            if (!RegionAcl.IsPrincipal(superuser) || superuser.StartsWith("gid:", StringComparison.Ordinal))
            {
                errors.Add($"{section}:RegionSuperusers entry '{superuser}' is not 'uid:N' or 'sub:SUBJECT'.");
            }
        }

        if (options.MaxReceiveMessageSize < 64 << 10)
        {
            errors.Add($"{section}:MaxReceiveMessageSize must be at least 65536.");
        }

        if (options.MaxSendMessageSize < 64 << 10)
        {
            errors.Add($"{section}:MaxSendMessageSize must be at least 65536.");
        }

        if (options.MaxUnaryReadLength <= 0 || options.MaxUnaryReadLength > options.MaxSendMessageSize - 1024)
        {
            errors.Add($"{section}:MaxUnaryReadLength must be positive and leave 1024 bytes of envelope below MaxSendMessageSize ({options.MaxSendMessageSize}).");
        }

        if (options.MaxReadChunkSize <= 0 || options.MaxReadChunkSize > options.MaxSendMessageSize - 1024)
        {
            errors.Add($"{section}:MaxReadChunkSize must be positive and leave 1024 bytes of envelope below MaxSendMessageSize ({options.MaxSendMessageSize}).");
        }

        if (options.DefaultReadChunkSize <= 0 || options.DefaultReadChunkSize > options.MaxReadChunkSize)
        {
            errors.Add($"{section}:DefaultReadChunkSize must be positive and at most MaxReadChunkSize ({options.MaxReadChunkSize}).");
        }

        // Kestrel's own limits: windows between 64 KiB and 2^31-1, stream window <= connection window.
        if (options.Http2ConnectionWindowSize < 65535 || options.Http2StreamWindowSize < 65535
            || options.Http2StreamWindowSize > options.Http2ConnectionWindowSize)
        {
            errors.Add($"{section}:Http2StreamWindowSize and Http2ConnectionWindowSize must be at least 65535, the stream window at most the connection window.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
