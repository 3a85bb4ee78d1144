using System.Globalization;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PmemService.Server.Internal;

/// <summary>
/// The one place where errors become gRPC statuses: every handler kind is awaited inside try, so
/// no exception reaches the client as UNKNOWN. Domain errors carry google.rpc.Status details
/// (ErrorInfo with a stable reason in domain "pmem.v1", BadRequest when a field is at fault,
/// ResourceInfo for the region, RetryInfo when draining). Interrupted streams also report their
/// last persisted offset in the "pmem-persisted-offset" trailer.
/// </summary>
internal sealed class ErrorMappingInterceptor : Interceptor
{
    private readonly ILogger<ErrorMappingInterceptor> _logger;
    private readonly PmemServiceOptions _options;
    private readonly bool _detailedErrors;

    public ErrorMappingInterceptor(ILogger<ErrorMappingInterceptor> logger, IOptions<PmemServiceOptions> options, IHostEnvironment environment)
    {
        _logger = logger;
        _options = options.Value;
        _detailedErrors = environment.IsDevelopment();
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw ToRpcException(e, context);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw ToRpcException(e, context);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw ToRpcException(e, context);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw ToRpcException(e, context);
        }
    }

    private RpcException ToRpcException(Exception e, ServerCallContext context)
    {
        var error = ErrorMapping.TryMap(e);
        if (error is null)
        {
            if (e is OperationCanceledException && context.CancellationToken.IsCancellationRequested)
            {
                error = new PmemServiceException(StatusCode.Cancelled, PmemErrorReasons.Cancelled, "The call was cancelled.", inner: e);
            }
            else
            {
                PmemLog.UnhandledError(_logger, context.Method, e);
                error = new PmemServiceException(StatusCode.Internal, PmemErrorReasons.Internal,
                    _detailedErrors ? $"Internal error: {e.GetType().Name}: {e.Message}" : "Internal error.", inner: e);
            }
        }
        else if (error.Code == StatusCode.Internal)
        {
            PmemLog.UnhandledError(_logger, context.Method, e);
        }

        PmemLog.RpcFailed(_logger, context.Method, error.Code.ToString(), error.Reason, error.Message);
        return Build(error);
    }

    /// <summary>Builds the RpcException (google.rpc.Status in grpc-status-details-bin, plus trailers).</summary>
    internal static RpcException Build(PmemServiceException error)
    {
        var info = new ErrorInfo { Reason = error.Reason, Domain = PmemErrorReasons.Domain };
        foreach (var (key, value) in error.Metadata)
        {
            info.Metadata[key] = value;
        }

        if (error.PersistedOffset is { } persisted)
        {
            info.Metadata[PmemErrorReasons.PersistedOffsetKey] = persisted.ToString(CultureInfo.InvariantCulture);
            info.Metadata[PmemErrorReasons.BytesPersistedKey] = (error.BytesPersisted ?? 0).ToString(CultureInfo.InvariantCulture);
        }

        var status = new Google.Rpc.Status
        {
            Code = (int)error.Code,
            Message = error.Message,
            Details = { Any.Pack(info) },
        };

        if (error.Field is not null)
        {
            status.Details.Add(Any.Pack(new BadRequest
            {
                FieldViolations = { new BadRequest.Types.FieldViolation { Field = error.Field, Description = error.Message } },
            }));
        }

        if (error.Metadata.TryGetValue("region", out var region))
        {
            status.Details.Add(Any.Pack(new ResourceInfo { ResourceType = "pmem.v1.Region", ResourceName = region }));
        }

        if (error.Code == StatusCode.Unavailable)
        {
            status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(1)) }));
        }

        var exception = status.ToRpcException();
        if (error.PersistedOffset is { } offset)
        {
            exception.Trailers.Add(PmemErrorReasons.PersistedOffsetTrailer, offset.ToString(CultureInfo.InvariantCulture));
        }

        return exception;
    }
}
