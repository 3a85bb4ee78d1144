using System.Globalization;
using System.Net;

namespace PmemService.Server;

/// <summary>
/// Service configuration, bound from the "PmemService" section (environment: <c>PmemService__Key</c>)
/// and validated when the host starts.
/// </summary>
public sealed class PmemServiceOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "PmemService";

    /// <summary>Pool directory holding one file per region (relative paths resolve against the working directory).</summary>
    public string PoolPath { get; set; } = "data/pool";

    /// <summary>Where sysfs is mounted, for NVDIMM bad-block lookups (default /sys; a container may
    /// bind-mount the host's elsewhere).</summary>
    public string SysfsRoot { get; set; } = "/sys";

    /// <summary>Unix domain socket path; empty disables the socket listener.</summary>
    public string UnixSocketPath { get; set; } = "data/pmem.sock";

    /// <summary>Octal file mode set on the socket after bind (Kestrel creates it with the process umask).</summary>
    public string UnixSocketMode { get; set; } = "0660";

    /// <summary>TCP endpoint "address:port" (for example 127.0.0.1:5001, 0.0.0.0:5001, [::1]:5001,
    /// localhost:5001; port 0 picks a free port); empty disables TCP.</summary>
    public string TcpEndpoint { get; set; } = "127.0.0.1:5001";

    /// <summary>Refuse to start unless the pool is on a DAX filesystem where MAP_SYNC works.</summary>
    public bool RequireDax { get; set; }

    /// <summary>Largest region a client may create, in bytes (RESOURCE_EXHAUSTED beyond).</summary>
    public long MaxRegionSize { get; set; } = 64L << 30;

    /// <summary>Upper bound on the sum of the sizes of all mapped regions, in bytes.</summary>
    public long MaxMappedBytes { get; set; } = 256L << 30;

    /// <summary>
    /// At PAGE granularity, how many msyncs of one region may run at once for persisted writes; callers
    /// beyond it are group-committed (one msync covering all of them, after one of the running ones
    /// returns). 1 (default) = strict one-at-a-time group commit; see docs/benchmarks.md for the measurements.
    /// </summary>
    public int PageSyncParallelism { get; set; } = 1;

    /// <summary>
    /// Write zeros over every new region file after allocating it, before it is fsynced and renamed into
    /// place (default false; <see cref="Pmem2.Pmem2Files.WriteZeros"/>). <c>fallocate</c> leaves
    /// <i>unwritten</i> extents: on ext4 and xfs the first persist of each page then also converts its
    /// extent, so that msync writes extent and inode metadata too (measured at PAGE on ext4: the first
    /// persisted 4 KiB write of a page 1.5x a rewrite, 1.0x with this; docs/benchmarks.md), and on a DAX
    /// filesystem the first write fault of each page under MAP_SYNC commits that metadata inside the fault.
    /// Zero-filling pays it once, at creation: <c>MapRegion</c> with <c>create_if_missing</c> then writes the
    /// whole size (seconds per GiB on a virtual disk; cancelled with the call, leaving nothing behind).
    /// Regions that already exist are not changed.
    /// </summary>
    public bool ZeroFillOnCreate { get; set; }

    /// <summary>Serve grpc.reflection.v1 and v1alpha (so grpcurl works without proto files).</summary>
    public bool EnableReflection { get; set; } = true;

    /// <summary>
    /// Serve the data-plane RPCs (pmem.v1) over TCP, which has no caller identity. Default false: TCP
    /// serves health (and reflection when enabled) and region calls there are PERMISSION_DENIED
    /// <c>UNIX_SOCKET_REQUIRED</c>; the data plane is on the Unix socket, where the peer's uid/gid
    /// are known (SO_PEERCRED). Turning it on lets anyone who reaches the port use every region.
    /// </summary>
    public bool AllowDataPlaneOverTcp { get; set; }

    /// <summary>
    /// Let the pool directory's group read the pool: the pool is created 0750 and region files 0640
    /// (instead of 0700 / 0600). The group is the directory's group (a setgid parent, or the
    /// Kubernetes fsGroup); the service never chmods or chowns an existing pool.
    /// </summary>
    public bool PoolGroupAccess { get; set; }

    /// <summary>
    /// Unix socket callers allowed by uid (SO_PEERCRED). With both this and <see cref="AllowedGids"/>
    /// empty, every caller the socket mode lets in is allowed; otherwise a caller whose uid is in this
    /// list or whose primary gid is in <see cref="AllowedGids"/> is allowed and the rest are
    /// PERMISSION_DENIED <c>PEER_NOT_ALLOWED</c>. The service's own uid is not implied.
    /// </summary>
    public List<uint> AllowedUids { get; set; } = [];

    /// <summary>Unix socket callers allowed by primary gid (SO_PEERCRED); see <see cref="AllowedUids"/>.</summary>
    public List<uint> AllowedGids { get; set; } = [];

    /// <summary>
    /// Streaming calls (StreamReadRegion, StreamWriteRegion) one caller identity may have open at once
    /// (Unix socket uid, TCP certificate subject or token subject); more are RESOURCE_EXHAUSTED
    /// <c>STREAM_LIMIT</c>. 0 = unlimited.
    /// </summary>
    public int MaxConcurrentStreamsPerIdentity { get; set; } = 64;

    /// <summary>
    /// Who may use which region (README "Per-region access"). <see cref="RegionAccessMode.Isolated"/> (default):
    /// every region has an owner (its creator) and an access list; a caller sees and uses only regions it
    /// owns or is listed on. <see cref="RegionAccessMode.Shared"/>: every admitted caller uses every region
    /// (the behaviour before per-region access); owners are still recorded and quotas still apply.
    /// </summary>
    public RegionAccessMode RegionAccess { get; set; } = RegionAccessMode.Isolated;

    /// <summary>Socket callers with uid 0 bypass access lists (they can read the region files anyway). Default true.</summary>
    public bool RootIsRegionSuperuser { get; set; } = true;

    /// <summary>More identities that bypass access lists: "uid:N" or "sub:SUBJECT" (an operator's token).</summary>
    public List<string> RegionSuperusers { get; set; } = [];

    /// <summary>Regions one owner may have in the pool (RESOURCE_EXHAUSTED <c>REGION_COUNT_QUOTA</c> beyond); 0 = unlimited.</summary>
    public int MaxRegionsPerIdentity { get; set; }

    /// <summary>Bytes of mapped regions one owner may have (charged to the region's owner when it is mapped;
    /// RESOURCE_EXHAUSTED <c>MAPPED_BYTES_QUOTA</c> beyond); 0 = only the global MaxMappedBytes.</summary>
    public long MaxMappedBytesPerIdentity { get; set; }

    /// <summary>WatchRegion: events kept per region for watchers that resume with after_sequence (issue 14).</summary>
    public int WatchHistoryLength { get; set; } = 4096;

    /// <summary>WatchRegion: events queued for one watcher that reads too slowly before it is ended with
    /// DATA_LOSS WATCH_HISTORY_OVERFLOW (it may resume from the history).</summary>
    public int WatchBufferLength { get; set; } = 4096;

    /// <summary>Resumable uploads: records kept per region (the least recently updated is dropped beyond this).</summary>
    public int MaxUploadsPerRegion { get; set; } = 16;

    /// <summary>Resumable uploads: a record not updated for this long is dropped.</summary>
    public TimeSpan UploadRecordTtl { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Resumable uploads: a stream with an upload id persists and records its progress every this many bytes
    /// (so a server crash loses at most this much progress; 0 = only when the stream ends).</summary>
    public long UploadCheckpointBytes { get; set; } = 64L << 20;

    /// <summary>Largest incoming gRPC message (a WriteRegion payload or one stream chunk, plus envelope).</summary>
    public int MaxReceiveMessageSize { get; set; } = (4 << 20) + (64 << 10);

    /// <summary>Largest outgoing gRPC message.</summary>
    public int MaxSendMessageSize { get; set; } = (4 << 20) + (64 << 10);

    /// <summary>Largest unary ReadRegion length; the default fits a client's default 4 MiB receive limit.</summary>
    public int MaxUnaryReadLength { get; set; } = (4 << 20) - (64 << 10);

    /// <summary>StreamReadRegion chunk size when the request gives 0.</summary>
    public int DefaultReadChunkSize { get; set; } = 64 << 10;

    /// <summary>Largest StreamReadRegion chunk size a request may ask for.</summary>
    public int MaxReadChunkSize { get; set; } = 1 << 20;

    /// <summary>Kestrel HTTP/2 per-connection receive window (bytes); raise with large chunks.</summary>
    public int Http2ConnectionWindowSize { get; set; } = 16 << 20;

    /// <summary>Kestrel HTTP/2 per-stream receive window (bytes), at most the connection window.</summary>
    public int Http2StreamWindowSize { get; set; } = 4 << 20;

    /// <summary>
    /// TCP endpoint "address:port" of the Prometheus scrape endpoint (<c>GET /metrics</c>, HTTP/1.1, its own
    /// listener because the gRPC listeners speak HTTP/2 only); empty (the default) disables it.
    /// </summary>
    public string MetricsEndpoint { get; set; } = string.Empty;

    /// <summary>The resolved pool directory.</summary>
    internal string FullPoolPath => Path.GetFullPath(PoolPath);

    /// <summary>Mode the pool directory is created with: 0700, or 0750 with <see cref="PoolGroupAccess"/>.</summary>
    internal UnixFileMode PoolDirectoryMode => UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | (PoolGroupAccess ? UnixFileMode.GroupRead | UnixFileMode.GroupExecute : 0);

    /// <summary>Mode region files are created with: 0600, or 0640 with <see cref="PoolGroupAccess"/>.</summary>
    internal UnixFileMode RegionFileMode => UnixFileMode.UserRead | UnixFileMode.UserWrite
        | (PoolGroupAccess ? UnixFileMode.GroupRead : 0);

    /// <summary>The resolved socket path, or null when disabled.</summary>
    internal string? FullUnixSocketPath => string.IsNullOrWhiteSpace(UnixSocketPath) ? null : Path.GetFullPath(UnixSocketPath);

    /// <summary>Parses <see cref="UnixSocketMode"/>.</summary>
    internal static bool TryParseMode(string text, out UnixFileMode mode)
    {
        mode = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        try
        {
            var value = Convert.ToInt32(text.Trim(), 8);
            if (value is < 0 or > 0x1FF)
            {
                return false;
            }

            mode = (UnixFileMode)value;
            return true;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            return false;
        }
    }

    /// <summary>Parses <see cref="TcpEndpoint"/>: null endpoint with isLocalhost for "localhost:port".</summary>
    internal static bool TryParseTcpEndpoint(string text, out IPEndPoint? endpoint, out bool isLocalhost, out int port)
    {
        endpoint = null;
        isLocalhost = false;
        port = 0;
        text = text.Trim();
        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            isLocalhost = true;
            return int.TryParse(text.AsSpan("localhost:".Length), NumberStyles.None, CultureInfo.InvariantCulture, out port)
                && port is > 0 and <= 65535;
        }

        if (!IPEndPoint.TryParse(text, out endpoint) || !text.Contains(':', StringComparison.Ordinal) || text.EndsWith(']'))
        {
            endpoint = null;
            return false;
        }

        port = endpoint.Port;
        return true;
    }
}
