using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;
using PmemService.Contracts.V1;
using PmemGrpc = PmemService.Contracts.V1.PmemService;

namespace PmemService.Client;

/// <summary>
/// Client of PmemService over one long-lived gRPC channel (a Unix domain socket or TCP).
/// Thread-safe; create one per address and share it.
/// </summary>
/// <remarks>
/// Every call carries a deadline (<see cref="PmemClientOptions.DefaultDeadline"/>, or
/// <see cref="PmemClientOptions.TransferDeadline"/> for streams). Idempotent calls (get, list,
/// read, persist, stream read) are retried on UNAVAILABLE by gRPC's retry policy; writes, map, unmap
/// and delete never are. Failures surface as <see cref="PmemException"/>; cancellation through the
/// caller's token as <see cref="OperationCanceledException"/>.
/// </remarks>
public sealed partial class PmemClient : IDisposable
{
    /// <summary>Fully qualified gRPC service name.</summary>
    public const string ServiceName = "pmem.v1.PmemService";

    private static readonly string[] s_retriedMethods =
        ["GetRegion", "ListRegions", "ReadRegion", "PersistRegion", "StreamReadRegion"];

    private readonly PmemClientOptions _options;
    private readonly GrpcChannel _channel;
    private readonly PmemGrpc.PmemServiceClient _client;
    private readonly Health.HealthClient _health;

    /// <summary>Creates a client for an address such as <c>unix:///run/pmem/pmem.sock</c>,
    /// <c>unix:data/pmem.sock</c> or <c>http://127.0.0.1:5001</c>.</summary>
    /// <exception cref="FormatException">The address is malformed.</exception>
    public PmemClient(string address, PmemClientOptions? options = null)
        : this(PmemEndpoint.Parse(address), options)
    {
    }

    /// <summary>Creates a client for a parsed endpoint.</summary>
    public PmemClient(PmemEndpoint endpoint, PmemClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        _options = (options ?? new PmemClientOptions()).Clone();
        _options.Validate();
        Endpoint = endpoint;

        if (_options.HasBearerToken && !string.Equals(endpoint.HttpAddress?.Scheme, Uri.UriSchemeHttps, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"A bearer token is sent only over TLS: use an https:// address (not {endpoint}).", nameof(options));
        }

        var ownsHandler = _options.HttpHandler is null;
        var handler = _options.HttpHandler ?? CreateHandler(endpoint, _options);
        var channelOptions = new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = ownsHandler,
            MaxReceiveMessageSize = _options.MaxReceiveMessageSize ?? Math.Max(4 * 1024 * 1024, Math.Max(_options.ChunkSize, _options.ReadChunkSize) + 64 * 1024),
            MaxSendMessageSize = _options.MaxSendMessageSize,
            MaxRetryAttempts = _options.MaxRetryAttempts,
            ServiceConfig = CreateServiceConfig(_options),
            // Cancellation is translated per call (see Translate): true here would also turn
            // DEADLINE_EXCEEDED into OperationCanceledException.
            ThrowOperationCanceledOnCancellation = false,
        };
        if (_options.HasBearerToken)
        {
            channelOptions.Credentials = ChannelCredentials.Create(ChannelCredentials.SecureSsl, PmemClientSecurity.BearerCredentials(_options));
        }

        _channel = GrpcChannel.ForAddress(endpoint.ChannelAddress, channelOptions);
        _client = new PmemGrpc.PmemServiceClient(_channel);
        _health = new Health.HealthClient(_channel);
    }

    /// <summary>The endpoint this client talks to.</summary>
    public PmemEndpoint Endpoint { get; }

    /// <summary>The options in effect (a copy of the ones given).</summary>
    public PmemClientOptions Options => _options;

    /// <summary>The underlying channel (for extra gRPC clients on the same connection).</summary>
    public GrpcChannel Channel => _channel;

    /// <summary>The generated gRPC client, for calls not covered by this type.</summary>
    public PmemGrpc.PmemServiceClient GrpcClient => _client;

    /// <summary>
    /// Opens (or, with <paramref name="createIfMissing"/>, creates) a region and maps it; every
    /// successful call takes one reference on the mapping. Not retried automatically.
    /// </summary>
    /// <param name="name">Region name ([A-Za-z0-9._-], 1 to 128 characters).</param>
    /// <param name="size">Size in bytes; required when creating, otherwise 0 or the current size.</param>
    /// <param name="requiredGranularity">Coarsest store granularity tolerated (unspecified = page).</param>
    /// <param name="createIfMissing">Create the region (fully allocated) if it does not exist.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The region, with <see cref="RegionInfo.Created"/> set when this call created it.</returns>
    public async Task<RegionInfo> MapRegionAsync(
        string name,
        long size = 0,
        Granularity requiredGranularity = Granularity.Unspecified,
        bool createIfMissing = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var request = new MapRegionRequest
        {
            Name = name,
            Size = (ulong)size,
            RequiredGranularity = requiredGranularity,
            CreateIfMissing = createIfMissing,
        };
        var response = await UnaryAsync(_client.MapRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return response.Region;
    }

    /// <summary>Drops one reference taken by <see cref="MapRegionAsync"/>; the region is persisted
    /// and unmapped when the last one goes. Not retried automatically.</summary>
    /// <returns>References still held.</returns>
    public async Task<int> UnmapRegionAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var response = await UnaryAsync(_client.UnmapRegionAsync, new UnmapRegionRequest { Name = name }, cancellationToken)
            .ConfigureAwait(false);
        return (int)response.RemainingReferences;
    }

    /// <summary>Returns one region's info.</summary>
    /// <exception cref="PmemException">Kind <see cref="PmemErrorKind.RegionNotFound"/> when it does not exist.</exception>
    public async Task<RegionInfo> GetRegionAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        var response = await UnaryAsync(_client.GetRegionAsync, new GetRegionRequest { Name = name }, cancellationToken)
            .ConfigureAwait(false);
        return response.Region;
    }

    /// <summary>Enumerates every region of the pool in name order, fetching pages lazily.</summary>
    /// <param name="pageSize">Regions per page (0 = server default, at most 1000).</param>
    /// <param name="cancellationToken">Cancels the enumeration.</param>
    public async IAsyncEnumerable<RegionInfo> ListRegionsAsync(
        int pageSize = 0,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pageSize);
        var token = string.Empty;
        do
        {
            var request = new ListRegionsRequest { PageSize = pageSize, PageToken = token };
            var page = await UnaryAsync(_client.ListRegionsAsync, request, cancellationToken).ConfigureAwait(false);
            foreach (var region in page.Regions)
            {
                yield return region;
            }

            token = page.NextPageToken;
        }
        while (!string.IsNullOrEmpty(token));
    }

    /// <summary>Deletes a region file; refused while mapped unless <paramref name="force"/> is set.</summary>
    public async Task DeleteRegionAsync(string name, bool force = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        await UnaryAsync(_client.DeleteRegionAsync, new DeleteRegionRequest { Name = name, Force = force }, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>
    /// Writes bytes at an offset with one unary call (keep it below the server's message limit; use
    /// <see cref="UploadAsync(Stream, string, long, IProgress{long}?, CancellationToken)"/> for bulk data).
    /// Durable before it returns unless <paramref name="deferPersist"/> is set. Never retried automatically.
    /// </summary>
    /// <remarks><paramref name="data"/> is sent without a copy: do not modify it until the task completes.</remarks>
    public async Task<WriteResult> WriteAsync(
        string name,
        long offset,
        ReadOnlyMemory<byte> data,
        bool deferPersist = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var request = new WriteRegionRequest
        {
            Name = name,
            Offset = (ulong)offset,
            Data = UnsafeByteOperations.UnsafeWrap(data),
            DeferPersist = deferPersist,
        };
        var response = await UnaryAsync(_client.WriteRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return new WriteResult((long)response.BytesWritten, response.Persisted);
    }

    /// <summary>Reads a range with one unary call (at most the server's unary limit; use
    /// <see cref="DownloadAsync(string, Stream, long, long, IProgress{long}?, CancellationToken)"/> for bulk data).</summary>
    /// <returns>The bytes (a view over the received message; no copy).</returns>
    public async Task<ReadOnlyMemory<byte>> ReadAsync(
        string name,
        long offset,
        int length,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var request = new ReadRegionRequest { Name = name, Offset = (ulong)offset, Length = (ulong)length };
        var response = await UnaryAsync(_client.ReadRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return response.Data.Memory;
    }

    /// <summary>Persists a range, or the whole region when <paramref name="offset"/> and
    /// <paramref name="length"/> are 0.</summary>
    /// <returns>Bytes persisted as reported by the server.</returns>
    public async Task<long> PersistAsync(
        string name,
        long offset = 0,
        long length = 0,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var request = new PersistRegionRequest { Name = name, Offset = (ulong)offset, Length = (ulong)length };
        var response = await UnaryAsync(_client.PersistRegionAsync, request, cancellationToken).ConfigureAwait(false);
        return (long)response.BytesPersisted;
    }

    /// <summary>Asks the standard gRPC health service (<c>grpc.health.v1.Health/Check</c>).</summary>
    /// <param name="service">Health service name: empty for liveness, e.g. <c>readiness</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<PmemHealthStatus> CheckHealthAsync(string service = "", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(service);
        try
        {
            var response = await _health.CheckAsync(new HealthCheckRequest { Service = service }, CreateCallOptions(_options.DefaultDeadline, cancellationToken))
                .ConfigureAwait(false);
            return response.Status switch
            {
                HealthCheckResponse.Types.ServingStatus.Serving => PmemHealthStatus.Serving,
                HealthCheckResponse.Types.ServingStatus.NotServing => PmemHealthStatus.NotServing,
                HealthCheckResponse.Types.ServingStatus.ServiceUnknown => PmemHealthStatus.ServiceUnknown,
                _ => PmemHealthStatus.Unknown,
            };
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            // grpc.health.v1: an unknown service name is NOT_FOUND on Check.
            return PmemHealthStatus.ServiceUnknown;
        }
        catch (RpcException ex)
        {
            throw Translate(ex, cancellationToken);
        }
    }

    /// <summary>Disposes the channel (and the HTTP handler when the client created it).</summary>
    public void Dispose() => _channel.Dispose();

    private async Task<TResponse> UnaryAsync<TRequest, TResponse>(
        Func<TRequest, CallOptions, AsyncUnaryCall<TResponse>> method,
        TRequest request,
        CancellationToken cancellationToken)
    {
        try
        {
            using var call = method(request, CreateCallOptions(_options.DefaultDeadline, cancellationToken));
            return await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            throw Translate(ex, cancellationToken);
        }
    }

    private static CallOptions CreateCallOptions(TimeSpan? deadline, CancellationToken cancellationToken) =>
        new(deadline: deadline is { } d ? DateTime.UtcNow + d : null, cancellationToken: cancellationToken);

    private static Exception Translate(RpcException exception, CancellationToken cancellationToken) =>
        exception.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested
            ? new OperationCanceledException("The call was cancelled.", exception, cancellationToken)
            : PmemException.FromRpcException(exception);

    private static SocketsHttpHandler CreateHandler(PmemEndpoint endpoint, PmemClientOptions options)
    {
        var handler = endpoint.CreateHttpHandler();
        PmemClientSecurity.ConfigureTls(handler, options);
        return handler;
    }

    private static ServiceConfig? CreateServiceConfig(PmemClientOptions options)
    {
        if (options.MaxRetryAttempts <= 1)
        {
            return null;
        }

        var methodConfig = new MethodConfig
        {
            RetryPolicy = new RetryPolicy
            {
                MaxAttempts = options.MaxRetryAttempts,
                InitialBackoff = options.InitialBackoff,
                MaxBackoff = options.MaxBackoff,
                BackoffMultiplier = 2,
                RetryableStatusCodes = { StatusCode.Unavailable },
            },
        };
        foreach (var method in s_retriedMethods)
        {
            methodConfig.Names.Add(new MethodName { Service = ServiceName, Method = method });
        }

        return new ServiceConfig { MethodConfigs = { methodConfig } };
    }
}
